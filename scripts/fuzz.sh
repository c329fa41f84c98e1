#!/usr/bin/env bash
# Builds the fuzzers (fuzz/CMakeLists.txt: libFuzzer, AddressSanitizer and
# UBSan over every reader of untrusted input) and runs each for SECONDS
# (default 60), one after another. Each target's corpus is kept in
# build-fuzz/corpus/<name> (started from the target's seeds), so later runs
# go on from there; an input that crashes a reader or breaks a property is
# saved under build-fuzz/crashes/<name>/ and the script exits 1 naming it.
# Add such an input to fuzz/regressions/<name>/ with the fix: the unit tests
# replay that directory in every build (unittests/Fuzz).
#
#   scripts/fuzz.sh [--seconds N] [TARGET ...]   (default: every target)
#
# Needs clang++-22 with libFuzzer (Debian: apt-get install libclang-rt-22-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
if [ "${1:-}" = --seconds ]; then
  seconds=${2:?--seconds needs a number}
  shift 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(json config safetensors checkpoint-index tokenizer encode manifest
           token-ids npy)
fi
cxx=${CXX:-clang++-22}
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long){return 0;}' |
    "$cxx" -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "fuzz.sh: $cxx cannot link libFuzzer (-fsanitize=fuzzer); on Debian:" \
       "apt-get install libclang-rt-22-dev" >&2
  exit 2
fi
cmake -S fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
ninja -C build-fuzz >/dev/null
status=0
for t in "${targets[@]}"; do
  bin=build-fuzz/jamba-fuzz-$t
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: no target '$t'" >&2
    exit 2
  fi
  corpus=build-fuzz/corpus/$t
  crashes=build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  log=build-fuzz/$t.log
  if "$bin" --seeds="$corpus" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=4096 -artifact_prefix="$crashes/" -print_final_stats=1 \
      "$corpus" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "$t: ok, $runs inputs in ${seconds} s, corpus $(ls "$corpus" | wc -l)"
  else
    echo "$t: FAILED (log $log):"
    grep -E "^jamba-fuzz|ERROR|SUMMARY|Test unit written" "$log" | head -5
    status=1
  fi
done
exit $status
