//! kill -9 of a process running named subscriptions: a child copies every input event to an
//! output stream with `Subscription::commit_with` (output and checkpoint in one atomic append)
//! and, beside it, a second subscription reports every event it is handed and checkpoints every
//! few events. The parent adds input events between children and kills each child with SIGKILL
//! at a random moment after it reported that both subscriptions run (one child in eight at a
//! random moment after its start instead, which may land while it opens the store and its
//! subscriptions), until 200 children were killed while running them; a child that ends any
//! other way fails the test. At the end one child runs until it has caught up. Then every input has exactly one
//! output (no duplicate, none missing, in per-stream order), and every input was reported by
//! the plain subscription at least once.
//!
//! The child is this test binary itself, run with `EVLOG_SUBKILL_CHILD_DIR` set.
//!
//! ```text
//! cargo test --release --test subscription_kill9 -- --nocapture      # 200 kills
//! EVLOG_SUBKILL_ROUNDS=2000 cargo test --release --test subscription_kill9 -- --nocapture
//! ```

mod kill9_common;

use kill9_common::{
    Kill, abort_on_unexpected_panic, assert_under_cap, kill9_child, kills_and_seed, run_child,
};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use evlog::subscription::{Subscription, SubscriptionOptions};
use evlog::{
    Direction, Durability, EventData, ExpectedVersion, ReadFilter, RecordedEvent, StoreOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_DIR_ENV: &str = "EVLOG_SUBKILL_CHILD_DIR";
/// Set in the last child: run until caught up, then exit 0.
const CHILD_FINISH_ENV: &str = "EVLOG_SUBKILL_FINISH";
/// How many children to kill while their subscriptions run (default [`DEFAULT_KILLS`]).
const ROUNDS_ENV: &str = "EVLOG_SUBKILL_ROUNDS";
const DEFAULT_KILLS: u64 = 200;
const TEST_NAME: &str = "kill9_subscriptions_copy_exactly_once_and_deliver_at_least_once";
const INPUT_STREAMS: u64 = 12;

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(16 << 10)
        .durability(Durability::Always)
}

fn inputs_filter() -> SubscriptionOptions {
    SubscriptionOptions::default()
        .filter(ReadFilter::all().stream_prefix("in-"))
        .checkpoint_every(7, Duration::from_secs(3600))
}

/// The output event of input `e`, with a fresh id each time: a second output for one input
/// would be stored as a new event (not recognised as a re-send), so the check sees it.
fn output_of(e: &RecordedEvent) -> EventData {
    EventData::new("Copied", e.position.to_string().into_bytes())
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}

fn child_main(dir: &Path) -> ! {
    // A panic aborts the child, which fails the test.
    abort_on_unexpected_panic(|_| false);
    let finish = std::env::var(CHILD_FINISH_ENV).is_ok();
    let store = opts().open(dir).unwrap_or_else(|e| {
        eprintln!("child: open: {e}");
        std::process::exit(2)
    });
    report("@@O\n");
    let mut copier = Subscription::named(&store, "copier", inputs_filter()).unwrap();
    let mut seer = Subscription::named(&store, "seer", inputs_filter()).unwrap();
    // Both subscriptions run: from here on, a kill lands while they handle events (or idle).
    report("@@R\n");
    let mut caught_up = false;
    loop {
        let batch = copier.poll_owned(1, Duration::ZERO).unwrap();
        for e in &batch {
            let out = format!("out-{}", e.stream);
            let expected = store
                .stream_version(&out)
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            copier
                .commit_with(e.position + 1, &[(out, expected, vec![output_of(e)])])
                .unwrap();
        }
        // Each event is reported as it is handed out, before the poll writes its checkpoint.
        let seen = seer
            .poll(3, Duration::ZERO, |e| {
                report(&format!("@@D {}\n", e.position));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap()
            .delivered;
        if batch.is_empty() && seen == 0 {
            if !caught_up {
                // The parent counts the kills that came before.
                report("@@C\n");
                caught_up = true;
            }
            if finish {
                seer.stop().unwrap();
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn kill9_subscriptions_copy_exactly_once_and_deliver_at_least_once() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        child_main(Path::new(&dir));
    }
    let (target, seed) = kills_and_seed(ROUNDS_ENV, DEFAULT_KILLS);
    println!("subscription kill9: {target} kills, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut delivered: HashSet<u64> = HashSet::new();
    let mut kills = 0;
    // Kills before the child had caught up with the inputs.
    let mut kills_catching_up = 0;
    let mut round = 0;
    loop {
        let finish = kills >= target;
        if !finish {
            assert_under_cap(round, kills, target, seed);
        }
        // More input between children, so that children start both behind and caught up.
        {
            let store = opts()
                .durability(Durability::Never)
                .open(dir.path())
                .unwrap();
            for _ in 0..rng.gen_range(0..40) {
                let s = format!("in-{}", rng.gen_range(0..INPUT_STREAMS));
                store
                    .append(
                        &s,
                        ExpectedVersion::Any,
                        &[EventData::new("In", b"{}".to_vec())],
                    )
                    .unwrap();
            }
            store.close().unwrap();
        }
        let mut cmd = kill9_child(TEST_NAME, CHILD_DIR_ENV, dir.path());
        let kill = if finish {
            cmd.env(CHILD_FINISH_ENV, "1");
            Kill::Never
        } else if rng.gen_ratio(1, 8) {
            Kill::AfterStart(Duration::from_micros(rng.gen_range(0..20_000)))
        } else {
            Kill::AfterReady(Duration::from_micros(rng.gen_range(0..50_000)))
        };
        let run = run_child(cmd, kill, &format!("seed {seed}, round {round}"));
        kills += u64::from(run.killed_running);
        if run.killed_running && !run.lines.iter().any(|l| l == "C") {
            kills_catching_up += 1;
        }
        for l in run.lines {
            if let Some(p) = l.strip_prefix("D ") {
                delivered.insert(p.parse().unwrap());
            }
        }
        if finish {
            break;
        }
        round += 1;
    }
    assert!(kills >= target, "only {kills} of {target} kills");

    let store = opts().open(dir.path()).unwrap();
    let all: Vec<RecordedEvent> = store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap();
    let inputs: Vec<&RecordedEvent> = all.iter().filter(|e| e.stream.starts_with("in-")).collect();
    // Exactly one output per input, in each stream's order.
    let mut outputs: HashMap<String, Vec<u64>> = HashMap::new();
    for e in all.iter().filter(|e| e.stream.starts_with("out-")) {
        let p: u64 = std::str::from_utf8(&e.payload).unwrap().parse().unwrap();
        outputs
            .entry(e.stream.trim_start_matches("out-").to_owned())
            .or_default()
            .push(p);
    }
    let mut want: HashMap<String, Vec<u64>> = HashMap::new();
    for e in &inputs {
        want.entry(e.stream.to_string())
            .or_default()
            .push(e.position);
    }
    assert_eq!(
        outputs, want,
        "outputs are not exactly one per input, in order"
    );
    // Every input was handed to the plain subscription at least once.
    let missing: Vec<u64> = inputs
        .iter()
        .map(|e| e.position)
        .filter(|p| !delivered.contains(p))
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let rep = store.verify().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
    println!(
        "subscription kill9: {kills} kills while the subscriptions ran ({kills_catching_up} before \
         they had caught up; {} more before they ran, {round} rounds), {} inputs each copied exactly once and delivered at least once ({} \
         deliveries seen)",
        round - kills,
        inputs.len(),
        delivered.len()
    );
}
