#!/usr/bin/env bash
# The layer check (docs/ARCHITECTURE.md): every source folder has a layer, and a file may include headers of
# its own folder or of folders in lower layers only, so no two folders include each other. The bottom layers
# (formats, CPU and CUDA kernels, base utilities, energy and report) must stay LibTorch-free as well.
# Exit 1 with one line per violation; run by .ci/run and by ctest (layer_check).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# folder -> layer. Folders in one layer never include each other.
declare -A layer=(
  [kernels/formats]=0 [compress/base]=0
  [kernels/cpu]=1 [cuda]=1
  [compress/io]=2 [compress/ops]=2 [compress/energy]=2
  [compress/report]=3 [compress/ir]=3
  [compress/analysis]=4 [compress/algorithms]=4 [compress/train]=4
  [compress/passes]=5
  [compress/pipeline]=6
  [models]=7
  [tools]=8 [python]=8
  [tests]=9 [tests/cuda]=9 [tests/fuzz]=9 [bench]=9 [bench/cuda]=9
)
torch_free=(kernels/formats kernels/cpu cuda compress/base compress/energy compress/report tests/fuzz)

bad=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  if [ -z "${layer[$dir]+x}" ]; then
    echo "$file: folder '$dir' has no layer in tools/check_layers.sh (add it, and to docs/ARCHITECTURE.md)"
    bad=1
    continue
  fi
  free=0
  for f in "${torch_free[@]}"; do [ "$dir" = "$f" ] && free=1; done
  while IFS=: read -r line inc; do
    inc=${inc#*\"}
    inc=${inc%%\"*}
    if [ "$free" = 1 ] && [[ "$inc" =~ ^(torch|ATen|c10)/ ]]; then
      echo "$file:$line: '$dir' must stay LibTorch-free but includes <$inc>"
      bad=1
    fi
    [ -f "$inc" ] || continue  # a system header, or one relative to the including file's folder
    target=$(dirname "$inc")
    [ "$target" = "$dir" ] && continue
    if [ -z "${layer[$target]+x}" ]; then
      echo "$file:$line: includes '$inc' from folder '$target', which has no layer"
      bad=1
    elif [ "${layer[$target]}" -ge "${layer[$dir]}" ]; then
      echo "$file:$line: '$dir' (layer ${layer[$dir]}) includes '$inc' of '$target' (layer ${layer[$target]}), which is not below it"
      bad=1
    fi
  done < <(grep -n -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$file" | sed -E 's/^([0-9]+):.*include[[:space:]]*[<"]([^>"]*)[>"].*/\1:"\2"/')
done < <(git ls-files -co --exclude-standard -- '*.h' '*.hpp' '*.cpp' '*.cu' '*.cuh' | grep -v '^cuda/standalone/')

if [ "$bad" != 0 ]; then
  echo "layer check: FAILED (docs/ARCHITECTURE.md lists what each folder may include)"
  exit 1
fi
echo "layer check: ok ($(git ls-files -co --exclude-standard -- '*.h' '*.hpp' '*.cpp' '*.cu' '*.cuh' | wc -l) files)"
