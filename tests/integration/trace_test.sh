#!/usr/bin/env bash
# W3C Trace Context across the platform run as five processes (four roles + the relay): a checkout
# sent with a known `traceparent` is logged under its trace id by every process that handled the
# chain, because each emitted event carries a child traceparent through the outbox and the relay
# (Upstash-Forward-traceparent, delivered as `traceparent`). A chain started without one (the
# browser's checkout, `shopd publish`) gets a new trace at its edge; an invalid header is ignored.
source "$(dirname "$0")/lib.sh"
cd "$T"
platform_env "sqlite:$T/shopd.db"
start_smtp mail sink "$SMTP_PORT"
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null
# The relay logs each delivery at debug level; the roles' request lines are at info.
LOG_LEVEL=debug start_shopd relay serve --role=relay
for role in analytics inventory email orders; do start_shopd "$role" serve --role="$role"; done
O=http://127.0.0.1:$ORDERS_PORT I=http://127.0.0.1:$INVENTORY_PORT

sku=$(curl -s "$I/api/products" | jget "d['products'][0]['sku']")
currency=$(curl -s "$I/api/products" | jget "d['products'][0]['currency']")
cart() { printf '{"checkoutId":"%s","customer":{"email":"%s","name":"Ada"},"items":[{"sku":"%s","quantity":1}],"currency":"%s"}' "$1" "$2" "$sku" "$currency"; }
logged_in() { grep -q "trace_id=$2" "$T/$1.log"; }
# check_trace_id WHAT VALUE: VALUE is a valid trace id (32 lower-hex digits).
check_trace_id() {
  if [[ "$2" =~ ^[0-9a-f]{32}$ ]] && [ "$2" != 00000000000000000000000000000000 ]; then pass; else fail "$1: [$2]"; fi
}
# expect_trace_everywhere WHAT TRACE_ID: every process logged a line of that trace.
expect_trace_everywhere() {
  local name
  for name in orders inventory email analytics relay; do
    wait_for "$1: trace $2 in the $name log" 20 logged_in "$name" "$2"
  done
}
# The webhook request line of ROLE for TRACE_ID (a delivery that reached it as `traceparent`).
webhook_line() { grep "path=/api/webhook .*trace_id=$2" "$T/$1.log" | head -1; }

echo "== a browser checkout with a traceparent: one trace id in every process"
trace=4bf92f3577b34da6a3ce929d0e0e4736
cart chk-trace-1 ada@example.test >c1.json
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -H "traceparent: 00-$trace-00f067aa0ba902b7-01" --data-binary @c1.json "$O/api/checkout")
check_eq "checkout accepted" 202 "$status"
wait_for "the confirmation email" 20 mail_at_least 1
expect_trace_everywhere "browser checkout" "$trace"
check_contains "the checkout request line names the trace" "trace_id=$trace" \
  "$(grep 'path=/api/checkout ' "$T/orders.log")"
check_contains "the handler's own line names the trace" "trace_id=$trace" \
  "$(grep 'checkout queued.*chk-trace-1' "$T/orders.log")"
for role in orders inventory email analytics; do
  check_contains "$role received a delivery of the trace" "status=200" "$(webhook_line "$role" "$trace")"
done
check_contains "the relay logged its deliveries of the trace" "relay delivered" \
  "$(grep "trace_id=$trace" "$T/relay.log")"
outbox_traces=$(sqlite3 "$T/shopd.db" "SELECT headers FROM outbox WHERE body LIKE '%chk-trace-1%'")
check_contains "the outbox rows carry the trace" "\"traceparent\":\"00-$trace-" "$outbox_traces"
check_eq "no outbox row reuses the incoming parent id" 0 "$(grep -c 00f067aa0ba902b7 <<<"$outbox_traces" || true)"
check_eq "each event has its own parent id" "$(wc -l <<<"$outbox_traces")" \
  "$(grep -o "00-$trace-[0-9a-f]*" <<<"$outbox_traces" | sort -u | wc -l)"

echo "== shopd publish --traceparent continues the given trace"
trace2=0af7651916cd43dd8448eb211c80319c
cart chk-trace-2 grace@example.test >c2.json
out=$("$SHOPD_BINARY" publish command.checkout --data @c2.json --traceparent "00-$trace2-b7ad6b7169203331-01")
check_eq "publish reports the trace" "$trace2" "$(jget "d['traceId']" <<<"$out")"
wait_for "the second email" 20 mail_at_least 2
expect_trace_everywhere "publish --traceparent" "$trace2"

echo "== without a traceparent the chain starts a trace of its own"
cart chk-trace-3 carol@example.test >c3.json
out=$("$SHOPD_BINARY" publish command.checkout --data @c3.json)
trace3=$(jget "d['traceId']" <<<"$out")
check_trace_id "publish started a new trace" "$trace3"
wait_for "the third email" 20 mail_at_least 3
expect_trace_everywhere "publish without traceparent" "$trace3"

echo "== an invalid traceparent is ignored: the request is served under a new trace"
bad=00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01
cart chk-trace-4 dave@example.test >c4.json
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H "traceparent: $bad" \
  --data-binary @c4.json "$O/api/checkout")
check_eq "checkout with an invalid traceparent accepted" 202 "$status"
# An I/O thread writes its request lines once per event-loop iteration, maybe just after the answer.
wait_for "the request's log line" 10 grep -q 'path=/api/checkout .*correlation_id=chk-trace-4' "$T/orders.log"
line=$(grep 'path=/api/checkout .*correlation_id=chk-trace-4' "$T/orders.log" || true)
trace4=$(sed -n 's/.*trace_id=\([0-9a-f]\{32\}\).*/\1/p' <<<"$line")
check_trace_id "the request got a trace of its own" "$trace4"
if [ "$trace4" != "$trace" ]; then pass; else fail "the invalid traceparent's trace id was taken"; fi
wait_for "the fourth email" 20 mail_at_least 4
expect_trace_everywhere "checkout with an invalid traceparent" "$trace4"
check_eq "shopd publish refuses an invalid --traceparent" 2 \
  "$("$SHOPD_BINARY" publish command.checkout --data @c4.json --traceparent "$bad" >/dev/null 2>&1; echo $?)"

for name in "${!PID_@}"; do
  stop_shopd "${name#PID_}" TERM
  check_eq "${name#PID_} exits 0 on SIGTERM" 0 "$STOP_RC"
done
finish
