//! kill -9 of a process running a bus handler: a child runs the handler "ledger" (random
//! errors and panics, and events marked poisoned that fail until the last child) with a
//! concurrency drawn per child, asks for a redrive of the parked events half of the time, and
//! reports every event it handles. The parent appends events
//! between children and kills each child with SIGKILL at a random moment after it reported that
//! its handler runs (one child in eight at a random moment after its start instead, which may
//! land while it opens the store and resumes), until 200 children were killed while handling;
//! a child that ends any other way fails the test. The last child heals the handler,
//! redrives every parked event and runs until it has caught up. Then every event was handled at
//! least once, and the first handlings of each stream's events came in version order: nothing
//! lost or reordered by a crash, whatever the checkpoint, dead-letter and redrive records held.
//!
//! The handler also emits one `Credited` event per event it handles
//! (`HandlerContext::emit`, stored with the checkpoint): at the end each stream's outputs hold
//! every event's exactly once, in order (none missing, no duplicate: exactly once across the
//! kills).
//!
//! The child is this test binary itself, run with `EVLOG_BUSKILL_CHILD_DIR` set.
//!
//! ```text
//! cargo test --release --all-features --test bus_kill9 -- --nocapture      # 200 kills
//! EVLOG_BUSKILL_ROUNDS=2000 cargo test --release --all-features --test bus_kill9 -- --nocapture
//! ```

#![cfg(feature = "bus")]

mod bus_common;
mod kill9_common;

use bus_common::{Credited, credit};

use kill9_common::{
    Kill, abort_on_unexpected_panic, assert_under_cap, kill9_child, kills_and_seed, run_child,
};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog::bus::{BusConfig, DomainEvent, EventBus, Outcome};
use evlog::{Direction, Durability, ExpectedVersion, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_DIR_ENV: &str = "EVLOG_BUSKILL_CHILD_DIR";
/// Set in the last child: heal, redrive, run until caught up, then exit 0.
const CHILD_FINISH_ENV: &str = "EVLOG_BUSKILL_FINISH";
const CHILD_SEED_ENV: &str = "EVLOG_BUSKILL_SEED";
/// How many children to kill while their handler runs (default [`DEFAULT_KILLS`]).
const ROUNDS_ENV: &str = "EVLOG_BUSKILL_ROUNDS";
const DEFAULT_KILLS: u64 = 200;
/// The message of the handler's planned panics.
const PLANNED_PANIC: &str = "ledger crashed";
const TEST_NAME: &str = "kill9_bus_handler_loses_and_reorders_nothing";
const STREAMS: u64 = 10;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Moved {
    n: u64,
    poisoned: bool,
}

impl DomainEvent for Moved {
    const EVENT_TYPE: &'static str = "Moved";
}

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(64 << 10)
        .durability(Durability::Always)
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}

fn child_main(dir: &Path) -> ! {
    // Handler panics are part of the test: keep them off the output. Any other panic aborts
    // the child, which fails the test.
    abort_on_unexpected_panic(|m| m == PLANNED_PANIC);
    let finish = std::env::var(CHILD_FINISH_ENV).is_ok();
    let seed: u64 = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let store = Arc::new(opts().open(dir).unwrap_or_else(|e| {
        eprintln!("child: open: {e}");
        std::process::exit(2)
    }));
    let config = BusConfig::default()
        .max_retries(1)
        .retry_delay_ms(1)
        .max_retry_delay_ms(2)
        .idle_poll_ms(1)
        .batch_events(rng.gen_range(1..30))
        .checkpoint_every_events(rng.gen_range(1..10))
        .concurrency(rng.gen_range(1..=3));
    let fail_rate = if finish { 0.0 } else { 0.1 };
    let redrive_at_start = rng.gen_bool(0.5);
    let handler_rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ 0xfa11)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let bus = EventBus::new(store.clone(), config);
        bus.subscribe("ledger", move |ctx, e: Moved| {
            let r: f64 = handler_rng.lock().unwrap().r#gen();
            let stream = ctx.event().stream.to_string();
            let fails = (e.poisoned && !finish) || r < fail_rate;
            if fails && r < fail_rate / 2.0 {
                panic!("{PLANNED_PANIC}");
            }
            if !fails {
                // Reported before the handler returns: whatever the bus records as done was
                // reported.
                report(&format!("@@H {stream} {}\n", e.n));
            }
            async move {
                if fails {
                    return Err("ledger refused".into());
                }
                credit(&ctx, &stream, e.n)?;
                Ok(Outcome::Handled)
            }
        })
        .unwrap();
        // The handler runs: from here on, a kill lands while it handles events (or idles).
        report("@@R\n");
        if !finish {
            // Parked events whose failure was passing are handled again; poisoned ones are
            // parked again.
            if redrive_at_start {
                bus.dead_letters("ledger").redrive_all("test").unwrap();
            }
            // Caught up (the parent counts the kills that came before).
            if let Some(head) = store.head_position() {
                bus.wait_for("ledger", head).await.unwrap();
            }
            report("@@C\n");
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        let dlq = bus.dead_letters("ledger");
        loop {
            let head = store.head_position().unwrap();
            bus.wait_for("ledger", head).await.unwrap();
            if dlq.count().unwrap() == 0 {
                break;
            }
            dlq.redrive_all("test").unwrap();
            while dlq.count().unwrap() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        bus.shutdown().await.unwrap();
    });
    std::process::exit(0)
}

#[test]
fn kill9_bus_handler_loses_and_reorders_nothing() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        child_main(Path::new(&dir));
    }
    let (target, seed) = kills_and_seed(ROUNDS_ENV, DEFAULT_KILLS);
    println!("bus kill9: {target} kills, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut published: BTreeMap<String, u64> = BTreeMap::new();
    let mut handled: Vec<(String, u64)> = Vec::new();
    let mut kills = 0;
    // Kills before the child had caught up with the head it saw after its start.
    let mut kills_catching_up = 0;
    let mut handled_before_last = 0;
    let mut round = 0;
    loop {
        let finish = kills >= target;
        if !finish {
            assert_under_cap(round, kills, target, seed);
        }
        {
            let store = opts()
                .durability(Durability::Never)
                .open(dir.path())
                .unwrap();
            for _ in 0..rng.gen_range(0..25) {
                let stream = format!("acct-{}", rng.gen_range(0..STREAMS));
                let n = published.entry(stream.clone()).or_insert(0);
                let e = Moved {
                    n: *n,
                    poisoned: rng.gen_bool(0.01),
                };
                store
                    .append(&stream, ExpectedVersion::Any, &[e.to_event_data().unwrap()])
                    .unwrap();
                *n += 1;
            }
            store.close().unwrap();
        }
        let mut cmd = kill9_child(TEST_NAME, CHILD_DIR_ENV, dir.path());
        cmd.env(CHILD_SEED_ENV, rng.r#gen::<u64>().to_string());
        let kill = if finish {
            cmd.env(CHILD_FINISH_ENV, "1");
            handled_before_last = handled.len();
            Kill::Never
        } else if rng.gen_ratio(1, 8) {
            Kill::AfterStart(Duration::from_micros(rng.gen_range(0..30_000)))
        } else if rng.gen_ratio(3, 4) {
            // A child mostly catches up within a few milliseconds of its start.
            Kill::AfterReady(Duration::from_micros(rng.gen_range(0..20_000)))
        } else {
            Kill::AfterReady(Duration::from_micros(rng.gen_range(0..120_000)))
        };
        let run = run_child(cmd, kill, &format!("seed {seed}, round {round}"));
        kills += u64::from(run.killed_running);
        if run.killed_running && !run.lines.iter().any(|l| l == "C") {
            kills_catching_up += 1;
        }
        for l in run.lines {
            if let Some(h) = l.strip_prefix("H ") {
                let (stream, n) = h.split_once(' ').unwrap();
                handled.push((stream.to_owned(), n.parse().unwrap()));
            }
        }
        if finish {
            break;
        }
        round += 1;
    }
    assert!(kills >= target, "only {kills} of {target} kills");
    // Every event handled, the first handlings of each stream in version order.
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for (stream, n) in &handled {
        if seen.insert((stream.as_str(), *n)) {
            let want = next.entry(stream.as_str()).or_insert(0);
            assert_eq!(
                *n, *want,
                "seed {seed}: {stream} {n} first handled before {want}"
            );
            *want += 1;
        }
    }
    for (stream, count) in &published {
        assert_eq!(
            next.get(stream.as_str()).copied().unwrap_or(0),
            *count,
            "seed {seed}: events of {stream} never handled"
        );
    }
    let store = opts().open(dir.path()).unwrap();
    let rep = store.verify().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
    // Exactly once: each event's output stored once, in order.
    let mut outputs = 0;
    for (stream, count) in &published {
        let credited: Vec<u64> = store
            .read_stream(&format!("out-{stream}"), 0, Direction::Forward, usize::MAX)
            .map(|e| {
                serde_json::from_slice::<Credited>(&e.unwrap().payload)
                    .unwrap()
                    .n
            })
            .collect();
        assert_eq!(
            credited,
            (0..*count).collect::<Vec<_>>(),
            "seed {seed}: the outputs of {stream}"
        );
        outputs += credited.len();
    }
    println!(
        "bus kill9: {kills} kills while the handler ran ({kills_catching_up} before it had caught \
         up; {} more before it ran, {round} rounds), {} events each handled at least once in per-stream order ({} handlings, \
         {handled_before_last} by the killed children); {outputs} outputs, each stored once",
        round - kills,
        seen.len(),
        handled.len()
    );
}
