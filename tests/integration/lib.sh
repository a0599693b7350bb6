# Shared helpers for the tests that run the real shopd binary. Source it; it sets `set -euo pipefail`,
# a per-test temp dir ($T) and a trap that stops every process started here and removes $T.
set -euo pipefail

: "${SHOPD_BINARY:?SHOPD_BINARY must name the shopd binary}"
T=$(mktemp -d /tmp/shopd-test.XXXXXX)
# A shopd stopped by a test exits at once unless the test asks for a drain delay.
export SHUTDOWN_DRAIN_DELAY_MS=${SHUTDOWN_DRAIN_DELAY_MS:-0}
declare -a SHOPD_PIDS=()
declare -a PG_DBS=()
failures=0
checks=0

cleanup() {
  local rc=$? pid log
  if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; then  # a failed test shows the tail of every log
    for log in "$T"/*.log; do [ -f "$log" ] && { echo "--- ${log##*/}"; tail -n 25 "$log"; } >&2; done
  fi
  for pid in "${SHOPD_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }; done
  for db in "${PG_DBS[@]}"; do pg_sql "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  if [ -n "${SHOPD_TEST_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { checks=$((checks + 1)); }

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" == "$3" ]; then pass; else fail "$1: expected [$2], got [$3]"; fi
}
# check_contains WHAT NEEDLE HAYSTACK
check_contains() {
  if [[ "$3" == *"$2"* ]]; then pass; else fail "$1: [$2] not in [$3]"; fi
}

finish() {
  echo "$((checks)) passed, $((failures)) failed"
  [ "$failures" -eq 0 ]
}

# start_shopd NAME ARGS... : run `shopd ARGS` in the background with its log in $T/NAME.log and wait
# until it logs "ready" (or dies). Sets PID_<NAME>; ports are read with port_of NAME ROLE.
start_shopd() {
  local name=$1; shift
  "$SHOPD_BINARY" "$@" >"$T/$name.log" 2>&1 &
  local pid=$!
  SHOPD_PIDS+=("$pid")
  printf -v "PID_$name" '%s' "$pid"
  local i
  for i in $(seq 1 200); do
    if grep -q ' ready ' "$T/$name.log" 2>/dev/null || grep -q '"msg":"ready"' "$T/$name.log" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "shopd $name exited early:" >&2; cat "$T/$name.log" >&2; return 1
    fi
    sleep 0.05
  done
  echo "shopd $name not ready after 10 s:" >&2; cat "$T/$name.log" >&2; return 1
}

# port_of NAME ROLE: the port ROLE listens on, from the "listening" log line.
port_of() {
  sed -n "s/.*listening role=$2 .*port=\([0-9]*\).*/\1/p" "$T/$1.log" | head -1
}

# stop_shopd NAME [SIGNAL]: signal it and wait (in this shell: `wait` only knows its own children);
# its exit status is left in STOP_RC.
stop_shopd() {
  local pid_var="PID_$1"
  STOP_RC=0
  kill "-${2:-TERM}" "${!pid_var}"
  wait "${!pid_var}" 2>/dev/null || STOP_RC=$?
}

# PostgreSQL from the CTest fixture (scripts/pg-temp.sh).
pg_info() { cat "${SHOPD_TEST_PG_INFO:?SHOPD_TEST_PG_INFO not set: run through ctest}"; }
pg_sql() { psql "$(pg_info)" -v ON_ERROR_STOP=1 -qAtc "$1"; }
# new_pg_db: create a fresh database; prints its postgresql:// URL.
new_pg_db() {
  local name="shopd_t_$$_$RANDOM"
  pg_sql "CREATE DATABASE $name" >/dev/null
  PG_DBS+=("$name")
  local host port
  host=$(pg_info | sed -n 's/.*host=\([^ ]*\).*/\1/p')
  port=$(pg_info | sed -n 's/.*port=\([^ ]*\).*/\1/p')
  echo "postgresql://postgres@$host:$port/$name"
}

# free_ports N: N distinct ports nothing listens on right now, on one line (scripts/free_ports.py:
# take together the ports of servers started together). free_port: one.
free_ports() { /usr/bin/python3 "$SHOPD_SOURCE_DIR/scripts/free_ports.py" "$1"; }
free_port() { free_ports 1; }

# start_smtp NAME MODE PORT [ARGS...]: the real aiosmtpd server of tests/integration/smtp_server.py,
# storing messages in $T/NAME-mail; waits until it listens. Stops with stop_pid "$SMTP_PID_<NAME>".
start_smtp() {
  local name=$1 mode=$2 port=$3; shift 3
  mkdir -p "$T/$name-mail"
  # It stops by itself should this script die without its trap (a CTest timeout's SIGKILL).
  /usr/bin/python3 "$SHOPD_SOURCE_DIR/tests/integration/smtp_server.py" "$mode" --parent-pid $$ \
    --dir "$T/$name-mail" --port "$port" "$@" </dev/null >"$T/$name-smtp.log" 2>&1 &
  local pid=$!
  SHOPD_PIDS+=("$pid")
  printf -v "SMTP_PID_$name" '%s' "$pid"
  local i
  for i in $(seq 1 100); do
    grep -q LISTENING "$T/$name-smtp.log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "SMTP server $name did not start:" >&2; cat "$T/$name-smtp.log" >&2; return 1
}

# mail_count [NAME]: messages the SMTP server NAME (default: mail) has stored; mail_at_least N [NAME].
mail_count() { find "$T/${1:-mail}-mail" -name '*.json' 2>/dev/null | wc -l; }
mail_at_least() { [ "$(mail_count "${2:-mail}")" -ge "$1" ]; }

# start_destination NAME [ARGS...]: the HTTP destination of tests/integration/relay_destination.py,
# logging to $T/NAME.requests; sets DPORT_<NAME> and DPID_<NAME>.
start_destination() {
  local name=$1; shift
  : >"$T/$name.requests"
  /usr/bin/python3 "$SHOPD_SOURCE_DIR/tests/integration/relay_destination.py" --log "$T/$name.requests" "$@" \
    >"$T/$name.out" 2>&1 &
  local pid=$!
  SHOPD_PIDS+=("$pid")
  printf -v "DPID_$name" '%s' "$pid"
  local i port=""
  for i in $(seq 1 100); do
    port=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$T/$name.out" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "destination $name did not start:" >&2; cat "$T/$name.out" >&2; return 1; }
  printf -v "DPORT_$name" '%s' "$port"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wait_for WHAT SECS CMD...: until CMD succeeds. The arguments are expanded once, by the caller: to
# wait for a value that changes, use wait_eq (or a function as CMD), never `test "$(...)"`.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then fail "timed out waiting for $what"; return 1; fi
    sleep 0.1
  done
  pass
}

# wait_eq WHAT SECS EXPECTED CMD...: until CMD (run afresh each time) prints EXPECTED.
wait_eq() {
  local what=$1 secs=$2 want=$3; shift 3
  local deadline=$((SECONDS + secs)) got=""
  while got=$("$@" 2>/dev/null || true); [ "$got" != "$want" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then fail "timed out waiting for $what: expected [$want], last [$got]"; return 1; fi
    sleep 0.1
  done
  pass
}

# jget EXPR: evaluate a Python expression over the JSON on stdin, bound to `d`.
jget() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); r=eval(sys.argv[1]); print(json.dumps(r) if isinstance(r,(dict,list)) else r)' "$1"; }

# platform_env DBURL: ports, service URLs, keys and mail settings for a whole platform on this machine.
platform_env() {
  export DATABASE_URL=$1
  export ORDERS_PORT EMAIL_PORT INVENTORY_PORT ANALYTICS_PORT RELAY_PORT SMTP_PORT
  read -r ORDERS_PORT EMAIL_PORT INVENTORY_PORT ANALYTICS_PORT RELAY_PORT SMTP_PORT <<<"$(free_ports 6)"
  export ORDERS_SERVICE_URL=http://127.0.0.1:$ORDERS_PORT EMAIL_SERVICE_URL=http://127.0.0.1:$EMAIL_PORT
  export INVENTORY_SERVICE_URL=http://127.0.0.1:$INVENTORY_PORT ANALYTICS_SERVICE_URL=http://127.0.0.1:$ANALYTICS_PORT
  export QSTASH_URL=http://127.0.0.1:$RELAY_PORT QSTASH_TOKEN=e2e-qstash-token
  export QSTASH_CURRENT_SIGNING_KEY=sig_e2e_current QSTASH_NEXT_SIGNING_KEY=sig_e2e_next
  export SHOPD_API_TOKEN=e2e-api-token MAIL_TRANSPORT=smtp SMTP_URL=smtp://127.0.0.1:$SMTP_PORT
  export MAIL_FROM="Shop <shop@example.test>" LOG_FORMAT=text
  # Retries in milliseconds rather than QStash's minutes, so SMTP-down recovery fits in a test.
  export RELAY_BACKOFF_SCALE=${RELAY_BACKOFF_SCALE_TEST:-1}
}

api() { curl -s -H "Authorization: Bearer $SHOPD_API_TOKEN" "$@"; }
