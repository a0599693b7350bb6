#!/usr/bin/env bash
# Run node:test files in tests/interop against the pinned @upstash/qstash SDK.
#   run-node-test.sh [TEST_FILE...]     (default: every *.test.mjs)
# Installs node_modules with `npm ci` from the committed package-lock.json when it is missing or
# older than the lock file. The install is serialized with flock, so parallel CTest runs share it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

install_needed() {
  [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]
}

if install_needed; then
  (
    flock 9
    if install_needed; then
      echo "run-node-test: npm ci in $here" >&2
      npm ci --no-audit --no-fund >&2
    fi
  ) 9<"$here"
fi

# The SDK's dev mode would ignore the keys under test (and may download a server); multi-region
# mode would read other variables. Neither belongs in these tests.
unset QSTASH_DEV QSTASH_DEV_PORT QSTASH_REGION QSTASH_URL QSTASH_TOKEN \
  QSTASH_CURRENT_SIGNING_KEY QSTASH_NEXT_SIGNING_KEY
export UPSTASH_DISABLE_TELEMETRY=1

if [[ $# -eq 0 ]]; then
  set -- *.test.mjs
fi
exec node --test "$@"
