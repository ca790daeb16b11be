#!/usr/bin/env bash
# Joule's linear kernels against oneDNN's matmuls at MiniLM's shapes (128 tokens: 384 -> 1536, 1536 -> 384) and a
# 4096 x 4096 GEMV, same machine, same threads: oneDNN f32 and u8s8s32 (joule_bench_onednn, a process without
# LibTorch), Joule's float linear and LibTorch's at::linear (joule_minilm_bench BM_FloatLinear), W8A8 with
# activation quantization and the GEMM alone (joule_bench_w8a8). Medians of REPS repetitions; hot (one weight copy)
# and cold (copies rotated past the L3). Prints a markdown table with the ratios the issue's targets name.
# Run it on an otherwise idle machine. Usage: bench/compare_kernels.sh [REPS=5] [THREADS=2]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
reps="${1:-5}"
threads="${2:-2}"
bash tools/build.sh joule_bench_onednn joule_bench_w8a8 joule_minilm_bench >/dev/null
export OMP_NUM_THREADS="$threads" JOULE_BENCH_THREADS="$threads"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
flags=(--benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true --benchmark_format=json)
build/bin/joule_bench_onednn "${flags[@]}" >"$tmp/onednn.json" 2>/dev/null
build/bin/joule_bench_w8a8 --benchmark_filter='w8a8_linear/|w8a8_gemm' "${flags[@]}" >"$tmp/w8a8.json" 2>/dev/null
build/bin/joule_minilm_bench --benchmark_filter='BM_FloatLinear/.*kind:[01]/' "${flags[@]}" >"$tmp/float.json" 2>/dev/null
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
isa="$(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|amx_int8|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
.venv/bin/python - "$tmp" "$cpu" "$isa" "$threads" "$reps" <<'PY'
import json, sys
tmp, cpu, isa, threads, reps = sys.argv[1:6]
t = {}  # (name, m, k, n, cold) -> median us
for f in ("onednn", "w8a8", "float"):
    for b in json.load(open(f"{tmp}/{f}.json"))["benchmarks"]:
        if b.get("aggregate_name") != "median" or b.get("error_occurred"):
            continue
        parts = b["run_name"].split("/")
        a = dict(p.split(":") for p in parts[1:] if ":" in p)
        name = parts[0] + (f"/kind:{a['kind']}" if "kind" in a else "")
        scale = {"ms": 1e3, "us": 1.0, "ns": 1e-3}[b["time_unit"]]
        t[(name, a["m"], a["k"], a["n"], a["cold"])] = b["real_time"] * scale
cols = [("BM_onednn_f32", "oneDNN f32"), ("BM_FloatLinear/kind:0", "at::linear"),
        ("BM_FloatLinear/kind:1", "Joule float"), ("BM_onednn_u8s8s32", "oneDNN u8s8s32"),
        ("BM_w8a8_linear", "Joule W8A8 linear"), ("BM_w8a8_gemm", "Joule W8A8 GEMM")]
print(f"CPU: {cpu}; ISA: {isa.strip()}; {threads} threads; median of {reps} repetitions, us per call")
print()
print("| shape m x k x n | weights | " + " | ".join(c[1] for c in cols) + " | float / oneDNN f32 | W8A8 linear / oneDNN u8s8s32 |")
print("| --- | --- | " + " | ".join("---:" for _ in cols) + " | ---: | ---: |")
for m, k, n in (("128", "384", "1536"), ("128", "1536", "384"), ("1", "4096", "4096")):
    for cold in ("0", "1"):
        row = [t.get((c, m, k, n, cold)) for c, _ in cols]
        if all(v is None for v in row):
            continue
        cell = lambda v: "-" if v is None else f"{v:.1f}"
        ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}x"  # speed of b relative to a
        print(f"| {m} x {k} x {n} | {'cold' if cold == '1' else 'hot'} | " + " | ".join(cell(v) for v in row) +
              f" | {ratio(row[0], row[2])} | {ratio(row[3], row[4])} |")
PY
