#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for tests, on 127.0.0.1 and a free port.
#   pg-temp.sh start DIR   initdb into a fresh temp dir, start, write DIR/info (a libpq conninfo)
#   pg-temp.sh stop DIR    stop it and remove its data
#   pg-temp.sh halt DIR    stop the server but keep its data (a database outage, for fault tests)
#   pg-temp.sh resume DIR  start a halted server again, on the same port
# initdb refuses root, so as root the server runs as the 'postgres' user.
set -euo pipefail
cmd=${1:?usage: pg-temp.sh start|stop|halt|resume DIR}
dir=${2:?usage: pg-temp.sh start|stop|halt|resume DIR}
bin=/usr/lib/postgresql/15/bin

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ -f "$dir/data_dir" ] && "$0" stop "$dir" || true
    data=$(mktemp -d /tmp/shopd-pg.XXXXXX)
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
    as_owner "$bin/initdb" -D "$data/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$data/initdb.log"
    for attempt in 1 2 3; do
      port=$(/usr/bin/python3 "$(dirname "$0")/free_ports.py" 1)
      if as_owner "$bin/pg_ctl" -D "$data/data" -l "$data/log" -w -t 30 \
          -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null; then
        echo "$data" >"$dir/data_dir"
        echo "host=127.0.0.1 port=$port user=postgres dbname=postgres" >"$dir/info"
        echo "pg-temp: PostgreSQL on 127.0.0.1:$port ($data)"
        exit 0
      fi
    done
    cat "$data/log" >&2
    exit 1
    ;;
  stop)
    [ -f "$dir/data_dir" ] || exit 0
    data=$(cat "$dir/data_dir")
    as_owner "$bin/pg_ctl" -D "$data/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$data" "$dir/data_dir" "$dir/info"
    ;;
  halt)
    data=$(cat "$dir/data_dir")
    as_owner "$bin/pg_ctl" -D "$data/data" -m fast -w stop >/dev/null
    ;;
  resume)
    data=$(cat "$dir/data_dir")
    port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$dir/info")
    as_owner "$bin/pg_ctl" -D "$data/data" -l "$data/log" -w -t 30 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    ;;
  *) echo "usage: pg-temp.sh start|stop|halt|resume DIR" >&2; exit 2 ;;
esac
