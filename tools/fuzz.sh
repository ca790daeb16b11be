#!/usr/bin/env bash
# libFuzzer on the readers of untrusted bytes (tests/fuzz/): the safetensors reader, the TorchScript archive checks
# and the recipe parser, each for SECONDS (default 60), one after the other, under ASan + UBSan. LibTorch-free: the
# targets build from compress/io alone, with clang, into build-fuzz/.
#
# usage: tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (targets: safetensors archive recipe; default all)
#
# Seeds: tests' fixtures (the hostile archives and test models if built, in build/ or build-asan/; recipes/*.yaml,
# tests/data) and small files written here. The corpus grows in build-fuzz/corpus-TARGET/ and is reused by the next
# run; a finding is written as build-fuzz/crash-* (libFuzzer's artifact) and fails the script. Needs clang with
# libFuzzer (Debian: apt-get install clang).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-60}"
shift || true
targets=("${@:-safetensors archive recipe}")
read -r -a targets <<< "${targets[*]}"
CXX="${CXX_FUZZ:-clang++}"
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (apt-get install clang)" >&2; exit 2; }
out=build-fuzz
mkdir -p "$out"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -DFMT_HEADER_ONLY -I. -Itests/fuzz)

# The compress/io sources a target needs (rebuilt when a source or header is newer than the binary).
declare -A sources=(
  [safetensors]="compress/io/safetensors.cpp compress/io/atomic_file.cpp"
  [archive]="compress/io/archive_check.cpp"
  [recipe]="compress/io/recipe_text.cpp"
)
declare -A libs=([safetensors]="" [archive]="-lz" [recipe]="-lyaml-cpp")

seed() {  # seed TARGET DIR: the fixtures that exercise TARGET's format
  local t=$1 d=$2
  mkdir -p "$d"
  case $t in
    safetensors)
      python3 - "$d" <<'EOF'
import json, struct, sys
d = sys.argv[1]
def st(name, header, data):
    h = json.dumps(header).encode()
    open(f"{d}/{name}", "wb").write(struct.pack("<Q", len(h)) + h + data)
st("seed_f32", {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": {"format": "pt"}}, bytes(16))
st("seed_two", {"a": {"dtype": "I8", "shape": [3], "data_offsets": [0, 3]},
                "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [4, 8]}}, bytes(8))
st("seed_empty", {"e": {"dtype": "I64", "shape": [0, 5], "data_offsets": [0, 0]}}, b"")
EOF
      find build/test_models build-asan/test_models -name '*.safetensors' -size -64k -exec cp {} "$d/" \; 2>/dev/null || true ;;
    archive)
      find build/test_models build-asan/test_models -name '*.pt' -size -256k -exec cp {} "$d/" \; 2>/dev/null || true
      ls "$d" | grep -q . || printf 'PK\005\006%018d' 0 > "$d/seed_empty_zip" ;;
    recipe)
      cp recipes/*.yaml "$d/" 2>/dev/null || true
      printf 'passes: [{prune: {method: "2:4"}}, {quantize: {scheme: w8a8}}]\nworkload: {inputs: ["i64:1x128"]}\n' > "$d/seed_flow"
      printf '{"passes": [{"prune": {"sparsity": 0.5}}]}\n' > "$d/seed_json" ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  [ -n "${sources[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t' (safetensors archive recipe)" >&2; exit 2; }
  bin="$out/fuzz_$t"
  src="tests/fuzz/fuzz_$t.cpp ${sources[$t]}"
  if [ ! -x "$bin" ] || [ -n "$(find $src tests/fuzz/fuzz_input.h compress/io/*.h compress/base/*.h -newer "$bin" 2>/dev/null)" ]; then
    echo "fuzz.sh: building $bin"
    # shellcheck disable=SC2086
    "$CXX" "${flags[@]}" $src -o "$bin" ${libs[$t]}
  fi
  corpus="$out/corpus-$t"
  seeds="$out/seeds-$t"
  seed "$t" "$seeds"
  mkdir -p "$corpus"
  echo "fuzz.sh: $t for ${seconds}s"
  log="$out/fuzz_$t.log"
  # -rss_limit_mb / -timeout: an input that needs over 2 GB or 10 s is itself a finding (unbounded memory, a hang).
  if ! "$bin" "$corpus" "$seeds" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
       -artifact_prefix="$out/" -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz.sh: $t FOUND A PROBLEM (see $log and $out/crash-* / leak-* / timeout-* / oom-*)" >&2
    tail -40 "$log" >&2
    status=1
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | sed "s/^/fuzz.sh: $t /" || true
done
exit $status
