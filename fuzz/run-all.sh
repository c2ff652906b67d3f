#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 60), one after the other.
#
#   fuzz/run-all.sh 60          # 8 targets x 60 s = 8 minutes of fuzzing, plus the build
#
# Targets (fuzz/src/targets.rs): frame, record (with compaction placeholders), segment (.seg and
# compressed .zseg files), index, checkpoint, store (a whole store directory, .zseg segments
# included), snapshot (snapshot files, and SnapshotStore over them), settings (the
# streams.settings file, alone and in a store, and the archive marker). `.ci/run` runs
# `fuzz/run-all.sh 20`.
#
# Installs cargo-fuzz from crates.io if it is missing (a fixed version, `cargo install --locked`),
# and runs it on the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags for
# the sanitizer). Each target starts from
# its committed seeds (fuzz/seeds/<target>) and its corpus (fuzz/corpus/<target>, not committed);
# a crash stops the script with the input under fuzz/artifacts/<target>/. To keep a crash as a
# regression test, copy the input to fuzz/regressions/<target>/ (tests/fuzz_regressions.rs
# replays every file there) and list it in that file's KNOWN_BUGS until it is fixed.
#
# Environment: FUZZ_TARGETS="frame index" runs only those.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-60}"
ALL_TARGETS="frame record segment index checkpoint store snapshot settings"
TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"
export RUSTC_BOOTSTRAP=1

# Every target in fuzz_targets/ must be in the default list (so that CI runs it).
for f in fuzz_targets/*.rs; do
    t=$(basename "$f" .rs)
    if [[ " $ALL_TARGETS " != *" $t "* ]]; then
        echo "!! fuzz target $t is not in ALL_TARGETS of fuzz/run-all.sh" >&2
        exit 2
    fi
done

# A fixed version, built with its own Cargo.lock: the same cargo-fuzz on every CI run (about
# 30 s to build).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

echo "== building the targets"
cargo fuzz build --release --debug-assertions

declare -A EXECS
status=0
for t in $TARGETS; do
    mkdir -p "corpus/$t"
    log="target/fuzz-$t.log"
    mkdir -p target
    echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
    # -timeout: an input that takes over 10 s is a hang; -rss_limit_mb: a huge allocation is a
    # bug. -max_len leaves room for whole golden stores (about 22 KB) in the store target.
    max_len=65536
    if ! cargo fuzz run --release --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$max_len" -print_final_stats=1 \
        >"$log" 2>&1; then
        echo "!! $t failed; see fuzz/$log and fuzz/artifacts/$t/"
        grep -m1 -A14 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" || tail -n 20 "$log"
        grep -A2 '^Failing input' "$log" || true
        status=1
    fi
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
    EXECS[$t]=$execs
    echo "   $t: $execs executions"
done

echo "== executions per target (${SECONDS_PER_TARGET}s each)"
for t in $TARGETS; do
    echo "   $t: ${EXECS[$t]}"
done
exit $status
