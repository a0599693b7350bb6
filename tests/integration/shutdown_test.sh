#!/usr/bin/env bash
# Graceful shutdown of the real binary:
#  - SIGTERM turns /readyz to 503 ("draining") while the process goes on serving for the drain
#    delay, tells systemd STOPPING=1, then exits 0 (a second signal ends the delay early);
#  - the relay hands back the lease of a delivery still running when its shutdown timeout is over,
#    so another relay sends it at once, and finishes one that completes in time;
#  - the outbox dispatcher finishes the batch in flight (rows marked sent) or, past the shutdown
#    timeout, abandons it with its rows unsent, and they go out after a restart.
source "$(dirname "$0")/lib.sh"
cd "$T"
platform_env "sqlite:$T/shopd.db"
export RELAY_BACKOFF_SCALE=1 RELAY_POLL_INTERVAL_MS=50
"$SHOPD_BINARY" migrate --seed "$SHOPD_SOURCE_DIR/config/catalogue.json" >/dev/null
I=http://127.0.0.1:$INVENTORY_PORT O=http://127.0.0.1:$ORDERS_PORT
code_of() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
alive() { kill -0 "$1" 2>/dev/null; }
db() { sqlite3 "$T/shopd.db" "$1"; }

# A systemd notify socket: every datagram shopd sends becomes a line of $T/notify.
/usr/bin/python3 - "$T/notify.sock" "$T/notify" $$ <<'PY' &
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
sock.settimeout(0.5)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        try:
            out.write(sock.recv(4096).decode() + "\n")
        except socket.timeout:
            try:
                os.kill(int(sys.argv[3]), 0)  # stop with the test
            except OSError:
                break
PY
SHOPD_PIDS+=("$!")
wait_for "the notify socket" 10 test -S "$T/notify.sock"

echo "== SIGTERM: not ready, still serving during the drain delay, then exit 0"
NOTIFY_SOCKET=$T/notify.sock SHUTDOWN_DRAIN_DELAY_MS=600000 start_shopd inv serve --role=inventory
check_eq "ready before" 200 "$(code_of "$I/readyz")"
wait_for "READY=1 sent" 10 grep -q 'READY=1' "$T/notify"
kill -TERM "$PID_inv"
wait_eq "/readyz turns 503" 10 503 code_of "$I/readyz"
check_contains "readiness says why" '"shutdown":"draining"' "$(curl -s "$I/readyz")"
check_eq "liveness still 200 while draining" 200 "$(code_of "$I/healthz")"
check_eq "the API still serves while draining" 200 "$(code_of "$I/api/products")"
check_contains "responses ask clients to reconnect elsewhere" "Connection: close" \
  "$(curl -s -D - -o /dev/null "$I/api/products" | tr -d '\r')"
wait_for "STOPPING=1 sent" 10 grep -q 'STOPPING=1' "$T/notify"
if alive "$PID_inv"; then pass; else fail "shopd exited during its drain delay"; fi
stop_shopd inv TERM  # the second signal ends the drain delay
check_eq "exit status after draining" 0 "$STOP_RC"
check_contains "the second signal cut the delay short" "drain delay cut short" "$(cat "$T/inv.log")"
check_eq "the listener is closed" 000 "$(code_of "$I/healthz")"

echo "== a drain delay that runs out by itself"
SHUTDOWN_DRAIN_DELAY_MS=300 start_shopd inv2 serve --role=inventory
stop_shopd inv2 TERM
check_eq "exit status" 0 "$STOP_RC"
check_contains "the delay ran its course" "drain delay over" "$(cat "$T/inv2.log")"

echo "== the relay hands back a delivery still running at its shutdown timeout"
start_destination held --hold 1
# The lease (60 s timeout + margin) outlives this test: only the hand-back lets another relay send it.
publish() {
  curl -sS -X POST -H "Authorization: Bearer $QSTASH_TOKEN" -H 'Content-Type: application/json' \
    --data-binary "$2" "$QSTASH_URL/v2/publish/$1" | sed -n 's/.*"messageId":"\([^"]*\)".*/\1/p'
}
has_requests() { [ "$(wc -l <"$T/$1.requests")" -ge "$2" ]; }
state_of() { db "SELECT state || ',' || coalesce(lease_owner, '-') FROM relay_messages WHERE message_id = '$1'"; }
RELAY_NODE_ID=relay-one RELAY_DELIVERY_TIMEOUT_MS=60000 SHUTDOWN_TIMEOUT_MS=500 start_shopd relay1 serve --role=relay
id=$(publish "http://127.0.0.1:$DPORT_held/hook" '{"n":1}')
wait_for "the delivery to reach the destination" 10 has_requests held 1
stop_shopd relay1 TERM
check_eq "relay exit status" 0 "$STOP_RC"
check_contains "the running attempt was handed back" "attempts still running were handed back" "$(cat "$T/relay1.log")"
check_eq "its lease is free" "RETRY,-" "$(state_of "$id")"
RELAY_NODE_ID=relay-two start_shopd relay2 serve --role=relay
wait_for "another relay to deliver it" 10 has_requests held 2
check_eq "the same message was sent" "$id 0 /hook" "$(sed -n 2p "$T/held.requests")"
wait_eq "delivered" 10 "DELIVERED,-" state_of "$id"
stop_shopd relay2 TERM
check_eq "relay-two exit status" 0 "$STOP_RC"

echo "== the relay finishes a delivery that completes within its shutdown timeout"
start_destination slow --hold 1 --hold-ms 1500
RELAY_NODE_ID=relay-three SHUTDOWN_TIMEOUT_MS=20000 start_shopd relay3 serve --role=relay
id=$(publish "http://127.0.0.1:$DPORT_slow/hook" '{"n":2}')
wait_for "the delivery to reach the slow destination" 10 has_requests slow 1
stop_shopd relay3 TERM
check_eq "relay exit status" 0 "$STOP_RC"
check_eq "delivered before exit" "DELIVERED,-" "$(state_of "$id")"
check_eq "sent once" 1 "$(wc -l <"$T/slow.requests")"

echo "== the outbox dispatcher finishes the batch in flight"
unsent() { db "SELECT count(*) FROM outbox WHERE producer = 'orders' AND sent_at_ms IS NULL"; }
sku=$(db "SELECT sku FROM products WHERE active = 1 AND stock > 10 ORDER BY sku LIMIT 1")
currency=$(db "SELECT currency FROM products WHERE sku = '$sku'")
cart() { printf '{"checkoutId":"%s","customer":{"email":"e@example.test","name":"E"},"items":[{"sku":"%s","quantity":1}],"currency":"%s"}' "$1" "$sku" "$currency"; }
checkout() { curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$(cart "$1")" "$O/api/checkout"; }
# A QStash stand-in that answers the first batch after 1.5 s with one accepted message.
start_destination qstash --hold 1 --hold-ms 1500 --body '[{"messageId":"msg_slow_batch"}]'
QSTASH_URL=http://127.0.0.1:$DPORT_qstash SHUTDOWN_TIMEOUT_MS=20000 start_shopd orders1 serve --role=orders
check_eq "checkout accepted" 202 "$(checkout chk-drain-1)"
wait_for "the batch to reach QStash" 10 has_requests qstash 1
stop_shopd orders1 TERM
check_eq "orders exit status" 0 "$STOP_RC"
check_eq "the batch's row is marked sent with QStash's id" "msg_slow_batch" \
  "$(db "SELECT coalesce(message_id, '-') FROM outbox WHERE body LIKE '%chk-drain-1%'")"
check_eq "nothing left unsent" 0 "$(unsent)"

echo "== past the shutdown timeout the batch is abandoned, its rows unsent, and sent after a restart"
start_destination stuck --hold 1
QSTASH_URL=http://127.0.0.1:$DPORT_stuck SHUTDOWN_TIMEOUT_MS=500 start_shopd orders2 serve --role=orders
check_eq "checkout accepted" 202 "$(checkout chk-drain-2)"
wait_for "the batch to reach QStash" 10 has_requests stuck 1
stop_shopd orders2 TERM
check_eq "orders exit status" 0 "$STOP_RC"
check_contains "the batch was abandoned" "batch in flight is abandoned" "$(cat "$T/orders2.log")"
check_eq "its row stays unsent" 1 "$(unsent)"
start_shopd relay4 serve --role=relay
start_shopd orders3 serve --role=orders
wait_eq "the row is sent after the restart" 10 0 unsent
check_contains "through the real relay" "msg_" "$(db "SELECT message_id FROM outbox WHERE body LIKE '%chk-drain-2%'")"
for name in relay4 orders3; do
  stop_shopd "$name" TERM
  check_eq "$name exits 0" 0 "$STOP_RC"
done
finish
