//! kill -9 of a process running named subscriptions: a child copies every input event to an
//! output stream with `Subscription::commit_with` (output and checkpoint in one atomic append)
//! and, beside it, a second subscription reports every event it is handed and checkpoints every
//! few events. The parent adds input events between children and kills each child at a random
//! moment; at the end one child runs until it has caught up. Then every input has exactly one
//! output (no duplicate, none missing, in per-stream order), and every input was reported by
//! the plain subscription at least once.
//!
//! The child is this test binary itself, run with `EVLOG_SUBKILL_CHILD_DIR` set.
//!
//! ```text
//! cargo test --release --test subscription_kill9 -- --nocapture      # 200 kills
//! EVLOG_SUBKILL_ROUNDS=2000 cargo test --release --test subscription_kill9 -- --nocapture
//! ```

mod common;

use common::{kill9_child, kill9_rounds_and_seed, run_child};
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
const ROUNDS_ENV: &str = "EVLOG_SUBKILL_ROUNDS";
const DEFAULT_ROUNDS: u64 = 200;
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
    let finish = std::env::var(CHILD_FINISH_ENV).is_ok();
    let store = opts().open(dir).unwrap_or_else(|e| {
        eprintln!("child: open: {e}");
        std::process::exit(2)
    });
    report("@@O\n");
    let mut copier = Subscription::named(&store, "copier", inputs_filter()).unwrap();
    let mut seer = Subscription::named(&store, "seer", inputs_filter()).unwrap();
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
    let (rounds, seed) = kill9_rounds_and_seed(ROUNDS_ENV, DEFAULT_ROUNDS);
    println!("subscription kill9: {rounds} rounds, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut delivered: HashSet<u64> = HashSet::new();
    let mut kills = 0;
    for round in 0..=rounds {
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
        let finish = round == rounds;
        let mut cmd = kill9_child(TEST_NAME, CHILD_DIR_ENV, dir.path());
        if finish {
            cmd.env(CHILD_FINISH_ENV, "1");
        }
        let kill_after = (!finish).then(|| Duration::from_micros(rng.gen_range(0..60_000)));
        let (lines, killed) = run_child(cmd, "@@", kill_after);
        kills += u64::from(killed);
        for l in lines {
            if let Some(p) = l.strip_prefix("D ") {
                delivered.insert(p.parse().unwrap());
            }
        }
    }
    assert!(
        kills * 2 >= rounds,
        "only {kills} of {rounds} children were killed"
    );

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
        "subscription kill9: {kills} kills, {} inputs each copied exactly once and delivered at \
         least once ({} deliveries seen)",
        inputs.len(),
        delivered.len()
    );
}
