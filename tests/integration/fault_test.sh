#!/usr/bin/env bash
# Fault injection with the real binary: the platform split into five processes (four roles + the
# relay, on fixed ports, one shared database) takes a seeded checkout load (checkout_load.py) while
# something breaks, then, once quiet, every invariant of DESIGN §3 is checked (fault_check.py):
# one order per checkoutId, stock = initial - what was applied (shortfalls recorded, never
# negative), one email per order (duplicates measured), every event delivered or in the DLQ.
#   fault_test.sh chaos sqlite|postgres [CHECKOUTS] [all]
#                                                     SIGKILL and restart every role and the relay
#                                                     at random moments during the load; with `all`,
#                                                     one process runs them all (serve --role=all: the
#                                                     handlers store their events in the relay's queue)
#   fault_test.sh smtp-outage                         stop the SMTP server for a while, then restart it
#   fault_test.sh smtp-stall                          one --role=all process whose SMTP server hangs
#                                                     (accepts, never answers): the other roles go on
#   fault_test.sh db-outage                           stop PostgreSQL (a private one) for a while
# SHOPD_FAULT_SEED=N replays a run's plan and chaos schedule (the seed is printed first).
source "$(dirname "$0")/lib.sh"
scenario=${1:?usage: fault_test.sh chaos sqlite|postgres [N] [all] | smtp-outage | smtp-stall | db-outage}
db=${2:-sqlite}
count=${3:-1000}
layout=${4:-split}
seed=${SHOPD_FAULT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
RANDOM=$((seed % 32768))
[ "$scenario" = db-outage ] && db=postgres
[ "$scenario" = smtp-stall ] && layout=all
echo "== fault test: $scenario on $db ($layout), seed $seed (SHOPD_FAULT_SEED=$seed reproduces the plan and schedule)"
cd "$T"
py=/usr/bin/python3
dir=$SHOPD_SOURCE_DIR/tests/integration

case "$scenario" in
  db-outage)
    # A private server (its info outside $T, which cleanup removes first): stopping it disturbs no
    # other test.
    pg_dir=$(mktemp -d /tmp/shopd-fault-pg.XXXXXX)
    # pg_ctl runs as the postgres user, who may not enter $T: run it from /.
    pg_temp() { (cd / && "$SHOPD_SOURCE_DIR/scripts/pg-temp.sh" "$1" "$pg_dir" >/dev/null); }
    pg_temp start
    trap 'cleanup; pg_temp stop 2>/dev/null; rm -rf "$pg_dir"' EXIT
    pg_url="postgresql://postgres@127.0.0.1:$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$pg_dir/info")/postgres"
    ;;
  chaos) [ "$db" = postgres ] && pg_url=$(new_pg_db) ;;
  smtp-outage | smtp-stall) ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
if [ "$db" = postgres ]; then url=$pg_url; else url="sqlite:$T/shopd.db"; fi
platform_env "$url"
# Four retries (about 24 s of back-off at RELAY_BACKOFF_SCALE=1) outlast the outages here; attempts
# time out after 3 s, so a lease lost with its relay or its database ends within 33 s.
export RELAY_DEFAULT_RETRIES=4 RELAY_DELIVERY_TIMEOUT_MS=3000 DATABASE_POOL_SIZE=4
# Under chaos a destination is down for as long as its restart takes, seconds on a loaded machine:
# at 1 ms a second, three of the four retries fall within 2 s of the first attempt. At 3 ms they
# come 0.04, 0.5, 5.9 and 72 s after it.
[ "$scenario" = chaos ] && export RELAY_BACKOFF_SCALE=3

# A catalogue where half the SKUs can run out (shortfalls) and half cannot (exact arithmetic).
cat >catalogue.json <<'EOF'
{"products": [
  {"sku": "TEE-S", "name": "T-shirt S", "priceCents": 2490, "currency": "EUR", "stock": 60},
  {"sku": "TEE-M", "name": "T-shirt M", "priceCents": 2490, "currency": "EUR", "stock": 80},
  {"sku": "MUG", "name": "Mug", "priceCents": 1290, "currency": "EUR", "stock": 100000},
  {"sku": "CAP", "name": "Cap", "priceCents": 1990, "currency": "EUR", "stock": 100000},
  {"sku": "TOTE", "name": "Tote bag", "priceCents": 1590, "currency": "EUR", "stock": 100000}
]}
EOF
echo '{"TEE-S": 60, "TEE-M": 80, "MUG": 100000, "CAP": 100000, "TOTE": 100000}' >initial.json
skus=TEE-S,TEE-M,MUG,CAP,TOTE

if [ "$scenario" = smtp-stall ]; then start_smtp mail stall "$SMTP_PORT"; else start_smtp mail sink "$SMTP_PORT"; fi
"$SHOPD_BINARY" migrate --seed "$T/catalogue.json" >/dev/null
roles=(relay analytics inventory email orders)
[ "$layout" = all ] && roles=(all)
for role in "${roles[@]}"; do start_shopd "$role" serve --role="$role"; done

declare -A restarts=()
slowest_restart_ms=0
# restart ROLE: SIGKILL it and start it again on its port (its old log is kept as ROLE.log.N).
restart() {
  local role=$1 n=${restarts[$1]:-0} started=${EPOCHREALTIME/./} ms
  stop_shopd "$role" KILL
  mv "$T/$role.log" "$T/$role.log.$n"
  restarts[$role]=$((n + 1))
  start_shopd "$role" serve --role="$role"
  ms=$(((${EPOCHREALTIME/./} - started) / 1000))
  [ "$ms" -gt "$slowest_restart_ms" ] && slowest_restart_ms=$ms
  return 0
}
pending() { "$py" "$dir/fault_check.py" pending --db "$DATABASE_URL"; }
undecided() { "$py" "$dir/fault_check.py" undecided --db "$DATABASE_URL" --plan "$T/plan.json" 2>/dev/null; }
ready_code() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz"; }
# load N PREFIX RATE: the seeded load in the background, RATE checkouts a second; its pid in LOAD_PID.
load() {
  "$py" "$dir/checkout_load.py" --relay "$QSTASH_URL" --token "$QSTASH_TOKEN" \
    --destination "$ORDERS_SERVICE_URL/api/webhook" --failure-callback "$ANALYTICS_SERVICE_URL/api/dlq/callback" \
    --skus "$skus" --count "$1" --seed "$seed" --prefix "$2" --plan "$T/plan.json" --timeout 240 --rate "$3" \
    >"$T/load.out" 2>&1 &
  LOAD_PID=$!
  SHOPD_PIDS+=("$LOAD_PID")
}
load_done() { ! kill -0 "$LOAD_PID" 2>/dev/null; }
finish_load() {
  local rc=0
  wait "$LOAD_PID" || rc=$?
  cat "$T/load.out"
  check_eq "the load published every checkout" 0 "$rc"
}
# quiesce SECS: wait until no outbox row is unsent and no relay message unfinished.
quiesce() {
  local started=$SECONDS
  wait_eq "quiescence (no unsent outbox row, no unfinished relay message)" "$1" 0 pending
  echo "quiescent after $((SECONDS - started)) s"
}
max_duplicates=0

case "$scenario" in
  chaos)
    echo "== $count checkouts while every role and the relay are SIGKILLed and restarted at random"
    load "$count" "chk-$seed" 40
    kills=0
    victims=()
    # The chaos lasts as long as the load, then goes on while work is under way (a slow build works
    # through a backlog), up to 40 kills. Victims come in rounds, each a random order of all five,
    # so every one of them is killed.
    while ! load_done || { [ "$kills" -lt 40 ] && [ "$(pending)" -gt 0 ]; }; do
      if [ ${#victims[@]} -eq 0 ]; then
        victims=("${roles[@]}")
        for ((i = ${#victims[@]} - 1; i > 0; i--)); do
          j=$((RANDOM % (i + 1))); v=${victims[i]}; victims[i]=${victims[j]}; victims[j]=$v
        done
      fi
      sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
      restart "${victims[0]}"
      victims=("${victims[@]:1}")
      kills=$((kills + 1))
    done
    finish_load
    summary=""
    for role in "${roles[@]}"; do summary+=" $role=${restarts[$role]:-0}"; done
    echo "chaos: $kills kills (by role:$summary), the slowest down for $slowest_restart_ms ms"
    # Each email kill may cut off at most the deliveries it had in flight after SMTP accepted them.
    max_duplicates=$(( ${restarts[email]:-${restarts[all]:-0}} * ${RELAY_PER_DESTINATION_CONCURRENCY:-64} ))
    ;;
  smtp-outage)
    echo "== 300 checkouts; the SMTP server stops for 6 s in the middle, then comes back"
    load 300 "chk-smtp-$seed" 30
    wait_for "the first 30 emails" 60 test -f "$T/mail-mail/30.json"
    stop_pid "$SMTP_PID_mail"
    sleep 6
    failed_sends=$(api "$EMAIL_SERVICE_URL/metrics" | sed -n 's/^shopd_emails_failed_total{kind="transient"} \([0-9]*\).*/\1/p')
    echo "SMTP down: ${failed_sends:-0} hand-overs failed transiently"
    check_eq "sends failed while SMTP was down" yes "$([ "${failed_sends:-0}" -gt 0 ] && echo yes || echo no)"
    start_smtp mail sink "$SMTP_PORT"
    finish_load
    ;;
  smtp-stall)
    echo "== 200 checkouts into one --role=all process while its SMTP server hangs, then a working one"
    load 200 "chk-stall-$seed" 40
    # Each send waits on the hung server until libcurl gives up on its greeting (the 10 s connect
    # timeout), then again at the retry. On the email role's own workers; on workers shared with the
    # other roles those waits would stall every checkout behind them.
    wait_eq "every checkout decided while SMTP hangs" 30 0 undecided
    check_eq "no email sent while SMTP hangs" 0 "$(mail_count)"
    stop_pid "$SMTP_PID_mail"  # closes the hung sessions: those sends fail, transiently
    start_smtp mail sink "$SMTP_PORT"
    finish_load
    # A delivery the relay gave up waiting for (RELAY_DELIVERY_TIMEOUT_MS) still runs once a worker
    # is free; its retry may meet it mid-send: at most the deliveries in flight to the email role.
    max_duplicates=${RELAY_PER_DESTINATION_CONCURRENCY:-64}
    ;;
  db-outage)
    echo "== 300 checkouts; PostgreSQL stops for 8 s in the middle, then comes back"
    load 300 "chk-db-$seed" 30
    wait_for "the first orders" 60 sh -c "[ \$(psql '$DATABASE_URL' -XAtc 'SELECT COUNT(*) FROM orders') -gt 20 ]"
    pg_temp halt
    for role in "${roles[@]}"; do
      port_var="${role^^}_PORT"
      wait_eq "$role not ready without its database" 20 503 ready_code "${!port_var}"
    done
    echo "PostgreSQL down: all five processes answer 503 on /readyz"
    sleep 8
    claims=$(grep -c 'relay claim failed' "$T/relay.log" || true)
    echo "relay: $claims failed claims while the database was down (it keeps polling)"
    check_eq "the relay kept trying to claim work" yes "$([ "$claims" -gt 0 ] && echo yes || echo no)"
    for role in "${roles[@]}"; do
      pid_var="PID_$role"
      if kill -0 "${!pid_var}" 2>/dev/null; then pass; else fail "$role died while the database was down"; fi
    done
    pg_temp resume
    for role in "${roles[@]}"; do
      port_var="${role^^}_PORT"
      wait_eq "$role ready again" 30 200 ready_code "${!port_var}"
    done
    echo "PostgreSQL back: all five processes ready again"
    finish_load
    # A hand-over SMTP accepted while the database could not record it is sent again: the same
    # window as a kill, bounded by the deliveries in flight to the email role.
    max_duplicates=${RELAY_PER_DESTINATION_CONCURRENCY:-64}
    ;;
esac

quiesce 360
if [ "$scenario" = chaos ]; then
  # A delivery whose every attempt met its destination down is a dead letter, as it would be in
  # production; the operator's answer is to replay it, and so is the test's. Any other dead letter
  # (retries left unused, or a final answer that is not transient) fails here.
  dead=$("$py" "$dir/fault_check.py" dead --db "$DATABASE_URL" --plan "$T/plan.json") || fail "dead letters no fault explains"
  if [ -n "$dead" ]; then
    echo "replaying $(wc -l <<<"$dead") dead letters of the chaos with shopd dlq replay"
    # shellcheck disable=SC2086  # one DLQ id a word
    "$SHOPD_BINARY" dlq replay $dead >/dev/null
    quiesce 120
  fi
fi
echo "== invariants"
if "$py" "$dir/fault_check.py" check --db "$DATABASE_URL" --plan "$T/plan.json" --initial "$T/initial.json" \
    --mail "$T/mail-mail" --relay "$QSTASH_URL" --max-duplicates "$max_duplicates"; then
  pass
else
  fail "invariants violated (seed $seed)"
fi

for role in "${roles[@]}"; do
  stop_shopd "$role" TERM
  check_eq "$role exits 0 on SIGTERM" 0 "$STOP_RC"
done
finish
