#!/usr/bin/env bash
# The metrics of a whole platform (--role=all on SQLite): docs/metrics.md and /metrics name the same
# shopd_ metrics with the same types (both ways), every port serves the same registry, and the
# counters move as a checkout, a redelivery, a shortfall and a forged delivery say they should.
source "$(dirname "$0")/lib.sh"
cd "$T"

platform_env "sqlite:$T/shopd.db"
# More sessions than the process has threads that lease one (8 workers, 4 outbox dispatchers), so no
# lease ever waits here and shopd_db_pool_waits_total must stay 0; not the default, to show the pool
# as configured.
export DATABASE_POOL_SIZE=16 WORKER_THREADS=8
start_smtp mail sink "$SMTP_PORT"
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null
start_shopd all serve --role=all
O=http://127.0.0.1:$ORDERS_PORT I=http://127.0.0.1:$INVENTORY_PORT

scrape() { curl -sf "http://127.0.0.1:${1:-$ORDERS_PORT}/metrics"; }
# metric SERIES: the value of one series (name with its labels, exactly as rendered), or "absent".
metric() {
  scrape | awk -v s="$1" 'index($0, s " ") == 1 { print $2; found = 1 } END { if (!found) print "absent" }'
}
# "name type" lines, sorted: from the exposition's TYPE lines, and from the docs' tables.
exposed_types() { sed -n 's/^# TYPE \(shopd_[a-z0-9_]*\) \([a-z]*\)$/\1 \2/p' | sort; }
documented_types() {
  sed -n 's/^| `\(shopd_[a-z0-9_]*\)` | \([a-z]*\) |.*/\1 \2/p' "$SHOPD_SOURCE_DIR/docs/metrics.md" | sort
}

echo "== docs/metrics.md and /metrics name the same metrics"
documented=$(documented_types)
exposed=$(scrape | exposed_types)
check_eq "docs list metrics" 1 "$([ "$(wc -l <<<"$documented")" -ge 30 ] && echo 1 || echo 0)"
missing_in_docs=$(comm -13 <(echo "$documented") <(echo "$exposed"))
missing_in_code=$(comm -23 <(echo "$documented") <(echo "$exposed"))
check_eq "exposed but not documented (name type)" "" "$missing_in_docs"
check_eq "documented but not exposed (name type)" "" "$missing_in_code"
for port in "$EMAIL_PORT" "$INVENTORY_PORT" "$ANALYTICS_PORT" "$RELAY_PORT"; do
  check_eq "port $port serves the same registry" "$exposed" "$(scrape "$port" | exposed_types)"
done

echo "== every series is at 0 before any event, the pool as configured"
check_eq "pool size" 16 "$(metric shopd_db_pool_connections)"
check_eq "no pool waits" 0 "$(metric shopd_db_pool_waits_total)"
check_eq "checkout series exists at 0" 0 \
  "$(metric 'shopd_events_handled_total{role="orders",type="command.checkout",outcome="processed"}')"
check_eq "orders outbox empty" 0 "$(metric 'shopd_outbox_pending_events{role="orders"}')"
check_eq "orders outbox age 0 when empty" 0 "$(metric 'shopd_outbox_oldest_pending_age_seconds{role="orders"}')"

products=$(curl -s "$I/api/products")
sku=$(jget "d['products'][0]['sku']" <<<"$products")
stock=$(jget "d['products'][0]['stock']" <<<"$products")
currency=$(jget "d['products'][0]['currency']" <<<"$products")
checkout() { # checkout ID SKU QTY
  printf '{"checkoutId":"%s","customer":{"email":"ada@example.test","name":"Ada"},"items":[{"sku":"%s","quantity":%s}],"currency":"%s"}' \
    "$1" "$2" "$3" "$currency"
}
# settled: every producer's outbox empty and the relay idle, so the counters stopped moving.
settled() {
  local text; text=$(scrape)
  for role in orders email inventory; do
    grep -qx "shopd_outbox_pending_events{role=\"$role\"} 0" <<<"$text" || return 1
  done
  for state in CREATED ACTIVE RETRY; do
    grep -qx "shopd_relay_queue_depth{state=\"$state\"} 0" <<<"$text" || return 1
  done
}
sent_rows() { # producer: outbox rows marked sent
  /usr/bin/python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("SELECT COUNT(*) FROM outbox WHERE producer=? AND sent_at_ms IS NOT NULL",(sys.argv[2],)).fetchone()[0])' "$T/shopd.db" "$1"
}
handled() { metric "shopd_events_handled_total{role=\"$1\",type=\"$2\",outcome=\"$3\"}"; }

echo "== one checkout"
checkout chk-m-1 "$sku" 1 >c1.json
event_id=$("$SHOPD_BINARY" publish command.checkout --data @c1.json | jget "d['eventId']")
wait_eq "one email sent" 20 1 metric shopd_emails_sent_total
wait_eq "stock movement handled" 20 1 handled inventory inventory.stock.updated processed
wait_for "the platform to settle" 20 settled
check_eq "command.checkout processed" 1 "$(handled orders command.checkout processed)"
check_eq "command.checkout latency observed" 1 \
  "$(metric 'shopd_event_handler_duration_seconds_count{role="orders",type="command.checkout"}')"
check_eq "notification.email processed" 1 "$(handled email notification.email processed)"
check_eq "order created" 1 "$(metric shopd_orders_created_total)"
check_eq "order value counted" "$(jget "d['products'][0]['priceCents']" <<<"$products")" \
  "$(metric "shopd_order_value_cents_total{currency=\"$currency\"}")"
check_eq "no email failed" 0 "$(metric 'shopd_emails_failed_total{kind="transient"}')"
check_eq "no duplicates yet" 0 "$(metric 'shopd_inbox_duplicates_total{role="orders"}')"
for role in orders email inventory; do
  check_eq "$role: published counter = rows sent" "$(sent_rows "$role")" \
    "$(metric "shopd_outbox_published_total{role=\"$role\"}")"
done
check_eq "orders published something" 1 "$([ "$(sent_rows orders)" -ge 4 ] && echo 1 || echo 0)"
check_eq "no publish failures" 0 "$(metric 'shopd_outbox_publish_failures_total{role="orders"}')"
audits=$(handled analytics analytics.audit processed)
check_eq "analytics stored every audit" "$audits" "$(metric 'shopd_analytics_records_total{kind="audit"}')"
check_eq "relay delivered every event it accepted" "$(metric shopd_relay_published_total)" \
  "$(metric shopd_relay_delivered_total)"
check_eq "webhook requests counted by the HTTP layer" 1 \
  "$(metric 'shopd_http_requests_total{listener="orders",method="POST",route="/api/webhook",status="200"}')"
check_eq "nothing in the DLQ" 0 "$(metric shopd_relay_dlq_size)"

echo "== a redelivery is a duplicate, in the inbox and the handled counter"
# Straight to the webhook: through the relay, the same eventId is deduplicated before delivery.
"$SHOPD_BINARY" publish command.checkout --data @c1.json --event-id "$event_id" --direct --to orders >/dev/null
check_eq "duplicate counted" 1 "$(handled orders command.checkout duplicate)"
check_eq "inbox duplicate counted" 1 "$(metric 'shopd_inbox_duplicates_total{role="orders"}')"
check_eq "still one processed" 1 "$(handled orders command.checkout processed)"
check_eq "still one email" 1 "$(metric shopd_emails_sent_total)"

echo "== an order beyond the stock is a shortfall"
checkout chk-m-big "$sku" $((stock + 10)) >big.json
"$SHOPD_BINARY" publish command.checkout --data @big.json >/dev/null
wait_eq "shortfall counted" 20 1 metric shopd_stock_shortfalls_total
check_eq "shortfall movement counted" 1 "$(metric 'shopd_stock_movements_total{reason="order",status="shortfall"}')"

echo "== an unknown SKU is rejected, non-retryable"
checkout chk-m-bad NO-SUCH-SKU 1 >bad.json
"$SHOPD_BINARY" publish command.checkout --data @bad.json >/dev/null
wait_eq "rejection counted" 20 1 handled orders command.checkout rejected
check_eq "rejection reason counted" 1 "$(metric 'shopd_checkouts_rejected_total{reason="unknown_sku"}')"
wait_eq "the rejected delivery reaches the DLQ" 20 1 metric shopd_relay_failed_total

echo "== forged and malformed deliveries are counted under type=unknown"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d '{"eventType":"command.checkout"}' "$O/api/webhook")
check_eq "unsigned delivery refused" 401 "$code"
check_eq "unauthorized counted" 1 "$(handled orders unknown unauthorized)"
check_eq "signature reason counted" 1 "$(metric 'shopd_webhook_signature_rejected_total{role="orders",reason="missing"}')"
echo '{"not":"an envelope"}' >junk.json
sig=$("$SHOPD_BINARY" sign --url "$O/api/webhook" --body @junk.json)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H "Upstash-Signature: $sig" --data-binary @junk.json "$O/api/webhook")
check_eq "signed junk refused, non-retryable" 489 "$code"
check_eq "invalid envelope counted under unknown" 1 "$(handled orders unknown rejected)"
check_eq "the handled checkout rejections unchanged" 1 "$(handled orders command.checkout rejected)"
check_eq "no handler error" 0 "$(handled orders command.checkout error)"
check_eq "no bug anywhere" "" "$(scrape | grep '^shopd_events_handled_total{.*outcome="error"}' | grep -v ' 0$' || true)"

stop_shopd all TERM
check_eq "exits 0 on SIGTERM" 0 "$STOP_RC"
finish
