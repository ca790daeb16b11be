"""Where a Joule MiniLM's time goes, per op category: torch.profiler over REPS forwards of a Joule TorchScript file
(the CLI's output: fp32, W8A8, W4), batch B at sequence length 128, THREADS intra-op threads. Each op's self time
(on the calling thread; an op's intra-op workers are inside it) is put in one category; what no op accounts for
is the TorchScript interpreter and dispatch ("framework"). Run with the CLI's malloc settings (bench/profile_minilm.sh
sets GLIBC_TUNABLES as compress/base/allocator.h does) so the numbers are the ones `joule` measures.
usage: profile_minilm.py LIBJOULE_OPS MODEL.pt THREADS BATCH [REPS=20]
Prints a markdown table (ms per inference and share of the wall time)."""
import statistics
import sys
import time

import torch

CATEGORIES = [  # first match wins
    ("linears (joule:: kernels)", ("joule::",)),
    ("linears (aten fp32)", ("aten::linear", "aten::addmm", "aten::mm", "aten::matmul")),
    ("attention (sdpa)", ("aten::scaled_dot_product_attention", "aten::_scaled_dot_product", "aten::bmm",
                          "aten::softmax", "aten::_softmax", "aten::baddbmm")),
    ("layer norm", ("aten::layer_norm", "aten::native_layer_norm")),
    ("GELU", ("aten::gelu",)),
    ("residual adds / elementwise", ("aten::add", "aten::mul", "aten::div", "aten::sub", "aten::rsub",
                                     "aten::clamp", "aten::sum", "aten::mean", "aten::norm", "aten::linalg_vector_norm",
                                     "aten::where", "aten::masked_fill")),
    ("embeddings", ("aten::embedding", "aten::index_select")),
    ("layout (view/copy/cat)", ("aten::view", "aten::reshape", "aten::permute", "aten::transpose", "aten::contiguous",
                                "aten::copy_", "aten::clone", "aten::cat", "aten::expand", "aten::slice",
                                "aten::unsqueeze", "aten::select", "aten::to", "aten::_to_copy", "aten::empty",
                                "aten::ones", "aten::zeros", "aten::arange", "aten::size", "aten::t")),
]


def category(name):
    for cat, prefixes in CATEGORIES:
        if name.startswith(prefixes):
            return cat
    return "other ops"


def main():
    lib, path, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    torch.ops.load_library(lib)
    torch.set_num_threads(threads)
    m = torch.jit.load(path).eval()
    ids = torch.randint(1000, 20000, (batch, 128))
    mask = torch.ones(batch, 128, dtype=torch.long)
    with torch.no_grad():
        for _ in range(5):
            m(ids, mask)
        walls = []
        for _ in range(reps):
            t0 = time.perf_counter()
            m(ids, mask)
            walls.append(time.perf_counter() - t0)
        wall_ms = statistics.median(walls) * 1e3
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(reps):
                m(ids, mask)
            prof_ms = (time.perf_counter() - t0) * 1e3 / reps
    per = {}
    for e in prof.key_averages():
        per[category(e.key)] = per.get(category(e.key), 0.0) + e.self_cpu_time_total / 1e3 / reps
    accounted = sum(per.values())
    # The profiler's own cost lands in the gaps; scale op times to the unprofiled wall time.
    scale = wall_ms / prof_ms
    print(f"{path}: batch {batch}, seq 128, {threads} threads: {wall_ms:.2f} ms per forward (median of {reps}; "
          f"{prof_ms:.2f} ms under the profiler, op times scaled by {scale:.2f})")
    print()
    print("| category | ms | share |")
    print("| --- | ---: | ---: |")
    for cat, ms in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {ms * scale:.2f} | {100 * ms / prof_ms:.1f}% |")
    gap = max(prof_ms - accounted, 0.0)
    print(f"| framework (interpreter, dispatch, between ops) | {gap * scale:.2f} | {100 * gap / prof_ms:.1f}% |")


if __name__ == "__main__":
    main()
