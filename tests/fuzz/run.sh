#!/usr/bin/env bash
# Runs one libFuzzer target: run.sh BINARY NAME WORKDIR (what the fuzz/NAME CTest test does).
# Every checked-in input of tests/fuzz/corpus/NAME runs first, then libFuzzer mutates for
# FUZZ_SECONDS (default 20). The checked-in corpus is only read: new inputs go to
# WORKDIR/corpus/NAME (kept between runs, so a campaign resumes) and a crashing, leaking or
# timed-out input to WORKDIR/artifacts/NAME-*. Exits non-zero on any finding.
set -euo pipefail
binary=$1
name=$2
work=$3
here=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-20}

case "$name" in
  signature) max_len=12288 ;;  # a token may be 8 KiB (max_signature_size), then the body
  config) max_len=4096 ;;
  *) max_len=8192 ;;
esac

mkdir -p "$work/corpus/$name" "$work/artifacts"
args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048
      -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-")
[ -f "$here/$name.dict" ] && args+=(-dict="$here/$name.dict")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log="$work/$name.log"
status=0
"$binary" "${args[@]}" "$work/corpus/$name" "$here/corpus/$name" >"$log" 2>&1 || status=$?

# One line that shows the target reaching code beyond the seeds: coverage after replaying the
# corpus (INITED) and at the end (DONE).
cov() {
  local n
  n=$(grep -m1 -E "^#[0-9]+[[:space:]]+$1" "$log" | grep -oE 'cov: [0-9]+' | cut -d' ' -f2)
  echo "${n:--}"
}
runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | cut -d' ' -f2)
echo "fuzz/$name: ${seconds}s, ${runs:-?} inputs, coverage $(cov INITED) after the seeds -> $(cov DONE) edges"
if [ "$status" -ne 0 ]; then
  grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 120
  echo "fuzz/$name FAILED (exit $status); the input is in $work/artifacts/ (see README, Fuzzing)" >&2
fi
exit "$status"
