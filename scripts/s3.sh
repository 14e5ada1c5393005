#!/usr/bin/env bash
# Starts a throwaway S3-compatible server (moto's, from PyPI) on loopback
# for the S3 tests of plexspaces-blob, creates the bucket `plexspaces-test`,
# and prints the endpoint to use as PLEXSPACES_S3. Usage:
# `eval "$(scripts/s3.sh start DIR)"`, later `scripts/s3.sh stop DIR`.
# moto is installed once into a virtual environment under
# ${PLEXSPACES_TOOLS:-$HOME/.cache/plexspaces}/moto (Debian's python3-venv
# is installed first if missing and this runs as root).
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the server}
port=${PLEXSPACES_S3_PORT:-63790}
venv=${PLEXSPACES_TOOLS:-$HOME/.cache/plexspaces}/moto

case "$action" in
start)
    if [ ! -x "$venv/bin/moto_server" ]; then
        if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                echo "installing python3-venv (Debian package)" >&2
                (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv) >&2
            else
                echo "python3 with venv is needed for the S3 test server" >&2
                exit 1
            fi
        fi
        echo "installing moto's S3 server into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q 'moto[server]>=5,<6' >&2
    fi
    mkdir -p "$dir"
    # The first free port from $port on (a server that answers there is
    # not ours).
    for _ in $(seq 0 19); do
        if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
        port=$((port + 1))
    done
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    for _ in $(seq 1 200); do
        if "$venv/bin/python" - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/plexspaces-test", method="PUT")
urllib.request.urlopen(request, timeout=1)
PY
            echo "export PLEXSPACES_S3='http://127.0.0.1:$port'"
            exit 0
        fi
        sleep 0.1
    done
    echo "the S3 server did not answer on port $port; its log:" >&2
    cat "$dir/moto.log" >&2 || true
    exit 1
    ;;
stop)
    if [ -f "$dir/moto.pid" ]; then
        kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
