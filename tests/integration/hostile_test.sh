#!/usr/bin/env bash
# Hostile input against the real binary (`shopd serve --role=all`, SQLite): oversize bodies and
# headers, slow and never-reading clients, connection floods, pipelined floods, hostile JSON, forged
# and replayed signatures, SQL metacharacters. Each gets its documented answer (README, "Hostile
# input"), and after each family the platform still serves: /healthz answers and a normal checkout
# still becomes an order. The raw-socket clients are tests/integration/hostile.py.
source "$(dirname "$0")/lib.sh"
cd "$T"
PY=/usr/bin/python3
DRIVER="$SHOPD_SOURCE_DIR/tests/integration/hostile.py"

platform_env "sqlite:$T/shopd.db"
export MAIL_TRANSPORT="file:$T/mail"
# A body limit above 100000 nested '[' (so that the JSON parser sees them); timeouts short enough
# for the slow clients to be cut within seconds.
export HTTP_BODY_LIMIT=262144 HTTP_HEADER_TIMEOUT_MS=1500 HTTP_READ_TIMEOUT_MS=1500
export HTTP_WRITE_TIMEOUT_MS=1500 HTTP_IDLE_TIMEOUT_MS=20000
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null
start_shopd all serve --role=all
O=http://127.0.0.1:$ORDERS_PORT
export SHOPD_PID=$PID_all
SKU=$(curl -s "http://127.0.0.1:$INVENTORY_PORT/api/products" | jget "d['products'][0]['sku']")
export SKU

# run_section NAME...: the driver's checks for NAME, counted here.
run_section() {
  local out rc=0
  out=$("$PY" "$DRIVER" "$@" 2>&1) || rc=$?
  echo "$out"
  checks=$((checks + $(grep -c '^ok:' <<<"$out" || true)))
  failures=$((failures + $(grep -c '^FAIL:' <<<"$out" || true)))
  # The summary line is the driver's last: without it the driver itself failed (a bug in the test).
  grep -q "^hostile.py $*: [0-9]* checks" <<<"$out" || fail "driver $* did not finish (exit $rc)"
}

# no_failure_logged NAME: no 500 (a 503 asks the relay to retry: fine), no handler or connection failure.
no_failure_logged() {
  check_eq "no 500, no handler or connection failure in the $1 log" "" \
    "$(grep -E 'status=5[0-9][0-9]|handler failed|uncaught|connection failed' "$T/$1.log" | grep -v 'status=503' | head -3)"
}

n=0
# still_serving WHAT: the process is alive, /healthz answers, and a checkout becomes an order.
still_serving() {
  n=$((n + 1))
  if ! kill -0 "$PID_all" 2>/dev/null; then fail "shopd died during $1"; return; fi
  check_eq "/healthz after $1" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$O/healthz")"
  local id="chk-after-$n"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary \
    "{\"checkoutId\":\"$id\",\"customer\":{\"email\":\"ada@example.test\",\"name\":\"Ada\"},\"items\":[{\"sku\":\"$SKU\",\"quantity\":1}],\"currency\":\"EUR\"}" \
    "$O/api/checkout")
  check_eq "a checkout is accepted after $1" 202 "$code"
  wait_eq "the checkout after $1 becomes an order" 30 accepted \
    sh -c "curl -s -H 'Authorization: Bearer $SHOPD_API_TOKEN' '$O/api/checkouts/$id' | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])'"
}

still_serving "start-up"
for section in limits slow pipeline json signatures sql; do
  run_section "$section"
  still_serving "$section"
done
no_failure_logged all

echo "== connections (an instance of its own, HTTP_MAX_CONNECTIONS=8)"
stop_shopd all TERM
check_eq "shopd exits 0 on SIGTERM after all that" 0 "$STOP_RC"
platform_env "sqlite:$T/limits.db"
export MAIL_TRANSPORT="file:$T/mail2" HTTP_MAX_CONNECTIONS=8 HTTP_IDLE_TIMEOUT_MS=30000
start_shopd conn serve --role=all
run_section connections
no_failure_logged conn
stop_shopd conn TERM
check_eq "the connection-limited instance exits 0" 0 "$STOP_RC"
finish
