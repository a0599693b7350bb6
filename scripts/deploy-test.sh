#!/usr/bin/env bash
# A deployment rehearsal, without root or systemd: install into a temporary root (DESTDIR), write
# /etc/shopd/<role>.env from the installed examples as an operator would, start the five
# shopd@<role> units the way systemd would (scripts/run-unit.py reads ExecStart=, EnvironmentFile=,
# WorkingDirectory=, StateDirectory= from the installed unit and listens on NOTIFY_SOCKET), wait for
# READY=1, push a checkout through the relay to a real SMTP server, check the order, the email, the
# stock and the audit trail, then stop every unit with SIGTERM: exit 0 after STOPPING=1.
#   scripts/deploy-test.sh [BUILD_DIR]    (default build/release; also CTest's ops/deploy)
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=$(cd "${1:-${SHOPD_BUILD_DIR:-$src/build/release}}" && pwd)
export SHOPD_SOURCE_DIR=$src SHOPD_BINARY=$build/shopd
source "$src/tests/integration/lib.sh"
roles=(relay analytics inventory email orders)

echo "== install into a temporary root"
root=$T/root
DESTDIR=$root cmake --install "$build" --prefix /usr/local >"$T/install.log"
shopd=$root/usr/local/bin/shopd
unit=$root/usr/local/lib/systemd/system/shopd@.service
examples=$root/usr/local/share/doc/shopd/examples
for f in "$shopd" "$unit" "$root/usr/local/share/shopd/catalogue.json"; do
  [ -e "$f" ] && pass || fail "not installed: ${f#"$root"}"
done

echo "== /etc/shopd/<role>.env from the examples"
declare -A port
read -r -a ports <<<"$(free_ports $((${#roles[@]} + 1)))"
for i in "${!roles[@]}"; do port[${roles[$i]}]=${ports[$i]}; done
smtp_port=${ports[${#roles[@]}]}
token=deploy-qstash-token api_token=deploy-api-token
# set_key FILE KEY VALUE: replace the key's line; a key the example lacks is a failure, not an append.
set_key() {
  grep -q "^$2=" "$1" || { fail "${1##*/} has no $2"; return; }
  KEY=$2 VALUE=$3 /usr/bin/python3 -c '
import os, re, sys
p, k, v = sys.argv[1], os.environ["KEY"], os.environ["VALUE"]
text = open(p).read()
open(p, "w").write(re.sub("^" + k + "=.*$", lambda _: k + "=" + v, text, flags=re.M))' "$1"
}
mkdir -p "$root/etc/shopd"
for role in "${roles[@]}"; do
  env=$root/etc/shopd/$role.env
  cp "$examples/$role.env.example" "$env"
  chmod 0640 "$env"
  set_key "$env" DATABASE_URL "sqlite:$root/var/lib/shopd/shopd.db"
  set_key "$env" "${role^^}_PORT" "${port[$role]}"
  set_key "$env" QSTASH_TOKEN "$token"
  set_key "$env" QSTASH_CURRENT_SIGNING_KEY sig_deploy_current
  set_key "$env" QSTASH_NEXT_SIGNING_KEY sig_deploy_next
  if [ "$role" = relay ]; then
    set_key "$env" RELAY_BACKOFF_SCALE 1
  else
    set_key "$env" QSTASH_URL "http://127.0.0.1:${port[relay]}"
    set_key "$env" SHOPD_API_TOKEN "$api_token"
    for r in orders email inventory analytics; do
      set_key "$env" "${r^^}_SERVICE_URL" "http://127.0.0.1:${port[$r]}"
    done
  fi
done
set_key "$root/etc/shopd/email.env" SMTP_URL "smtp://127.0.0.1:$smtp_port"
set_key "$root/etc/shopd/email.env" MAIL_FROM "'Shop <shop@example.test>'"

echo "== migrate and seed, then start the units"
start_smtp mail sink "$smtp_port"
mkdir -p "$root/var/lib/shopd"
"$shopd" migrate --env-file "$root/etc/shopd/inventory.env" \
  --seed "$root/usr/local/share/shopd/catalogue.json" >"$T/migrate.log" 2>&1 || fail "migrate: $(cat "$T/migrate.log")"
run=$T/run
mkdir -p "$run"
ready() { grep -q '^READY=1' "$run/$1.notify" 2>/dev/null; }
exited() { [ -f "$run/$1.exit" ]; }
for role in "${roles[@]}"; do
  /usr/bin/python3 "$here/run-unit.py" --root "$root" --unit "$unit" --instance "$role" --run-dir "$run" \
    >"$T/$role.log" 2>&1 &
  SHOPD_PIDS+=("$!")
  printf -v "RUNNER_$role" '%s' "$!"
  deadline=$((SECONDS + 20))
  until ready "$role" || exited "$role" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
  if ready "$role"; then pass; else fail "shopd@$role did not send READY=1"; cat "$T/$role.log" >&2; finish; fi
  SHOPD_PIDS+=("$(cat "$run/$role.pid")")
  wait_for "shopd@$role pings the watchdog (WATCHDOG_USEC from WatchdogSec=)" 10 grep -q '^WATCHDOG=1' "$run/$role.notify"
  check_eq "shopd@$role runs in its WorkingDirectory" "$root/var/lib/shopd" "$(readlink "/proc/$(cat "$run/$role.pid")/cwd")"
done

check_eq "one SQLite database for every unit, in the state directory" \
  "$root/var/lib/shopd/shopd.db" "$(ls "$root"/var/lib/shopd/*.db)"

echo "== a checkout through the relay"
O=http://127.0.0.1:${port[orders]} I=http://127.0.0.1:${port[inventory]}
E=http://127.0.0.1:${port[email]} A=http://127.0.0.1:${port[analytics]}
api() { curl -s -H "Authorization: Bearer $api_token" "$@"; }
stock_of() { curl -s "$I/api/products/$1" | jget "d['stock']"; }
stock=$(stock_of TSHIRT-BLK-M)
"$shopd" publish command.checkout --data "@$src/config/examples/checkout.json" \
  --env-file "$root/etc/shopd/orders.env" >"$T/publish.out" 2>&1 || fail "publish: $(cat "$T/publish.out")"
status() { api "$O/api/checkouts/chk_demo_0001" | jget "d.get('status')"; }
wait_eq "the order" 20 accepted status
order_id=$(api "$O/api/checkouts/chk_demo_0001" | jget "d.get('orderId')")
check_contains "order for ada" "\"orderId\":\"$order_id\"" "$(api "$O/api/orders?email=ada@example.com")"
mail_sent() { [ -f "$T/mail-mail/1.json" ]; }
wait_for "the confirmation email at the SMTP server" 20 mail_sent
check_contains "email to the customer" "ada@example.com" "$(cat "$T/mail-mail/1.json" 2>/dev/null)"
check_contains "email names the order" "$order_id" "$(cat "$T/mail-mail/1.eml" 2>/dev/null)"
email_status() { api "$E/api/emails?orderId=$order_id" | jget "d['emails'][0]['status']"; }
wait_eq "email recorded as sent" 20 sent email_status
wait_eq "stock decremented" 20 "$((stock - 2))" stock_of TSHIRT-BLK-M
audit_has() { api "$A/api/audit?correlationId=chk_demo_0001&limit=100" | grep -q "\"action\":\"$1\""; }
for action in order.created stock.updated email.sent; do wait_for "audit $action" 20 audit_has "$action"; done

echo "== stop every unit with SIGTERM"
for role in orders email inventory analytics relay; do
  kill -TERM "$(cat "$run/$role.pid")"
  runner="RUNNER_$role"
  wait "${!runner}" 2>/dev/null || true
  check_eq "shopd@$role exits 0" 0 "$(cat "$run/$role.exit" 2>/dev/null)"
  check_contains "shopd@$role said STOPPING=1" "STOPPING=1" "$(cat "$run/$role.notify")"
done
finish
