#!/usr/bin/env bash
# The shopd binary as a user runs it: commands, configuration errors, migrations on SQLite and
# PostgreSQL, serving every role with the standard endpoints, and a clean SIGTERM.
source "$(dirname "$0")/lib.sh"
cd "$T"
export LOG_FORMAT=text
# Every role on a free port, so parallel test runs never collide.
export ORDERS_PORT=0 EMAIL_PORT=0 INVENTORY_PORT=0 ANALYTICS_PORT=0 RELAY_PORT=0
# The roles verify deliveries and the relay authenticates publishers: they refuse to start without keys.
export QSTASH_TOKEN=cli-test-token QSTASH_CURRENT_SIGNING_KEY=sig_cli_current QSTASH_NEXT_SIGNING_KEY=sig_cli_next
# The relay refuses to start without its API token and the key that signs its deliveries.
export QSTASH_TOKEN=cli-test-token QSTASH_CURRENT_SIGNING_KEY=sig_cli_current QSTASH_NEXT_SIGNING_KEY=sig_cli_next

echo "== commands"
check_contains "version" "shopd " "$("$SHOPD_BINARY" version)"
help=$("$SHOPD_BINARY" --help)
for sub in serve migrate config sign version; do check_contains "--help lists $sub" "$sub" "$help"; done
check_contains "serve --help lists config flags" "--database-url" "$("$SHOPD_BINARY" serve --help)"

echo "== configuration errors are one clear line and a non-zero exit"
rc=0; out=$(LOG_LEVEL=verbose "$SHOPD_BINARY" serve --role=orders 2>&1) || rc=$?
check_eq "bad LOG_LEVEL exit" 2 "$rc"
check_contains "bad LOG_LEVEL names the key" "LOG_LEVEL" "$out"
check_eq "bad LOG_LEVEL is one line" 1 "$(printf '%s\n' "$out" | wc -l)"
rc=0; out=$("$SHOPD_BINARY" serve --role=orders,shipping 2>&1) || rc=$?
check_eq "unknown role exit" 2 "$rc"
check_contains "unknown role lists valid names" "orders, email, inventory, analytics, relay, all" "$out"
rc=0; out=$("$SHOPD_BINARY" serve --role=all --port 4000 2>&1) || rc=$?
check_eq "--port with several roles" 2 "$rc"
rc=0; out=$("$SHOPD_BINARY" serve 2>&1) || rc=$?
check_eq "serve without --role exit" 2 "$rc"
rc=0; out=$("$SHOPD_BINARY" serve --role=orders --no-such-flag 2>&1) || rc=$?
check_eq "unknown flag exit" 2 "$rc"
check_contains "unknown flag is named" "--no-such-flag" "$out"
rc=0; out=$("$SHOPD_BINARY" serve --role=orders --env-file absent.env 2>&1) || rc=$?
check_eq "missing env file exit" 2 "$rc"
rc=0; out=$("$SHOPD_BINARY" dlq list --count 500 2>&1) || rc=$?
check_eq "dlq list --count out of range exit" 2 "$rc"
rc=0; out=$("$SHOPD_BINARY" outbox list --count 5000 2>&1) || rc=$?
check_eq "outbox list --count out of range exit" 2 "$rc"
rc=0; out=$("$SHOPD_BINARY" outbox requeue 1 --all 2>&1) || rc=$?
check_eq "outbox requeue with ids and --all exit" 2 "$rc"
check_contains "outbox requeue with ids and --all says why" "ids or --all (not both)" "$out"
rc=0; "$SHOPD_BINARY" serve --help >/dev/null || rc=$?
check_eq "serve --help exit" 0 "$rc"
# Fine alone, refused together: a configuration error (2), which systemd does not restart on.
rc=0; out=$(CORS_ALLOWED_ORIGINS='*' CORS_ALLOW_CREDENTIALS=true timeout 20 "$SHOPD_BINARY" serve --role=orders --port 0 2>&1) || rc=$?
check_eq "CORS '*' with credentials exit" 2 "$rc"
check_contains "CORS '*' with credentials names the keys" "CORS_ALLOW_CREDENTIALS" "$out"
printf 'HTTP_BODY_LIMIT=12\n' >bad.env
rc=0; out=$("$SHOPD_BINARY" serve --role=orders --env-file bad.env 2>&1) || rc=$?
check_eq "bad env file value exit" 2 "$rc"
check_contains "bad env file value names file and line" "bad.env:1" "$out"
rc=0; out=$(QSTASH_TOKEN=s3cr3t-token LOG_LEVEL=nope "$SHOPD_BINARY" config 2>&1) || rc=$?
[[ "$out" == *s3cr3t* ]] && fail "a secret appeared in an error" || pass
check_contains "config masks secrets" "QSTASH_TOKEN=***" "$(QSTASH_TOKEN=s3cr3t-token "$SHOPD_BINARY" config)"
check_contains "flags beat the environment" "LOG_LEVEL=debug" "$(LOG_LEVEL=warn "$SHOPD_BINARY" config --log-level debug)"

echo "== the README's configuration table is the config table"
readme_table=$(sed -n '/<!-- config-table:begin -->/,/<!-- config-table:end -->/p' "$SHOPD_SOURCE_DIR/README.md" | sed '1d;$d')
check_eq "README table matches 'shopd config --format markdown'" "$("$SHOPD_BINARY" config --format markdown)" "$readme_table"

echo "== migrations on SQLite"
export DATABASE_URL="sqlite:$T/db/shopd.db"
rc=0; "$SHOPD_BINARY" migrate --status >status.txt || rc=$?
check_eq "fresh database has pending migrations (exit 3)" 3 "$rc"
rc=0; out=$("$SHOPD_BINARY" outbox list 2>&1) || rc=$?
check_eq "outbox list before migrate exit" 3 "$rc"
check_contains "outbox list before migrate says so" "run shopd migrate first" "$out"
check_contains "migrate applies" "schema version" "$("$SHOPD_BINARY" migrate)"
check_contains "migrate --status up to date" "up to date" "$("$SHOPD_BINARY" migrate --status)"
check_contains "migrate is idempotent" "applied 0 migration(s)" "$("$SHOPD_BINARY" migrate)"
check_eq "outbox list on a new database" "No outbox event is set aside." "$("$SHOPD_BINARY" outbox list)"

echo "== serve --role=all on SQLite: standard endpoints on every role, clean SIGTERM"
start_shopd all serve --role=all
for role in orders email inventory analytics relay; do
  port=$(port_of all "$role")
  [ -n "$port" ] || { fail "no listening line for $role"; continue; }
  check_eq "$role /healthz" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
  check_contains "$role GET /api/webhook" "\"role\":\"$role\"" "$(curl -s "http://127.0.0.1:$port/api/webhook")"
  check_contains "$role /readyz" '"status":"ready"' "$(curl -s "http://127.0.0.1:$port/readyz")"
done
port=$(port_of all orders)
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
check_contains "/metrics counts requests" 'shopd_http_requests_total{listener="orders",method="GET",route="/healthz",status="200"} 1' "$metrics"
check_contains "/metrics has a latency histogram" 'shopd_http_request_duration_seconds_bucket' "$metrics"
check_contains "unknown path is a JSON 404" '"code":"not_found"' "$(curl -s "http://127.0.0.1:$port/nope")"
check_contains "request log line" 'path=/healthz' "$(cat "$T/all.log")"
stop_shopd all TERM
check_eq "SIGTERM exits 0" 0 "$STOP_RC"
check_contains "shutdown logged" "stopped" "$(cat "$T/all.log")"

echo "== PostgreSQL: serve refuses an unmigrated database, migrate, serve, readiness follows the database"
export DATABASE_URL
DATABASE_URL=$(new_pg_db)
rc=0; out=$("$SHOPD_BINARY" serve --role=orders 2>&1) || rc=$?
check_eq "unmigrated PostgreSQL exit" 1 "$rc"
check_contains "unmigrated PostgreSQL says what to do" "run \`shopd migrate\`" "$out"
check_contains "migrate on PostgreSQL" "schema version" "$("$SHOPD_BINARY" migrate)"
start_shopd pg serve --role=orders --port 0
port=$(port_of pg orders)
check_contains "PostgreSQL /readyz" '"status":"ready"' "$(curl -s "http://127.0.0.1:$port/readyz")"
pg_sql "DROP DATABASE ${DATABASE_URL##*/} WITH (FORCE)"
code=$(curl -s -o "$T/readyz.json" -w '%{http_code}' "http://127.0.0.1:$port/readyz")
check_eq "/readyz is 503 when the database is gone" 503 "$code"
check_contains "/readyz says why" '"database":"unreachable"' "$(cat "$T/readyz.json")"
check_eq "/healthz still 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
stop_shopd pg INT
check_eq "SIGINT exits 0" 0 "$STOP_RC"

finish
