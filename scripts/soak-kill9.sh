#!/usr/bin/env bash
# kill -9 soak: runs the kill -9 harness (tests/kill9.rs) for ROUNDS kills (default 10,000) and
# prints what it survived. Each round starts a child that opens the store and appends with
# Durability::Always, kills it with SIGKILL at a random moment (a quarter of them while they
# open and recover the store), then checks every acknowledged event, dense positions and
# versions, and verify. A fresh store directory is started every 100 rounds.
#
#   scripts/soak-kill9.sh            # 10,000 kills (about 15 minutes on 2 shared cores)
#   scripts/soak-kill9.sh 2000
#   EVLOG_KILL9_SEED=123 scripts/soak-kill9.sh 500     # replay a run (the seed is printed)
#   EVLOG_KILL9_DIR=/mnt/disk scripts/soak-kill9.sh    # stores on a chosen file system
#
# Progress (every 500 kills) goes to target/soak-kill9.log: `tail -f` it.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-10000}"
echo "== kill -9 soak: $ROUNDS kills"
mkdir -p target
EVLOG_KILL9_ROUNDS="$ROUNDS" cargo test --release --test kill9 -- --nocapture --test-threads 1 \
    >target/soak-kill9.log 2>&1 || true
grep -E '^kill9:|panicked|^test result' target/soak-kill9.log || true
if grep -q '^test result: ok' target/soak-kill9.log; then
    echo "== soak passed (log: target/soak-kill9.log)"
else
    echo "!! soak failed (log: target/soak-kill9.log)"
    exit 1
fi
