#!/usr/bin/env bash
# Every test of PlexSpaces: unit, property, integration and doc tests on
# tokio, then the simulation tests under `--cfg madsim` in their own target
# directory (so the two builds never evict each other).
#
#   PLEXSPACES_SEEDS=N   run every simulation scenario over seeds 0..N
#   PLEXSPACES_SEED=S    run every simulation scenario with seed S only
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tests on tokio"
cargo test --locked

echo "== simulation tests (--cfg madsim)"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
    cargo test --locked -p plexspaces-sim -p plexspaces-tests-sim
