#!/usr/bin/env bash
# An outbox event the relay refuses for good is set aside, and the events after it go on: the orders
# role's events of one checkout go to a relay whose HTTP_BODY_LIMIT (2 KiB) is smaller than some
# of them. The batch of four is refused whole (413), its rows go one at a time, the small ones are
# delivered (the stock moves), the large ones are kept with their error, `shopd outbox list` shows
# them, and once the relay takes larger bodies `shopd outbox requeue` delivers them (the email).
source "$(dirname "$0")/lib.sh"
cd "$T"
platform_env "sqlite:$T/shopd.db"
start_smtp mail sink "$SMTP_PORT"
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null
I=http://127.0.0.1:$INVENTORY_PORT O=http://127.0.0.1:$ORDERS_PORT

echo "== a relay that refuses bodies over 2 KiB"
HTTP_BODY_LIMIT=2048 start_shopd relay serve --role=relay
start_shopd orders serve --role=orders
start_shopd email serve --role=email
start_shopd inventory serve --role=inventory
start_shopd analytics serve --role=analytics
metric() { curl -s "$O/metrics" | sed -n "s/^$1 //p"; }
check_eq "nothing set aside yet" 0 "$(metric 'shopd_outbox_refused_events{role="orders"}')"
check_contains "the list is empty" "No outbox event is set aside." "$("$SHOPD_BINARY" outbox list)"

# Every product of the catalogue, and a name of 200 four-byte characters: the order and its email
# are ~2.5 KiB as batch entries, the stock movement ~1.3 KiB, the audit ~1 KiB.
skus=$(curl -s "$I/api/products" | jget "','.join(p['sku'] for p in d['products'])")
sku=${skus%%,*}
stock=$(curl -s "$I/api/products/$sku" | jget "d['stock']")
/usr/bin/python3 - "$skus" >c.json <<'PY'
import json, sys
print(json.dumps({"checkoutId": "chk-big", "currency": "EUR",
                  "customer": {"email": "rae@example.test", "name": "\U0001F600" * 200},
                  "items": [{"sku": s, "quantity": 1} for s in sys.argv[1].split(",")]}, ensure_ascii=False))
PY
check_contains "checkout handled by orders" '"status":"processed"' "$("$SHOPD_BINARY" publish command.checkout --data @c.json --direct)"

stock_of() { curl -s "$I/api/products/$1" | jget "d['stock']"; }
wait_eq "the stock moved: its small event went on" 20 "$((stock - 1))" stock_of "$sku"
wait_eq "the large events are set aside" 20 2 metric 'shopd_outbox_refused_events{role="orders"}'
check_eq "counted" 2 "$(metric 'shopd_outbox_refused_total{role="orders"}')"
check_eq "none pending" 0 "$(metric 'shopd_outbox_pending_events{role="orders"}')"
check_eq "not one publish failure: a refusal is not retried" 0 "$(metric 'shopd_outbox_publish_failures_total{role="orders"}')"
check_contains "the batch went one row at a time" "sending its rows one at a time" "$(cat "$T/orders.log")"
check_contains "each set-aside event is logged as an error" "ERROR outbox event refused for good" "$(cat "$T/orders.log")"

list=$("$SHOPD_BINARY" outbox list)
echo "$list"
check_contains "list: heading" "REFUSED (UTC)        ATTEMPTS  ERROR" "$list"
check_contains "list: the order" "order.created" "$list"
check_contains "list: the error" "413" "$list"
json=$("$SHOPD_BINARY" outbox list --role orders --json)
check_eq "list --json: two rows" 2 "$(jget 'len(d)' <<<"$json")"
check_eq "list --json: the bodies are kept" "order.created,notification.email" "$(jget "','.join(json.loads(r['body'])['eventType'] for r in d)" <<<"$json")"
check_eq "list --role email: none" "[]" "$("$SHOPD_BINARY" outbox list --role email --json)"
check_eq "no email sent" 0 "$(mail_count)"

echo "== requeued once the relay takes them"
rc=0; out=$("$SHOPD_BINARY" outbox requeue 2>&1) || rc=$?
check_eq "requeue without ids or --all is a usage error" 2 "$rc"
rc=0; out=$("$SHOPD_BINARY" outbox requeue 99999 2>&1) || rc=$?
check_eq "requeue of an id not set aside fails" 1 "$rc"
check_contains "and says so" "99999 is not a refused outbox event" "$out"
stop_shopd relay
start_shopd relay2 serve --role=relay
check_eq "requeue --all" "requeued 2 events" "$("$SHOPD_BINARY" outbox requeue --all)"
wait_for "the confirmation email" 20 mail_at_least 1
wait_eq "nothing set aside" 20 0 metric 'shopd_outbox_refused_events{role="orders"}'
check_eq "every row sent" 0 "$(sqlite3 "$T/shopd.db" "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL")"
check_eq "the stock moved once" "$((stock - 1))" "$(stock_of "$sku")"
finish
