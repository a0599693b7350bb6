#!/usr/bin/env bash
# Installs the Debian 12 packages shopd needs to build, run and test. A quick no-op when they are
# all present. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build pkg-config clang-format
  # fuzzing (tests/fuzz): clang, and libFuzzer's runtime with the sanitizers', which Debian 12 ships
  # in libclang-rt-14-dev (clang only recommends it)
  clang libclang-rt-14-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsoci-dev libsqlite3-dev libpq-dev libcli11-dev doctest-dev libssl-dev libcurl4-openssl-dev
  # run and test
  sqlite3 postgresql-15 python3-aiosmtpd wrk curl ca-certificates
  # the ops tests: systemd-analyze verify/security, systemd-sysusers (systemd need not be running)
  systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-upgrade: never upgrade a PostgreSQL (or anything else) the machine already runs.
$sudo apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null
