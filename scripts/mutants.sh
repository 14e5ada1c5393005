#!/usr/bin/env bash
# Mutation testing as a habit: breaks the journal, durability and workflow
# code one small change at a time (cargo-mutants) and checks that a test
# notices. Survivors ("missed") are listed; TESTING.md records the score
# and, for each survivor, the test that now kills it or why it cannot be
# killed. Installs cargo-mutants when missing.
#
#   scripts/mutants.sh [journal|durability|workflow|all]   (default: all)
#
# The tokio tests are the oracle here (a mutant's build and test take a few
# seconds); the simulation scenarios are too slow to run per mutant.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants --version 27.1.0
fi
out=target/mutants
mkdir -p "$out"

if [ "$which" = journal ] || [ "$which" = all ]; then
    echo "== the journal (storage/src/journal), with the storage crate's tests"
    cargo mutants --package plexspaces-storage \
        --file 'storage/src/journal/*.rs' --file 'storage/src/journal/file/*.rs' \
        --exclude 'storage/src/journal/error.rs' \
        --timeout 15 --profile mutants \
        --cargo-test-arg=--lib --cargo-test-arg=--test=journal \
        --cargo-test-arg=--test=journal_props --cargo-test-arg=--test=fuzz_corpus \
        --output "$out/journal" || true
fi

if [ "$which" = durability ] || [ "$which" = all ]; then
    echo "== durable actors (runtime/src/durability), with their tests"
    # No --lib: the module has no unit tests, and the runtime's unit test
    # binary would add half a minute of build to every mutant.
    cargo mutants --package plexspaces \
        --file 'runtime/src/durability/*.rs' --exclude 'runtime/src/durability/backend.rs' \
        --timeout 60 --profile mutants \
        --cargo-test-arg=--test=durability --cargo-test-arg=--test=unencodable \
        --cargo-test-arg=--test=shared_journal \
        --output "$out/durability" || true
fi

if [ "$which" = workflow ] || [ "$which" = all ]; then
    echo "== workflows (runtime/src/workflow), with their tests"
    cargo mutants --package plexspaces --file 'runtime/src/workflow/*.rs' \
        --timeout 60 --profile mutants \
        --cargo-test-arg=--lib --cargo-test-arg=--test=workflows \
        --cargo-test-arg=--test=workflow_props \
        --output "$out/workflow" || true
fi

for run in journal durability workflow; do
    dir="$out/$run/mutants.out"
    [ -d "$dir" ] || continue
    caught=$(wc -l < "$dir/caught.txt")
    missed=$(wc -l < "$dir/missed.txt")
    timeout=$(wc -l < "$dir/timeout.txt")
    unviable=$(wc -l < "$dir/unviable.txt")
    echo "== $run: caught $caught, timed out $timeout (a hang is caught), missed $missed, unviable $unviable"
    if [ "$missed" -gt 0 ]; then
        echo "   survivors:"
        sed 's/^/     /' "$dir/missed.txt"
    fi
done
