#!/usr/bin/env bash
# End to end, with the real binary: checkouts published through the relay become an order (catalogue
# prices), an email at a real SMTP server, a stock movement and one audit trail under one correlation
# id. Runs the platform as one process (--role=all) and as five processes (four roles + the relay),
# on SQLite and on PostgreSQL.
#   e2e_test.sh all sqlite | split sqlite | all postgres | split postgres
source "$(dirname "$0")/lib.sh"
mode=${1:-all}
db=${2:-sqlite}
cd "$T"

if [ "$db" = postgres ]; then url=$(new_pg_db); else url="sqlite:$T/shopd.db"; fi
platform_env "$url"
export RELAY_DEFAULT_RETRIES=4

start_smtp mail sink "$SMTP_PORT"
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null

if [ "$mode" = all ]; then
  start_shopd all serve --role=all
else
  for role in relay analytics inventory email orders; do start_shopd "$role" serve --role="$role"; done
fi
thread_names() { cat /proc/"$1"/task/*/comm | sort -u | tr '\n' ' '; }
if [ "$mode" = all ]; then
  # Sharing the process, the email role's SMTP sessions run on workers of its own (each names itself
  # as it starts, which may come just after "ready" on a slow machine).
  has_email_workers() { [[ "$(thread_names "$PID_all")" == *email-work-0* ]]; }
  wait_for "the email role has its own workers" 10 has_email_workers
else
  check_eq "alone, the email role uses the shared workers" "" "$(thread_names "$PID_email" | grep -o 'email-work-[0-9]*' || true)"
fi
O=http://127.0.0.1:$ORDERS_PORT I=http://127.0.0.1:$INVENTORY_PORT
A=http://127.0.0.1:$ANALYTICS_PORT E=http://127.0.0.1:$EMAIL_PORT

products=$(curl -s "$I/api/products")
sku_a=$(jget "d['products'][0]['sku']" <<<"$products");  price_a=$(jget "d['products'][0]['priceCents']" <<<"$products")
sku_b=$(jget "d['products'][1]['sku']" <<<"$products");  price_b=$(jget "d['products'][1]['priceCents']" <<<"$products")
stock_a=$(jget "d['products'][0]['stock']" <<<"$products"); currency=$(jget "d['products'][0]['currency']" <<<"$products")

checkout() { # checkout ID EMAIL SKU QTY [SKU QTY]
  local id=$1 email=$2; shift 2
  local items="" sep=""
  while [ $# -gt 0 ]; do items+="$sep{\"sku\":\"$1\",\"quantity\":$2}"; sep=","; shift 2; done
  printf '{"checkoutId":"%s","customer":{"email":"%s","name":"Ada Lovelace"},"items":[%s],"currency":"%s"}' \
    "$id" "$email" "$items" "$currency"
}
checkout_status() { api "$O/api/checkouts/$1" | jget "d.get('status')"; }
is_status() { [ "$(checkout_status "$1")" = "$2" ]; }
audit_has() { api "$A/api/audit?correlationId=$1&limit=100" | jget "[r['action'] for r in d['records']]" | grep -q "\"$2\""; }
stock_of() { curl -s "$I/api/products/$1" | jget "d['stock']"; }

echo "== a checkout becomes an order, an email, a stock movement and an audit trail ($mode, $db)"
checkout chk-e2e-1 ada@example.test "$sku_a" 2 "$sku_b" 1 >c1.json
published=$("$SHOPD_BINARY" publish command.checkout --data @c1.json)
event_id=$(jget "d['eventId']" <<<"$published")
wait_for "order for chk-e2e-1" 20 is_status chk-e2e-1 accepted
order_id=$(api "$O/api/checkouts/chk-e2e-1" | jget "d['orderId']")
order=$(api "$O/api/orders/$order_id")
check_eq "subtotal from catalogue prices" "$((2 * price_a + price_b))" "$(jget "d['subtotalCents']" <<<"$order")"
check_eq "unit price of line 1" "$price_a" "$(jget "d['items'][0]['unitPriceCents']" <<<"$order")"
wait_for "the confirmation email" 20 mail_at_least 1
eml=$(cat "$T"/mail-mail/1.eml)
check_contains "email names the order" "$order_id" "$eml"
check_contains "email goes to the customer" "ada@example.test" "$(cat "$T"/mail-mail/1.json)"
wait_eq "stock of $sku_a decremented" 20 "$((stock_a - 2))" stock_of "$sku_a"
for action in order.created stock.updated email.sent; do
  wait_for "audit $action under chk-e2e-1" 20 audit_has chk-e2e-1 "$action"
done
correlations=$(api "$A/api/audit?correlationId=chk-e2e-1&limit=100" | jget "sorted(set(r['correlationId'] for r in d['records']))")
check_eq "one correlation id across every hop" '["chk-e2e-1"]' "$correlations"
check_eq "email recorded as sent" sent "$(api "$E/api/emails?orderId=$order_id" | jget "d['emails'][0]['status']")"

echo "== redelivery and a repeated checkoutId change nothing"
"$SHOPD_BINARY" publish command.checkout --data @c1.json --event-id "$event_id" >/dev/null   # same eventId
"$SHOPD_BINARY" publish command.checkout --data @c1.json >/dev/null                         # same checkoutId
checkout chk-e2e-2 grace@example.test "$sku_b" 1 >c2.json
"$SHOPD_BINARY" publish command.checkout --data @c2.json >/dev/null   # a later checkout as a marker
wait_for "the marker checkout" 20 is_status chk-e2e-2 accepted
wait_for "the marker's email" 20 mail_at_least 2
sleep 0.5
check_eq "still one order for ada" 1 "$(api "$O/api/orders?email=ada@example.test" | jget "len(d['orders'])")"
check_eq "two emails in all" 2 "$(mail_count)"
check_eq "stock of $sku_a decremented once" "$((stock_a - 2))" "$(stock_of "$sku_a")"

echo "== how the outboxes reach the relay: in this process when it runs there, else over HTTP ($mode)"
# sum METRIC PORT [FILTER]: the sum of METRIC's series on PORT's /metrics whose labels contain FILTER.
sum() {
  curl -s "http://127.0.0.1:$2/metrics" |
    awk -v m="$1" -v f="${3:-}" 'index($0, m "{") == 1 && index($0, f) { n += $2 } END { print n + 0 }'
}
check_eq "the outboxes published" 1 "$([ "$(sum shopd_outbox_published_total "$ORDERS_PORT")" -ge 4 ] && echo 1 || echo 0)"
batches=$(sum shopd_http_requests_total "$RELAY_PORT" 'route="/v2/batch"')
in_transaction=$(sum shopd_outbox_published_in_transaction_total "$ORDERS_PORT")
if [ "$mode" = all ]; then
  check_contains "the log says so" "outboxes publish to the relay in this process" "$(cat "$T/all.log")"
  check_eq "no /v2/batch request" 0 "$batches"
  check_eq "the handlers' transactions stored their events in the relay's queue" 1 \
    "$([ "$in_transaction" -ge 4 ] && echo 1 || echo 0)"
  # The relay's deliveries to the roles beside it are answered in memory: no webhook request came
  # over a socket, and each was still logged as a request.
  check_eq "deliveries answered in-process" 1 \
    "$([ "$(grep 'path=/api/webhook ' "$T/all.log" | grep -c 'remote=in-process')" -ge 4 ] && echo 1 || echo 0)"
  check_eq "no delivery over a socket" 0 "$(grep 'path=/api/webhook ' "$T/all.log" | grep -vc 'remote=in-process')"
else
  check_eq "deliveries between processes go over sockets" 0 \
    "$(cat "$T"/orders.log "$T"/email.log "$T"/inventory.log "$T"/analytics.log | grep -c 'remote=in-process')"
  check_eq "no events stored in a relay's queue by the handlers" 0 "$in_transaction"
  check_eq "the orders role does not say so" 0 "$(grep -c 'outboxes publish to the relay in this process' "$T/orders.log")"
  check_eq "batches went over HTTP" 1 "$([ "$batches" -ge 1 ] && echo 1 || echo 0)"
fi

if [ "$mode" = all ] && [ "$db" = sqlite ]; then
  echo "== an unknown SKU is rejected without retries, audited, and reaches the DLQ"
  checkout chk-bad-sku bob@example.test NO-SUCH-SKU 1 >bad.json
  "$SHOPD_BINARY" publish command.checkout --data @bad.json >/dev/null
  wait_for "chk-bad-sku rejected" 20 is_status chk-bad-sku rejected
  wait_for "checkout.rejected audited" 20 audit_has chk-bad-sku checkout.rejected
  wait_for "the dead letter in analytics" 20 sh -c "curl -s -H 'Authorization: Bearer $SHOPD_API_TOKEN' '$A/api/dlq' | grep -q chk-bad-sku"

  echo "== an order beyond the stock records a shortfall and never drives stock negative"
  stock_b=$(stock_of "$sku_b")
  checkout chk-too-many carol@example.test "$sku_b" $((stock_b + 5)) >big.json
  "$SHOPD_BINARY" publish command.checkout --data @big.json >/dev/null
  wait_for "stock.shortfall audited" 20 audit_has chk-too-many stock.shortfall
  check_eq "stock unchanged by the shortfall" "$stock_b" "$(stock_of "$sku_b")"
  check_contains "shortfall in the ledger" shortfall "$(api "$I/api/stock/$sku_b/movements")"

  echo "== SMTP down: the email is retried and sent once it returns"
  stop_pid "$SMTP_PID_mail"
  checkout chk-smtp-down dave@example.test "$sku_a" 1 >down.json
  "$SHOPD_BINARY" publish command.checkout --data @down.json >/dev/null
  wait_for "chk-smtp-down accepted" 20 is_status chk-smtp-down accepted
  down_order=$(api "$O/api/checkouts/chk-smtp-down" | jget "d['orderId']")
  wait_for "a failed SMTP attempt" 20 sh -c "curl -s -H 'Authorization: Bearer $SHOPD_API_TOKEN' '$E/api/emails?orderId=$down_order' | grep -q '\"attempts\":[1-9]'"
  start_smtp mail sink "$SMTP_PORT"
  wait_for "the email after SMTP returned" 40 sh -c "curl -s -H 'Authorization: Bearer $SHOPD_API_TOKEN' '$E/api/emails?orderId=$down_order' | grep -q '\"status\":\"sent\"'"

  echo "== SMTP refusing the recipient: non-retryable, audited, visible in the DLQ"
  stop_pid "$SMTP_PID_mail"
  start_smtp mail reject-rcpt "$SMTP_PORT" --reject nobody@example.test
  checkout chk-bad-rcpt nobody@example.test "$sku_a" 1 >rcpt.json
  "$SHOPD_BINARY" publish command.checkout --data @rcpt.json >/dev/null
  wait_for "email.failed audited" 20 audit_has chk-bad-rcpt email.failed
  wait_for "the refused email in the DLQ" 20 sh -c "curl -s -H 'Authorization: Bearer $SHOPD_API_TOKEN' '$A/api/dlq' | grep -q nobody@example.test"
fi

for name in "${!PID_@}"; do
  stop_shopd "${name#PID_}" TERM
  check_eq "${name#PID_} exits 0 on SIGTERM" 0 "$STOP_RC"
done
finish
