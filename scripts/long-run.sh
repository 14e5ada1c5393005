#!/usr/bin/env bash
# A long run before a release: every simulation scenario over N fresh seeds
# (default 1000), starting at a window no CI run uses (derived from the
# time, or PLEXSPACES_SEED_START), going on past failures and listing every
# failing seed with the one command that replays it.
#
#   scripts/long-run.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000}
start=${PLEXSPACES_SEED_START:-$(( ( $(date +%s) % 1000000 ) * 1000000 + (1 << 40) ))}
export RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim
export PLEXSPACES_SEEDS=$count PLEXSPACES_SEED_START=$start PLEXSPACES_KEEP_GOING=1
echo "== every scenario over seeds $start..$((start + count)) (PLEXSPACES_SEED_START=$start)"
cargo build --locked --profile sim -p plexspaces-tests-sim --tests
log=$(mktemp)
status=0
for test in tests-sim/tests/*.rs; do
    name=$(basename "$test" .rs)
    echo "== $name"
    if ! cargo test --locked --profile sim -p plexspaces-tests-sim --test "$name" 2>&1 | tee -a "$log" |
        grep -E "^test |test result"; then
        :
    fi
    if grep -q "FAILED $name\|test result: FAILED" "$log"; then
        status=1
    fi
done
echo
if grep -q "^FAILED " "$log"; then
    echo "== failing seeds, each with its replay command:"
    grep "^FAILED " "$log" | sort -u
fi
if grep -q "test result: FAILED" "$log" && ! grep -q "^FAILED " "$log"; then
    echo "== a test failed outside the seed loop; its output:"
    grep -B5 -A20 "panicked at" "$log" | head -100
fi
rm -f "$log"
exit $status
