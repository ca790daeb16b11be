#!/usr/bin/env bash
# Joule vs PyTorch on all-MiniLM-L6-v2 fp32, batch 1 and 32 at seq 128, same machine, same threads, run
# back to back (Joule, PyTorch, Joule, PyTorch, ... ROUNDS times) so drift on a shared machine hits both.
# Prints a table of medians and the speed ratio. Usage: bench/compare_minilm.sh [ROUNDS=3] [THREADS=nproc]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-3}"
threads="${2:-$(nproc)}"
bash tools/build.sh joule_minilm_bench >/dev/null
export OMP_NUM_THREADS="$threads" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
tmp="$(mktemp -d)"
for r in $(seq "$rounds"); do
  build/bin/joule_minilm_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json >"$tmp/joule_$r.json" 2>/dev/null
  .venv/bin/python bench/minilm_pytorch.py "$threads" 30 2>/dev/null | tail -1 >"$tmp/torch_$r.json"
  echo "round $r/$rounds done" >&2
done
.venv/bin/python - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
joule = {1: [], 32: []}
torch_ = {1: [], 32: []}
for r in range(1, rounds + 1):
    for b in json.load(open(f"{tmp}/joule_{r}.json"))["benchmarks"]:
        if b["aggregate_name"] == "median":
            joule[int(b["name"].split("batch:")[1].split("/")[0])].append(b["real_time"])
    t = json.load(open(f"{tmp}/torch_{r}.json"))
    for k, v in t["batch"].items():
        torch_[int(k)].append(v)
print(f"all-MiniLM-L6-v2 fp32, seq 128, {t['threads']} threads, torch {t['torch']} ({t['attention']} attention), "
      f"median of {rounds} rounds")
print(f"{'batch':>5} {'Joule ms':>10} {'PyTorch ms':>11} {'PyTorch/Joule':>14}")
for b in (1, 32):
    j, p = statistics.median(joule[b]), statistics.median(torch_[b])
    print(f"{b:>5} {j:>10.2f} {p:>11.2f} {p / j:>13.2f}x")
PY
rm -rf "$tmp"
