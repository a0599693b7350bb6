#!/usr/bin/env bash
# `make bench`: build the release preset, run every benchmark, print one table and write it with the
# machine's description to bench/results/latest.md. ~8 minutes (the PostgreSQL runs ~4); each e2e
# run waits at most BENCH_DRAIN_SECONDS for its emails and deliveries, so a slow machine stays under
# ~15 minutes.
#   BENCH_CHECKOUTS       checkouts of each max-rate end-to-end run (default 20000)
#   BENCH_RATE_CHECKOUTS  checkouts of each fixed-rate run (default 10000, 20 s at 500/s)
#   BENCH_RATE            the fixed rate (default 500 per second)
#   BENCH_DRAIN_SECONDS   how long an e2e run waits for its emails and deliveries after the last
#                         publish (default 180)
#   BENCH_ONLY            a subset: any of "webhook e2e-sqlite e2e-postgres startup" (default: all)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# ccache when the machine has it (install-deps does not install it): a configure naming a launcher
# that is not there fails.
if [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache
fi
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target shopd shopd_bench_webhook shopd_bench_loader
build=$root/build/release

checkouts=${BENCH_CHECKOUTS:-20000}
rate_checkouts=${BENCH_RATE_CHECKOUTS:-10000}
rate=${BENCH_RATE:-500}
only=${BENCH_ONLY:-webhook e2e-sqlite e2e-postgres startup}
BENCH_TMP=$(mktemp -d /tmp/shopd-bench.XXXXXX)
BENCH_ROWS=$BENCH_TMP/rows.tsv
export BENCH_TMP BENCH_ROWS
trap '[ -n "${BENCH_KEEP:-}" ] && echo "kept $BENCH_TMP" >&2 || rm -rf "$BENCH_TMP"' EXIT
: >"$BENCH_ROWS"
started=$SECONDS

wants() { [[ " $only " == *" $1 "* ]]; }
wants webhook && scripts/bench/webhook.sh "$build"
if wants e2e-sqlite; then
  scripts/bench/e2e.sh "$build" sqlite "$rate" "$rate_checkouts"
  scripts/bench/e2e.sh "$build" sqlite 0 "$checkouts"
fi
if wants e2e-postgres; then
  scripts/bench/e2e.sh "$build" postgres "$rate" "$rate_checkouts"
  scripts/bench/e2e.sh "$build" postgres 0 "$checkouts"
fi
wants startup && /usr/bin/python3 scripts/bench/startup.py "$build/shopd" "$BENCH_TMP/startup" >>"$BENCH_ROWS"

mem_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
{
  echo "# shopd benchmarks"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include || echo ' + local changes')"
  echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
  echo "- RAM: $((mem_kb / 1024)) MiB; kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores; more than that means other work competed with the benchmarks)"
  echo "- build: release preset ($(c++ --version | head -1)); run time $((SECONDS - started)) s"
  echo
  echo "| benchmark | metric | value | target |"
  echo "|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$BENCH_ROWS"
} >"$BENCH_TMP/latest.md"
mkdir -p bench/results
cp "$BENCH_TMP/latest.md" bench/results/latest.md
echo
cat bench/results/latest.md
