#!/usr/bin/env bash
# Starts a throwaway Redis server on loopback for the tests of
# plexspaces-redis, and prints the URL to use as PLEXSPACES_REDIS. Usage:
# `eval "$(scripts/redis.sh start DIR)"`, later `scripts/redis.sh stop DIR`.
# Installs Debian's `redis-server` package first if it is missing and this
# runs as root. Nothing is persisted (no RDB snapshots, no AOF).
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the server}
port=${PLEXSPACES_REDIS_PORT:-63799}

case "$action" in
start)
    if ! command -v redis-server >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing redis-server (Debian package)" >&2
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2
        else
            echo "Redis is not installed: install Debian's 'redis-server' package" >&2
            exit 1
        fi
    fi
    mkdir -p "$dir"
    # The first free port from $port on (another server may hold one: a
    # server that answers there is not ours).
    for attempt in $(seq 0 19); do
        try=$((port + attempt))
        if (echo >"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then
            continue
        fi
        redis-server --port "$try" --bind 127.0.0.1 --daemonize yes \
            --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --save '' --appendonly no >&2
        for _ in $(seq 1 100); do
            if redis-cli -p "$try" ping 2>/dev/null | grep -q PONG; then
                echo "export PLEXSPACES_REDIS='redis://127.0.0.1:$try/0'"
                exit 0
            fi
            sleep 0.1
        done
        break
    done
    echo "redis-server did not start from port $port on; its log:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
    ;;
stop)
    if [ -f "$dir/redis.pid" ]; then
        kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
