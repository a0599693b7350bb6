#!/usr/bin/env bash
# `make test`: install what is missing, build under AddressSanitizer + UBSan, run every test, then
# a short fuzzing run (scripts/fuzz.sh: every fuzz target for SHOPD_FUZZ_SECONDS, default 20, over
# its checked-in corpus). Extra arguments go to ctest (e.g. `scripts/test.sh -L unit`) and skip the
# fuzzing run, as does SHOPD_FUZZ_SECONDS=0 or another preset than asan.
# `make tsan` (SHOPD_TEST_PRESET=tsan): the same suite under ThreadSanitizer. Every process stops at
# its first report, which goes to build/tsan/tsan-reports/ rather than into a test's output (the
# scripts keep a server's stderr in a temporary directory they remove); the run fails if any report
# was written, even by a process whose exit status a test did not look at.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-format.sh
preset=${SHOPD_TEST_PRESET:-asan}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ "$preset" = tsan ]; then
  reports=$PWD/build/tsan/tsan-reports
  rm -rf "$reports" && mkdir -p "$reports"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan}
  status=0
  ctest --preset "$preset" "$@" || status=$?
  if compgen -G "$reports/tsan.*" >/dev/null; then
    cat "$reports"/tsan.* >&2
    echo "ThreadSanitizer reports above (also in $reports)" >&2
    exit 1
  fi
  exit "$status"
fi
ctest --preset "$preset" "$@"
if [ $# -eq 0 ] && [ "$preset" = asan ] && [ "${SHOPD_FUZZ_SECONDS:-20}" != 0 ]; then
  # The fuzzers set their own sanitizer options (tests/fuzz/run.sh).
  unset ASAN_OPTIONS UBSAN_OPTIONS
  FUZZ_SECONDS=${SHOPD_FUZZ_SECONDS:-20} scripts/fuzz.sh
fi
