#!/usr/bin/env bash
# The relay as a process: a relay killed with SIGKILL in the middle of a delivery re-sends that
# message as soon as it is restarted, and two relays sharing one PostgreSQL deliver each message
# exactly once.
source "$(dirname "$0")/lib.sh"
cd "$T"
export LOG_FORMAT=text LOG_LEVEL=info
export QSTASH_TOKEN=relay-process-token
export QSTASH_CURRENT_SIGNING_KEY=sig_process_current QSTASH_NEXT_SIGNING_KEY=sig_process_next
export RELAY_BACKOFF_SCALE=1 RELAY_POLL_INTERVAL_MS=50 SHUTDOWN_TIMEOUT_MS=2000

request_count() { wc -l <"$T/$1.requests" | tr -d ' '; }
has_requests() { [ "$(request_count "$1")" -ge "$2" ]; }

# publish PORT DESTINATION BODY: POST /v2/publish/DESTINATION to the relay on PORT; prints the answer.
publish() {
  curl -sS -X POST -H "Authorization: Bearer $QSTASH_TOKEN" -H 'Content-Type: application/json' \
    --data-binary "$3" "http://127.0.0.1:$1/v2/publish/$2"
}

message_id_of() { sed -n 's/.*"messageId":"\([^"]*\)".*/\1/p' <<<"$1"; }

echo "== SIGKILL in the middle of a delivery; the restarted relay re-sends it at once (SQLite)"
start_destination held --hold 1
relay_port=$(free_port)
export DATABASE_URL="sqlite:$T/relay.db" RELAY_PORT=$relay_port RELAY_NODE_ID=relay-one
# The lease (60 s timeout + margin) outlives this test: only the start-up release can re-send it.
export RELAY_DELIVERY_TIMEOUT_MS=60000
start_shopd relay1 serve --role=relay
answer=$(publish "$relay_port" "http://127.0.0.1:$DPORT_held/hook" '{"order":1}')
id=$(message_id_of "$answer")
check_contains "publish answers a message id" "msg_" "$id"
wait_for "the first attempt to reach the destination" 10 has_requests held 1
stop_shopd relay1 KILL
check_eq "killed relay exit status" 137 "$STOP_RC"
start_shopd relay2 serve --role=relay
check_contains "the restarted relay released its lease" "relay released leases of a previous run" "$(cat "$T/relay2.log")"
wait_for "the message to be delivered again after the restart" 10 has_requests held 2
check_eq "the same message was re-sent" "$id 0 /hook" "$(sed -n 2p "$T/held.requests")"
message_finished() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $QSTASH_TOKEN" \
    "http://127.0.0.1:$relay_port/v2/messages/$1")" = 404 ]
}
wait_for "the message to be finished" 10 message_finished "$id"
stop_shopd relay2 TERM
check_eq "clean SIGTERM" 0 "$STOP_RC"
unset RELAY_DELIVERY_TIMEOUT_MS

echo "== two relays on one PostgreSQL deliver each message exactly once"
export DATABASE_URL
DATABASE_URL=$(new_pg_db)
"$SHOPD_BINARY" migrate >/dev/null
start_destination counted
read -r port_a port_b <<<"$(free_ports 2)"
export RELAY_PORT=$port_a RELAY_NODE_ID=relay-a
start_shopd relay_a serve --role=relay
export RELAY_PORT=$port_b RELAY_NODE_ID=relay-b
start_shopd relay_b serve --role=relay
total=0
for round in 1 2; do
  for port in "$port_a" "$port_b"; do
    batch="["
    for i in $(seq 1 50); do
      [ "$i" -gt 1 ] && batch+=","
      batch+="{\"destination\":\"http://127.0.0.1:$DPORT_counted/m?r=$round&p=$port&i=$i\",\"body\":\"{}\"}"
    done
    batch+="]"
    out=$(curl -sS -X POST -H "Authorization: Bearer $QSTASH_TOKEN" -H 'Content-Type: application/json' \
      --data-binary "$batch" "http://127.0.0.1:$port/v2/batch")
    total=$((total + $(grep -o '"messageId"' <<<"$out" | wc -l)))
  done
done
check_eq "every batch element was accepted" 200 "$total"
pg_in_db() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qAtc "$1"; }
delivered_count() { pg_in_db "SELECT count(*) FROM relay_messages WHERE state = 'DELIVERED'"; }
all_delivered() { [ "$(delivered_count)" -eq 200 ]; }
wait_for "all 200 messages to be delivered" 60 all_delivered
# Every message is DELIVERED now, so no attempt of any of them can still be on its way.
check_eq "requests received" 200 "$(request_count counted)"
check_eq "distinct message ids received" 200 "$(cut -d' ' -f1 "$T/counted.requests" | sort -u | wc -l | tr -d ' ')"
check_eq "no retries were needed" 200 "$(awk '$2 == "0"' "$T/counted.requests" | wc -l | tr -d ' ')"
metric() { curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^shopd_relay_delivered_total \([0-9]*\).*/\1/p'; }
a=$(metric "$port_a")
b=$(metric "$port_b")
echo "relay-a delivered $a, relay-b delivered $b"
check_eq "the relays' delivered counters add up" 200 "$((a + b))"
stop_shopd relay_a TERM
check_eq "relay-a clean SIGTERM" 0 "$STOP_RC"
stop_shopd relay_b TERM
check_eq "relay-b clean SIGTERM" 0 "$STOP_RC"

echo "== the default node id names the port given with --port, not RELAY_PORT"
# Two relays on one host, told apart by --port alone, must not share leases.
port_c=$(free_port)
RELAY_NODE_ID= RELAY_PORT=1 start_shopd relay_c serve --role=relay --port "$port_c"
check_contains "node id is HOST:PORT of --port" "$(hostname):$port_c" "$(grep 'relay configured' "$T/relay_c.log")"
stop_shopd relay_c TERM
check_eq "relay-c clean SIGTERM" 0 "$STOP_RC"

finish
