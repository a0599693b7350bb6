#!/usr/bin/env bash
# `make fuzz`: build the libFuzzer targets of tests/fuzz (the `fuzz` preset: clang, ASan + UBSan)
# and run each for FUZZ_SECONDS (default 300), two at a time. `make test` runs the same with 20 s.
# Extra arguments go to ctest (e.g. `scripts/fuzz.sh -R fuzz/relay`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export FUZZ_SECONDS=${FUZZ_SECONDS:-300}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
# A test without a TIMEOUT property gets this one: the campaign plus room for replaying the corpus.
ctest --preset fuzz --timeout $((FUZZ_SECONDS + 300)) "$@"
