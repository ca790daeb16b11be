#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer: Joule's own code (libraries, CLI, tests)
# instrumented in build-asan/, LibTorch itself not (it is the venv's wheel). Any finding fails the test it occurs
# in (halt_on_error), the CLI's included, since the tests run the instrumented `joule`.
#
# usage: tools/sanitize.sh [CTEST_REGEX]     (default: every C++ test; e.g. 'Security|Cli' for a subset)
#        SANITIZE_JOBS=2 tools/sanitize.sh  (tests in parallel; default 1: each ASan process of LibTorch takes GBs)
#
# Options, and why:
#   detect_leaks=0         LibTorch keeps process-lifetime allocations (op registry, JIT caches) that LeakSanitizer
#                          reports by the thousand at exit; Joule's own leaks would drown in them.
#   protect_shadow_gap=0   the CUDA runtime LibTorch loads maps memory where ASan's shadow gap would be.
#   vptr is left out       UBSan's vptr check needs every library's RTTI to be instrumented; LibTorch's is not, so it
#                          reports false type mismatches across the library boundary.
# The Python tests are excluded: a Python process cannot load ASan-instrumented extensions without LD_PRELOAD.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .venv/bin/python ] || bash tools/setup.sh
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
flags="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1"
if [ ! -f build-asan/build.ninja ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1" \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
fi
# The CUDA tests' host code too, where CUDA was found: ctest lists an unbuilt gtest binary as a failing
# joule_cuda_tests_NOT_BUILT, which failed every run of this script (without a GPU they skip).
targets=(joule joule_tests joule_unit_tests)
ninja -C build-asan -t query joule_cuda_tests >/dev/null 2>&1 && targets+=(joule_cuda_tests)
cmake --build build-asan --target "${targets[@]}"
export ASAN_OPTIONS="detect_leaks=0:protect_shadow_gap=0:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j"${SANITIZE_JOBS:-1}" --timeout 1800 \
  -E 'python|quantized_model_loads|hf_export|compressed_hf|pooling_modes' ${1:+-R "make_|$1"}
echo "sanitize.sh: the suite is clean under ASan/UBSan"
