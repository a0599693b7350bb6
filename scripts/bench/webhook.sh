#!/usr/bin/env bash
# Webhook ingest: wrk against the bench-only server of tests/bench/webhook_server.cpp (the product's
# HTTP server, webhook and router; a command.checkout handler that does no database work).
# Appends rows to $BENCH_ROWS (section, metric, value, target).
#   webhook.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: webhook.sh BUILD_DIR}
: "${BENCH_ROWS:?}" "${BENCH_TMP:?}"
duration=${BENCH_WEBHOOK_SECONDS:-10}
connections=${BENCH_WEBHOOK_CONNECTIONS:-64}
dir=$BENCH_TMP/webhook
mkdir -p "$dir"

export QSTASH_CURRENT_SIGNING_KEY=sig_bench_current QSTASH_NEXT_SIGNING_KEY=sig_bench_next
export DATABASE_URL="sqlite:$dir/shopd.db" ORDERS_PORT=0 LOG_FORMAT=json
"$build/tests/shopd_bench_webhook" serve >"$dir/server.out" 2>"$dir/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do grep -q '^listening' "$dir/server.out" && break; sleep 0.05; done
port=$(sed -n 's/^listening port=//p' "$dir/server.out")
[ -n "$port" ] || { echo "bench webhook server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }
url=http://127.0.0.1:$port/api/webhook

"$build/tests/shopd_bench_webhook" sign "$url" 1000 "$dir/good.lua"
"$build/tests/shopd_bench_webhook" sign "$url" 1000 "$dir/bad.lua" bad

run() { # run NAME SCRIPT TARGET_RPS
  local name=$1 script=$2 target=$3 line
  wrk -t1 -c2 -d1s -s "$script" "$url" >/dev/null  # warm-up: connections, allocator, page cache
  line=$(wrk -t1 -c"$connections" -d"${duration}s" -s "$script" "$url" | grep '^BENCH')
  echo "webhook $name: $line"
  local requests seconds non2xx p50 p99
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
  seconds=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
  non2xx=$(sed -n 's/.*non2xx=\([0-9]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$line")
  awk -v n="$name" -v r="$requests" -v s="$seconds" -v t="$target" -v a="$p50" -v b="$p99" 'BEGIN {
    printf "webhook ingest (%s)\trequests/s\t%.0f\t%s\n", n, r / s, t
    printf "webhook ingest (%s)\tp50 / p99 latency\t%.2f / %.2f ms\t\n", n, a / 1000, b / 1000 }' >>"$BENCH_ROWS"
  printf 'webhook ingest (%s)\tnon-2xx answers\t%s\t\n' "$name" "$non2xx" >>"$BENCH_ROWS"
}
run "signed" "$dir/good.lua" "≥ 60000"
run "bad signature" "$dir/bad.lua" ""
