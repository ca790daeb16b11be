#!/usr/bin/env bash
# Joule's main job on the bundled default model: build it, compress it with recipes/demo.yaml and print
# the per-pass report. Outputs land in build/demo/ (model, report JSON).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/build.sh joule
mkdir -p build/demo
build/bin/joule make-model mlp -o build/demo/mlp.pt
build/bin/joule run recipes/demo.yaml build/demo/mlp.pt -o build/demo/mlp.compressed.pt \
  --report build/demo/report.json --plot build/demo/report.svg "$@"
