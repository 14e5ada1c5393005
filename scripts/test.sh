#!/usr/bin/env bash
# Every test of PlexSpaces: unit, property, integration and doc tests on
# tokio, then the simulation tests under `--cfg madsim` in their own target
# directory (so the two builds never evict each other).
#
# The PostgreSQL journal's and key-value store's tests need a server:
# unless PLEXSPACES_PG is already set, a throwaway one is started on
# loopback (scripts/postgres.sh, which installs Debian's `postgresql`
# package first if it is missing and this runs as root) and stopped at the
# end. Likewise Redis for the Redis key-value store (PLEXSPACES_REDIS,
# scripts/redis.sh, Debian's `redis-server`), and an S3-compatible server
# for the S3 blob store (PLEXSPACES_S3, scripts/s3.sh: moto's, from PyPI,
# installed once into a virtual environment).
#
#   PLEXSPACES_SEEDS=N   run every simulation scenario over seeds 0..N
#   PLEXSPACES_SEED_START=B   ... over seeds B..B+N instead
#   PLEXSPACES_SEED=S    run every simulation scenario with seed S only
#
# By default each scenario runs its CI seeds, its regression seeds, and a
# window of fresh seeds derived from the commit (PLEXSPACES_FRESH_BASE,
# set here from `git rev-parse HEAD`): every commit explores new seeds. A
# failing seed prints the one command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

services=$(mktemp -d)
stop_services() {
    if [ -d "$services/postgres" ]; then scripts/postgres.sh stop "$services/postgres"; fi
    if [ -d "$services/redis" ]; then scripts/redis.sh stop "$services/redis"; fi
    if [ -d "$services/s3" ]; then scripts/s3.sh stop "$services/s3"; fi
}
trap stop_services EXIT
if [ -z "${PLEXSPACES_PG:-}" ]; then
    echo "== starting a throwaway PostgreSQL in $services/postgres"
    pg_env=$(scripts/postgres.sh start "$services/postgres")
    eval "$pg_env"
fi
if [ -z "${PLEXSPACES_REDIS:-}" ]; then
    echo "== starting a throwaway Redis in $services/redis"
    redis_env=$(scripts/redis.sh start "$services/redis")
    eval "$redis_env"
fi
if [ -z "${PLEXSPACES_S3:-}" ]; then
    echo "== starting a throwaway S3-compatible server in $services/s3"
    s3_env=$(scripts/s3.sh start "$services/s3")
    eval "$s3_env"
fi

echo "== tests on tokio"
cargo test --locked

if [ -z "${PLEXSPACES_FRESH_BASE:-}" ]; then
    PLEXSPACES_FRESH_BASE=$(git rev-parse --short=12 HEAD 2>/dev/null || date +%Y%m%d)
    export PLEXSPACES_FRESH_BASE
fi
echo "== simulation tests (--cfg madsim), fresh seeds from PLEXSPACES_FRESH_BASE=$PLEXSPACES_FRESH_BASE"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
    cargo test --locked --profile sim -p plexspaces-sim -p plexspaces-tests-sim
