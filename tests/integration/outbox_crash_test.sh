#!/usr/bin/env bash
# The transactional outbox across a crash: the orders role commits an order while the relay is down
# (its events wait in the outbox), is killed with SIGKILL before it could publish them, and after a
# restart (with the relay back) every event is delivered: the email is sent and the stock moves.
source "$(dirname "$0")/lib.sh"
cd "$T"
platform_env "sqlite:$T/shopd.db"
start_smtp mail sink "$SMTP_PORT"
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null
I=http://127.0.0.1:$INVENTORY_PORT O=http://127.0.0.1:$ORDERS_PORT

echo "== orders commits with the relay down, then dies before publishing"
start_shopd orders serve --role=orders
start_shopd inventory serve --role=inventory
sku=$(curl -s "$I/api/products" | jget "d['products'][0]['sku']")
stock=$(curl -s "$I/api/products/$sku" | jget "d['stock']")
printf '{"checkoutId":"chk-crash","customer":{"email":"eve@example.test","name":"Eve"},"items":[{"sku":"%s","quantity":3}],"currency":"EUR"}' "$sku" >c.json
# Straight to the orders webhook, signed: the relay is not running.
check_contains "checkout handled by orders" '"status":"processed"' "$("$SHOPD_BINARY" publish command.checkout --data @c.json --direct)"
pending=$(sqlite3 "$T/shopd.db" "SELECT COUNT(*) FROM outbox WHERE producer='orders' AND sent_at_ms IS NULL")
check_eq "the order's four events wait in the outbox" 4 "$pending"
stop_shopd orders KILL
check_eq "orders was killed" 137 "$STOP_RC"

echo "== after the restart, with the relay back, nothing is lost"
start_shopd relay serve --role=relay
start_shopd email serve --role=email
start_shopd analytics serve --role=analytics
start_shopd orders2 serve --role=orders
wait_eq "the outbox drained" 20 0 sqlite3 "$T/shopd.db" "SELECT COUNT(*) FROM outbox WHERE producer='orders' AND sent_at_ms IS NULL"
wait_for "the confirmation email" 20 test -f "$T/mail-mail/1.json"
stock_of() { curl -s "$I/api/products/$1" | jget "d['stock']"; }
wait_eq "stock moved once" 20 "$((stock - 3))" stock_of "$sku"
check_eq "one order" 1 "$(sqlite3 "$T/shopd.db" "SELECT COUNT(*) FROM orders WHERE checkout_id='chk-crash'")"
sleep 0.5
check_eq "one email" 1 "$(ls "$T"/mail-mail/*.json | wc -l)"
finish
