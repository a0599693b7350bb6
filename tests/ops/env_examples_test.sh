#!/usr/bin/env bash
# config/<role>.env.example is exactly what `shopd config --format env --role=<role>` prints (so a
# key missing, an unknown key, or a stale description or value fails here: regenerate with
# scripts/update-env-examples.sh), and each loads cleanly through shopd's own parser.
source "$(dirname "$0")/../integration/lib.sh"
: "${SHOPD_SOURCE_DIR:?SHOPD_SOURCE_DIR must name the source tree}"

# same NAME CHECKED_IN: the checked-in file equals the generated one; a diff is shown otherwise.
same() {
  if diff -u "$2" <("$SHOPD_BINARY" config --format env --role="$1") >"$T/diff"; then return 0; fi
  return 1
}

echo "== the comparison catches drift"
cp "$SHOPD_SOURCE_DIR/config/orders.env.example" "$T/stale"
sed -i 's/^# Number of database connections each process keeps open\./# Connections./' "$T/stale"
if same orders "$T/stale"; then fail "a stale description went unnoticed"; else pass; fi
grep -v '^LOG_LEVEL=' "$SHOPD_SOURCE_DIR/config/orders.env.example" >"$T/missing"
if same orders "$T/missing"; then fail "a missing key went unnoticed"; else pass; fi
{ cat "$SHOPD_SOURCE_DIR/config/orders.env.example"; echo "SHOPD_COLOUR=blue"; } >"$T/unknown"
if same orders "$T/unknown"; then fail "an unknown key went unnoticed"; else pass; fi

for role in orders email inventory analytics relay; do
  echo "== $role"
  file="$SHOPD_SOURCE_DIR/config/$role.env.example"
  if [ ! -f "$file" ]; then fail "config/$role.env.example is missing"; continue; fi
  if same "$role" "$file"; then pass; else
    fail "config/$role.env.example differs from 'shopd config --format env --role=$role' (run scripts/update-env-examples.sh):"
    cat "$T/diff" >&2
  fi
  rc=0; out=$("$SHOPD_BINARY" config --env-file "$file" 2>&1) || rc=$?
  check_eq "$role example loads" 0 "$rc"
  check_contains "$role example sets the production database" "DATABASE_URL=sqlite:/var/lib/shopd/shopd.db" "$out"
done
rc=0; "$SHOPD_BINARY" config --format env --role=shipping >/dev/null 2>"$T/err" || rc=$?
check_eq "unknown role exit" 2 "$rc"
check_contains "unknown role lists the roles" "orders, email, inventory, analytics, relay" "$(cat "$T/err")"
finish
