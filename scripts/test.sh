#!/usr/bin/env bash
# `make test`: install what is missing, build under AddressSanitizer + UBSan, run every test, then
# a short fuzzing run (scripts/fuzz.sh: every fuzz target for SHOPD_FUZZ_SECONDS, default 20, over
# its checked-in corpus). Extra arguments go to ctest (e.g. `scripts/test.sh -L unit`) and skip the
# fuzzing run, as does SHOPD_FUZZ_SECONDS=0 or another preset than asan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-format.sh
preset=${SHOPD_TEST_PRESET:-asan}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --preset "$preset" "$@"
if [ $# -eq 0 ] && [ "$preset" = asan ] && [ "${SHOPD_FUZZ_SECONDS:-20}" != 0 ]; then
  # The fuzzers set their own sanitizer options (tests/fuzz/run.sh).
  unset ASAN_OPTIONS UBSAN_OPTIONS
  FUZZ_SECONDS=${SHOPD_FUZZ_SECONDS:-20} scripts/fuzz.sh
fi
