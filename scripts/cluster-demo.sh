#!/usr/bin/env bash
# A real PlexSpaces cluster on one machine: PostgreSQL (the shared journal)
# and three node processes of the demo bank (virtual accounts, transfers as
# durable workflows), each from its own configuration file. It drives
# transfers, SIGKILLs a node in the middle of them, restarts it, stops
# another gracefully (SIGTERM: its accounts hand off to the others), and
# shows with the operator CLI where the actors are and that every
# acknowledged transfer applied exactly once.
#
#   ./scripts/cluster-demo.sh            # uses PLEXSPACES_PG if set, else
#                                        # starts a throwaway PostgreSQL
#   KEEP=1 ./scripts/cluster-demo.sh     # keep the work directory (logs)
#   PLEXSPACES_DEMO_BIN=DIR ...          # use the binaries in DIR, build nothing
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${DEMO_ACCOUNTS:-20}
transfers=${DEMO_TRANSFERS:-120}

if [ -n "${PLEXSPACES_DEMO_BIN:-}" ]; then
    # Binaries built already (CI: by the test stage, which runs them).
    bin=$PLEXSPACES_DEMO_BIN
else
    echo "== building the node host, the CLI and the demo service"
    cargo build --locked -q -p plexspaces-node --bins
    bin=$PWD/target/debug
fi
for program in plexspaces plexspaces-demo-bank; do
    [ -x "$bin/$program" ] || { echo "no $bin/$program" >&2; exit 1; }
done
work=$(mktemp -d /tmp/plexspaces-demo.XXXXXX)
declare -A pid
own_pg=""
cleanup() {
    for p in "${pid[@]}"; do
        { kill -9 "$p" && wait "$p"; } 2>/dev/null || true
    done
    if [ -n "$own_pg" ]; then scripts/postgres.sh stop "$work/pg"; fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "(kept $work)"; fi
}
trap cleanup EXIT

if [ -z "${PLEXSPACES_PG:-}" ]; then
    echo "== starting a throwaway PostgreSQL"
    eval "$(scripts/postgres.sh start "$work/pg")"
    own_pg=1
fi
# Every run its own ids, so runs against one database keep apart.
prefix="demo$$-"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
declare -A cluster_port operator_port
for n in a b c driver; do
    cluster_port[$n]=$(free_port)
    operator_port[$n]=$(free_port)
done
for n in a b c driver; do
    cat >"$work/$n.toml" <<TOML
[node]
name = "$n"
data_dir = "$work/data-$n"

[cluster]
listen = "127.0.0.1:${cluster_port[$n]}"
seeds = ["127.0.0.1:${cluster_port[a]}"]
secret_file = "$work/secret"
down_after = "2s"

[journal]
backend = "postgres"
postgres = "$PLEXSPACES_PG"

[operator]
listen = "127.0.0.1:${operator_port[$n]}"

[log]
level = "warn"
TOML
done

cli() {
    local node=$1
    shift
    "$bin/plexspaces" --node "127.0.0.1:${operator_port[$node]}" --secret-file "$work/secret" "$@"
}

start_node() {
    "$bin/plexspaces-demo-bank" serve "$work/$1.toml" >>"$work/$1.log" 2>&1 &
    pid[$1]=$!
}

wait_members() { # node, how many up
    for _ in $(seq 1 150); do
        if [ "$(cli "$1" members --json 2>/dev/null | grep -o '"status":"up"' | wc -l)" -ge "$2" ]; then
            return 0
        fi
        sleep 0.2
    done
    echo "node $1 does not see $2 members up"
    cli "$1" members || true
    return 1
}

echo "== starting nodes a, b, c from $work/{a,b,c}.toml"
for n in a b c; do start_node $n; done
wait_members a 3
cli a members

echo
echo "== driving $transfers transfers between $accounts accounts (a fourth process, the driver)"
"$bin/plexspaces-demo-bank" drive "$work/driver.toml" --prefix "$prefix" \
    --accounts "$accounts" --transfers "$transfers" >"$work/drive.log" 2>&1 &
driver=$!
sleep 2
echo "== SIGKILL node b in the middle of the transfers"
kill -9 "${pid[b]}"
wait "${pid[b]}" 2>/dev/null || true
sleep 3
echo "== restarting node b"
start_node b
if ! wait "$driver"; then
    echo "the driver failed:"
    cat "$work/drive.log"
    exit 1
fi
cat "$work/drive.log"
wait_members a 3

echo
echo "== where the accounts are now"
for n in a b c; do
    echo "-- node $n"
    cli $n virtual list
done
cli a virtual where account "${prefix}acct-1"
echo
echo "== the transfer runs (first lines)"
cli a workflows list transfer --tenant demo | head -5
cli a workflows status transfer demo "${prefix}t-0"

echo
echo "== SIGTERM node c: a graceful shutdown hands its accounts off"
kill -TERM "${pid[c]}"
if ! wait "${pid[c]}"; then
    echo "node c did not exit 0"
    cat "$work/c.log"
    exit 1
fi
unset 'pid[c]'
grep -h "stopped:" "$work/c.log" || true
wait_members a 2
cli a members

echo
echo "== every acknowledged transfer applied exactly once?"
"$bin/plexspaces-demo-bank" check "$work/driver.toml" --prefix "$prefix" \
    --accounts "$accounts" --transfers "$transfers"
cli a health
echo "cluster demo: OK"
