#!/usr/bin/env bash
# Set-up (idempotent) and an incremental Release build into build/. Extra args are ninja targets.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup.sh
# ccache keys on paths relative to the clone, so a fresh clone elsewhere (CI) reuses the cache.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -- "$@"
