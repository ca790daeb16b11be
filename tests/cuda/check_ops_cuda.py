"""The joule:: ops on CUDA match their CPU implementations (run by bench/cuda/run_gpu.sh on a GPU machine).

usage: check_ops_cuda.py path/to/libjoule_ops.so
W8A8: the GPU quantizes activations with the CPU's arithmetic and accumulates exactly, so float32 results match
to float rounding. W4 and 2:4: the GPU rounds x and the weights to fp16 (bf16 for bfloat16 x), so they match to
~1e-3.
Exits 0 with a message when there is no CUDA device.
"""
import sys

import torch

torch.ops.load_library(sys.argv[1])
if not torch.cuda.is_available():
    print("check_ops_cuda: no CUDA device, skipped")
    sys.exit(0)
torch.manual_seed(0)
ops = torch.ops.joule
failures = 0


def report(name, got, want, tol):
    global failures
    err = ((got.float().cpu() - want).abs().max() / want.abs().mean().clamp_min(1e-6)).item()
    ok = err <= tol
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max error / mean |y| = {err:.2e} (tolerance {tol:.0e})")


for (m, k, n) in [(1, 4096, 4096), (17, 200, 33), (64, 1000, 96), (300, 512, 256)]:
    x = torch.randn(m, k)
    qw = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    ws = torch.rand(n) * 0.01 + 1e-3
    bias = torch.randn(n)
    smooth = torch.rand(k) + 0.5
    xs = torch.tensor([x.abs().max().item() / 127 * 0.8])
    for label, extra in [("dynamic", {}), ("smooth", {"smooth_inv": smooth}),
                         ("static+smooth", {"smooth_inv": smooth, "x_scale": xs})]:
        want = ops.linear_w8a8(x, qw, ws, bias, **extra)
        got = ops.linear_w8a8(x.cuda(), qw.cuda(), ws.cuda(), bias.cuda(),
                              **{key: v.cuda() for key, v in extra.items()})
        report(f"linear_w8a8 {label} M={m} K={k} N={n}", got, want, 1e-5)
    got16 = ops.linear_w8a8(x.cuda().half(), qw.cuda(), ws.cuda(), bias.cuda())
    report(f"linear_w8a8 fp16 x M={m} K={k} N={n}", got16, ops.linear_w8a8(x.half().float(), qw, ws, bias), 5e-3)

    for group in (32, 128):
        kk = k + 1  # odd K: the pad nibble and a short last group
        ng = (kk + group - 1) // group
        qweight = torch.randint(0, 256, (n, (kk + 1) // 2), dtype=torch.uint8)
        qweight[:, -1] &= 0x0F  # pad nibble of the odd K is 0
        scales = torch.rand(n, ng) * 0.02 + 1e-3
        zeros = torch.randint(0, 16, (n, ng), dtype=torch.uint8)
        x4 = torch.randn(m, kk)
        want = ops.linear_w4(x4, qweight, scales, zeros, group, kk, bias)
        got = ops.linear_w4(x4.cuda(), qweight.cuda(), scales.cuda(), zeros.cuda(), group, kk, bias.cuda())
        assert got.dtype == torch.float32
        report(f"linear_w4 G={group} M={m} K={kk} N={n}", got, want, 1e-2)
        gotb = ops.linear_w4(x4.cuda().bfloat16(), qweight.cuda(), scales.cuda(), zeros.cuda(), group, kk, bias.cuda())
        assert gotb.dtype == torch.bfloat16
        report(f"linear_w4 bf16 G={group} M={m} K={kk} N={n}", gotb, want, 3e-2)

    k16 = (k + 15) // 16 * 16  # 2:4 needs K % 16 == 0
    values = torch.randn(n, k16 // 2)
    # Random valid metadata: each chunk's code is one of the six ordered pairs idx0 < idx1.
    codes = torch.tensor([0x4, 0x8, 0xC, 0x9, 0xD, 0xE])[torch.randint(0, 6, (n, k16 // 4))]
    meta = (codes.view(n, k16 // 16, 4) << torch.tensor([0, 4, 8, 12])).sum(-1).to(torch.int32)
    meta = torch.where(meta >= 0x8000, meta - 0x10000, meta).to(torch.int16)  # uint16 words as int16
    x24 = torch.randn(m, k16)
    want = ops.linear_sp24(x24, values, meta, k16, bias)
    got = ops.linear_sp24(x24.cuda(), values.cuda(), meta.cuda(), k16, bias.cuda())
    assert got.dtype == torch.float32
    report(f"linear_sp24 M={m} K={k16} N={n}", got, want, 1e-2)
    gotb = ops.linear_sp24(x24.cuda().bfloat16(), values.cuda(), meta.cuda(), k16, bias.cuda())
    assert gotb.dtype == torch.bfloat16
    report(f"linear_sp24 bf16 M={m} K={k16} N={n}", gotb, want, 3e-2)

print("check_ops_cuda:", "all ok" if failures == 0 else f"{failures} FAILED")
sys.exit(1 if failures else 0)
