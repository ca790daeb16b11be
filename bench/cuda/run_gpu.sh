#!/usr/bin/env bash
# Builds Joule's CUDA kernels standalone (cuda/standalone), runs their tests, checks the joule:: CUDA ops against
# the CPU ops from Python when torch is importable, and benchmarks against cuBLAS / cuBLASLt, writing
# bench/results/cuda_h100.md (and .csv). Run from anywhere on a machine with an SM >= 80 GPU (H100 for the
# README table). Needs: nvcc (CUDA 12.8+ or 13; CUDACXX to pick one), cmake >= 3.25, ninja, g++ (C++17), and
# GoogleTest. Without a system GoogleTest (apt-get install libgtest-dev), unpack the .deb and point GTEST_ROOT at it:
#   apt-get download libgtest-dev && dpkg -x libgtest-dev_*.deb "$HOME/debroot" && GTEST_ROOT=$HOME/debroot ./run_gpu.sh
# Optional: PYTHON (default python3) with a CUDA build of torch, for libjoule_ops and the op check (its
# nvidia-cusparselt wheel, or CUSPARSELT_ROOT, adds the cuSPARSELt 2:4 baseline to the benchmark); BUILD, OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-cuda}
OUT=${OUT:-$ROOT/bench/results/cuda_h100.md}
PY=${PYTHON:-python3}

prefix=""
[ -n "${GTEST_ROOT:-}" ] && prefix="$GTEST_ROOT/usr"
torch_prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
[ -n "$torch_prefix" ] && prefix="$prefix;$torch_prefix"
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv || true

cmake -S "$ROOT/cuda/standalone" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DJOULE_PYTHON="$(command -v "$PY" || true)" \
  ${CUSPARSELT_ROOT:+-DCUSPARSELT_ROOT="$CUSPARSELT_ROOT"}
cmake --build "$BUILD"

status=0
"$BUILD/bin/joule_cuda_tests" || status=1
if [ -f "$BUILD/lib/libjoule_ops.so" ]; then
  "$PY" "$ROOT/tests/cuda/check_ops_cuda.py" "$BUILD/lib/libjoule_ops.so" || status=1
fi
mkdir -p "$(dirname "$OUT")"
(cd "$ROOT" && "$BUILD/bin/joule_cuda_bench" --out "$OUT" "$@") || status=1
echo "results: $OUT"
exit $status
