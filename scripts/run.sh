#!/usr/bin/env bash
# `make run`: install what is missing, build (release), apply migrations and start every role, the
# relay included, in one process on SQLite with their default ports. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
bin=build/release/shopd
env_file=${SHOPD_ENV_FILE:-config/local.env}
mkdir -p var
"$bin" migrate --env-file "$env_file" --seed config/catalogue.json
exec "$bin" serve --role=all --env-file "$env_file"
