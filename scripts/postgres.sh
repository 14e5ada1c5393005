#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for the tests of
# plexspaces-postgres, and prints the connection string to use as
# PLEXSPACES_PG. Usage: `eval "$(scripts/postgres.sh start DIR)"`, later
# `scripts/postgres.sh stop DIR` (`pause DIR` and `resume DIR` stop and
# restart it on the same port and data). Installs Debian's `postgresql` package
# first if its binaries are missing and this runs as root.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the server}
port=${PLEXSPACES_PG_PORT:-54329}

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
start)
    if [ -z "$(pg_bin)" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing postgresql (Debian package)" >&2
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
        else
            echo "PostgreSQL is not installed: install Debian's 'postgresql' package" >&2
            exit 1
        fi
    fi
    bin=$(pg_bin)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        chmod o+x "$(dirname "$dir")"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    # The first free port from $port on (another server may hold one).
    for attempt in $(seq 0 19); do
        try=$((port + attempt))
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
            -o "-p $try -k $dir -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null 2>&1; then
            echo "$try" >"$dir/port"
            echo "export PLEXSPACES_PG='host=127.0.0.1 port=$try user=postgres dbname=postgres'"
            exit 0
        fi
    done
    echo "PostgreSQL did not start; see $dir/server.log" >&2
    exit 1
    ;;
pause)
    # Stops the server but keeps its data and port (the readiness test
    # takes its journal away and gives it back).
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    try=$(cat "$dir/port")
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $try -k $dir -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null
    ;;
stop)
    bin=$(pg_bin)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|pause|resume|stop DIR" >&2
    exit 2
    ;;
esac
