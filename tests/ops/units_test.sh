#!/usr/bin/env bash
# Every systemd unit `cmake --install` puts in lib/systemd/system passes `systemd-analyze verify`
# with no diagnostic at all (systemd only warns about an unknown or misspelt key, and still exits 0,
# so any output counts as a failure), once per role for the template; and its offline
# `systemd-analyze security` exposure stays at or below SHOPD_MAX_EXPOSURE (the README records the
# scores). The check is first shown to catch a misspelt key and a missing ExecStart binary. The
# sysusers.d file creates the user the unit runs as (in a scratch root).
source "$(dirname "$0")/../integration/lib.sh"
: "${SHOPD_BUILD_DIR:?SHOPD_BUILD_DIR must name the build directory to install from}"
max_exposure=${SHOPD_MAX_EXPOSURE:-2.0}
roles=(orders email inventory analytics relay)

# Installed under a real prefix (no DESTDIR), so ExecStart= names a binary that exists.
prefix="$T/prefix"
cmake --install "$SHOPD_BUILD_DIR" --prefix "$prefix" >"$T/install.log"
unit_dir="$prefix/lib/systemd/system"

# verify UNIT_FILE: systemd-analyze verify's exit status and output; 0 only when both are clean.
verify() {
  local out rc=0
  out=$(cd "$(dirname "$1")" && systemd-analyze verify --man=no "./$(basename "$1")" 2>&1) || rc=$?
  [ "$rc" -eq 0 ] && [ -z "$out" ] && return 0
  printf '%s\n' "$out" >"$T/verify.out"
  return 1
}

# instances UNIT_FILE DIR: the units to verify, in DIR: a template once per role, others as they are.
instances() {
  local file=$1 dir=$2 name
  name=$(basename "$file")
  if [[ "$name" == *@.service ]]; then
    for role in "${roles[@]}"; do
      cp "$file" "$dir/${name%@.service}@$role.service"
      echo "$dir/${name%@.service}@$role.service"
    done
  else
    cp "$file" "$dir/$name"
    echo "$dir/$name"
  fi
}

echo "== the check itself: a misspelt key and a missing binary are caught"
template="$unit_dir/shopd@.service"
[ -f "$template" ] || { fail "no shopd@.service installed in $unit_dir"; finish; }
mkdir -p "$T/broken"
sed 's/^NoNewPrivileges=/NoNewPrivilegs=/' "$template" >"$T/broken/shopd@orders.service"
if verify "$T/broken/shopd@orders.service"; then fail "a misspelt key passed verify"; else
  check_contains "misspelt key reported" "NoNewPrivilegs" "$(cat "$T/verify.out")"; fi
sed "s#^ExecStart=$prefix/bin/shopd#ExecStart=$prefix/bin/no-such-shopd#" "$template" >"$T/broken/shopd@email.service"
if verify "$T/broken/shopd@email.service"; then fail "a missing ExecStart binary passed verify"; else
  check_contains "missing binary reported" "no-such-shopd" "$(cat "$T/verify.out")"; fi

echo "== every installed unit"
mkdir -p "$T/units"
count=0
for file in "$unit_dir"/*.service "$unit_dir"/*.socket "$unit_dir"/*.timer; do
  [ -f "$file" ] || continue
  check_contains "$(basename "$file") names the installed binary" "ExecStart=$prefix/bin/shopd " "$(cat "$file")"
  while read -r unit; do
    count=$((count + 1))
    if verify "$unit"; then pass; else fail "systemd-analyze verify $(basename "$unit"): $(cat "$T/verify.out")"; fi
    score=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 |
      sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$(basename "$unit"): exposure ${score:-?}"
    if [ -z "$score" ]; then fail "no exposure score for $(basename "$unit")"
    elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'; then pass
    else fail "$(basename "$unit"): exposure $score above $max_exposure"; fi
  done < <(instances "$file" "$T/units")
done
check_eq "units verified (the template, once per role)" 5 "$count"

echo "== the user the units run as"
sysusers="$prefix/lib/sysusers.d/shopd.conf"
mkdir -p "$T/sysroot/etc"
if systemd-sysusers --root="$T/sysroot" "$sysusers" >"$T/sysusers.log" 2>&1; then pass; else
  fail "systemd-sysusers $sysusers: $(cat "$T/sysusers.log")"; fi
check_contains "sysusers.d creates shopd with a nologin shell, home the state directory" \
  ":/var/lib/shopd:/usr/sbin/nologin" "$(grep '^shopd:' "$T/sysroot/etc/passwd" 2>/dev/null)"
user=$(sed -n 's/^User=//p' "$unit_dir/shopd@.service")
check_eq "the unit runs as the sysusers.d user" shopd "$user"
finish
