#!/usr/bin/env bash
# Regenerate config/<role>.env.example, the env file of each systemd unit shopd@<role>, from the code
# (`shopd config --format env --role=<role>`). tests/ops/env_examples_test.sh fails when they differ.
# Usage: scripts/update-env-examples.sh [path/to/shopd]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/shopd}
for role in orders email inventory analytics relay; do
  "$bin" config --format env --role="$role" >"config/$role.env.example.tmp"
  mv "config/$role.env.example.tmp" "config/$role.env.example"
done
