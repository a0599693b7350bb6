#!/usr/bin/env bash
# End to end: COUNT checkouts published to the relay by tests/bench/loader.cpp at RATE per second (0:
# as fast as the relay accepts them) through `shopd serve --role=all` with the file mail transport,
# until every confirmation email is written and every event delivered. Appends rows to $BENCH_ROWS.
#   e2e.sh BUILD_DIR sqlite|postgres RATE COUNT
set -euo pipefail
build=${1:?usage: e2e.sh BUILD_DIR sqlite|postgres RATE COUNT}
db=${2:?} rate=${3:?} count=${4:?}
: "${BENCH_ROWS:?}" "${BENCH_TMP:?}"
here=$(cd "$(dirname "$0")" && pwd)
shopd=$build/shopd
dir=$BENCH_TMP/e2e-$db-$rate
rm -rf "$dir" && mkdir -p "$dir"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }; fi
  if [ "$db" = postgres ]; then "$here/../pg-temp.sh" stop "$dir/pg" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ "$db" = postgres ]; then
  "$here/../pg-temp.sh" start "$dir/pg" >/dev/null
  info=$(cat "$dir/pg/info")
  host=$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"$info")
  pgport=$(sed -n 's/.*port=\([^ ]*\).*/\1/p' <<<"$info")
  export DATABASE_URL="postgresql://postgres@$host:$pgport/postgres"
else
  export DATABASE_URL="sqlite:$dir/shopd.db"
fi
export ORDERS_PORT EMAIL_PORT INVENTORY_PORT ANALYTICS_PORT RELAY_PORT
read -r ORDERS_PORT EMAIL_PORT INVENTORY_PORT ANALYTICS_PORT RELAY_PORT <<<"$(/usr/bin/python3 "$here/../free_ports.py" 5)"
export ORDERS_SERVICE_URL=http://127.0.0.1:$ORDERS_PORT EMAIL_SERVICE_URL=http://127.0.0.1:$EMAIL_PORT
export INVENTORY_SERVICE_URL=http://127.0.0.1:$INVENTORY_PORT ANALYTICS_SERVICE_URL=http://127.0.0.1:$ANALYTICS_PORT
export QSTASH_URL=http://127.0.0.1:$RELAY_PORT QSTASH_TOKEN=bench-qstash-token
export QSTASH_CURRENT_SIGNING_KEY=sig_bench_current QSTASH_NEXT_SIGNING_KEY=sig_bench_next
export SHOPD_API_TOKEN=bench-api-token MAIL_TRANSPORT="file:$dir/mail" MAIL_FROM="Shop <shop@example.test>"
export LOG_FORMAT=json

# The catalogue with stock for every checkout of the run (no shortfalls: every checkout is the same work).
/usr/bin/python3 - "$here/../../config/catalogue.json" "$dir/catalogue.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for p in c["products"]:
    p["stock"] = 100_000_000
json.dump(c, open(sys.argv[2], "w"))
PY
"$shopd" migrate --seed "$dir/catalogue.json" >"$dir/migrate.log"
# What earlier benchmarks wrote (the webhook run's request log is ~0.5 GB) goes to disk now: left to
# the kernel, its write-back starts 30 s later (vm.dirty_expire_centisecs) and queues this run's
# fsyncs behind it, a stall of 100-600 ms that the figures would wrongly charge to shopd.
sync

"$shopd" serve --role=all >"$dir/shopd.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -q '"msg":"ready"' "$dir/shopd.log" && break; sleep 0.05; done
grep -q '"msg":"ready"' "$dir/shopd.log" || { echo "shopd did not start:" >&2; tail "$dir/shopd.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
delivered() { curl -s "http://127.0.0.1:$RELAY_PORT/metrics" | awk '$1 == "shopd_relay_delivered_total" {print $2}'; }
emails() { find "$dir/mail" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l; }
sql() {
  if [ "$db" = postgres ]; then
    psql -XAtq "$DATABASE_URL" -c "$1"
  else
    sqlite3 -cmd ".timeout 5000" "$dir/shopd.db" "$1"
  fi
}
# Work not done yet: messages the relay has not finished and outbox rows not yet published.
backlog() {
  sql "SELECT (SELECT COUNT(*) FROM relay_messages WHERE state IN ('CREATED', 'ACTIVE', 'RETRY'))
            + (SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL)"
}

ticks0=$(cpu_ticks) delivered0=$(delivered) t0=$(date +%s.%N)
connections=${BENCH_CONNECTIONS:-$([ "$rate" = 0 ] && echo 8 || echo 4)}
"$build/tests/shopd_bench_loader" 127.0.0.1 "$RELAY_PORT" "$QSTASH_TOKEN" "$ORDERS_SERVICE_URL/api/webhook" \
  "$count" "$rate" "$connections" "$dir/published.csv" | tee "$dir/loader.out"
# Bounded: a run that cannot keep up reports the emails written by then (see "emails written").
deadline=$((SECONDS + ${BENCH_DRAIN_SECONDS:-180}))
while [ "$(emails)" -lt "$count" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
# A checkout is done when every event it caused is delivered, not when its email is written: the
# analytics deliveries may still be queued then (at max rate they are, for seconds).
while [ "$(backlog)" != 0 ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
ticks1=$(cpu_ticks) delivered1=$(delivered) t1=$(date +%s.%N)
left=$(backlog)
curl -s "http://127.0.0.1:$RELAY_PORT/metrics" >"$dir/metrics.txt"  # for a look afterwards (BENCH_KEEP)
# The last delivery's time, from the relay's own record (the polling above is 0.2 s coarse).
last_delivery_ms=$(sql "SELECT MAX(updated_at_ms) FROM relay_messages WHERE state = 'DELIVERED'")
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")

label="e2e $db, $([ "$rate" = 0 ] && echo "max rate" || echo "$rate/s"), $count checkouts"
/usr/bin/python3 "$here/e2e_stats.py" "$dir/published.csv" "$dir/mail" "$label" "$rate" \
  "$last_delivery_ms" "$delivered0" "$delivered1" "$left" >>"$BENCH_ROWS"
awk -v l="$label" -v c0="$ticks0" -v c1="$ticks1" \
    -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v rss="$rss_kb" -v hwm="$hwm_kb" 'BEGIN {
  printf "%s\tshopd CPU (mean, 100%% = one core)\t%.0f%%\t\n", l, 100 * (c1 - c0) / hz / (t1 - t0)
  printf "%s\tshopd RSS at the end / peak\t%.1f / %.1f MB\t\n", l, rss / 1024, hwm / 1024 }' >>"$BENCH_ROWS"
