#!/usr/bin/env bash
# The test command: set-up, build, then every test under ctest (GoogleTest + the PyTorch model fixture).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/build.sh
ctest --test-dir build --output-on-failure -j2
