//! Exactly-once outputs across failures, conflicts, redrives and restarts: a handler that emits
//! two outputs per event (one to its stream's `out-STREAM`, one to a shared `out-all` expecting
//! the exact version it read, so that events handled together conflict and go through the
//! refused-output path) fails at random, asks to retry later at random, and runs on a series of
//! buses over one store (random concurrency, batch and checkpoint sizes), each stopped cleanly
//! or abruptly (its runtime dropped mid-delivery, without a final checkpoint). At the end, with
//! the failures healed and every parked event redriven, each stream's outputs are its events'
//! numbers exactly once and in order, and `out-all` holds every event's output exactly once.

#![cfg(feature = "bus")]

mod bus_common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_common::{Credited, Moved, credit, until_empty};
use evlog::bus::{BusConfig, DomainEvent, EventBus, Outcome};
use evlog::{Direction, Durability, ExpectedVersion, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What `out-all` holds for an event.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Seen {
    stream: String,
    n: u64,
}

impl DomainEvent for Seen {
    const EVENT_TYPE: &'static str = "Seen";
}

const STREAMS: [&str; 5] = ["acct-1", "acct-2", "acct-3", "acct-4", "acct-5"];

fn register(bus: &EventBus, rng: Arc<Mutex<StdRng>>, healed: Arc<AtomicBool>) {
    bus.subscribe("ledger", move |ctx, e: Moved| {
        let draw: f64 = rng.lock().unwrap().r#gen();
        let healed = healed.load(Ordering::Relaxed);
        let store = ctx.bus().store().clone();
        async move {
            if !healed && draw < 0.1 {
                return Err("ledger refused".into());
            }
            if !healed && draw < 0.15 {
                return Ok(Outcome::RetryLater(Duration::from_millis(3)));
            }
            let stream = ctx.event().stream.to_string();
            let expected = store
                .stream_version("out-all")
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            let seen = Seen {
                stream: stream.clone(),
                n: e.n,
            };
            ctx.emit_event("out-all", expected, &seen)?;
            credit(&ctx, &stream, e.n)?;
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
}

#[test]
fn outputs_are_stored_exactly_once_across_failures_conflicts_and_restarts() {
    for seed in 1..=8 {
        scenario(seed);
    }
}

fn scenario(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        StoreOptions::new()
            .durability(Durability::Never)
            .segment_bytes(64 << 10)
            .open(dir.path())
            .unwrap(),
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let handler_rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ 0xe417)));
    let healed = Arc::new(AtomicBool::new(false));
    let mut published: BTreeMap<&str, u64> = BTreeMap::new();
    const RUNS: u32 = 12;
    let mut abrupt_stops = 0;
    for run in 0..RUNS {
        let last = run == RUNS - 1;
        healed.store(last, Ordering::Relaxed);
        let config = BusConfig::default()
            .max_retries(2)
            .retry_delay_ms(1)
            .max_retry_delay_ms(3)
            .idle_poll_ms(2)
            .batch_events(rng.gen_range(1..30))
            .checkpoint_every_events(rng.gen_range(1..20))
            .concurrency(rng.gen_range(1..=4));
        let abrupt = !last && rng.gen_bool(0.5);
        let events = if last { 10 } else { rng.gen_range(10..50) };
        let plan: Vec<&str> = (0..events)
            .map(|_| STREAMS[rng.gen_range(0..STREAMS.len())])
            .collect();
        let stop_after_ms = rng.gen_range(0..10);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let bus = EventBus::new(store.clone(), config);
            register(&bus, handler_rng.clone(), healed.clone());
            for stream in &plan {
                let n = published.entry(stream).or_insert(0);
                bus.publish_event(stream, ExpectedVersion::Any, &Moved { n: *n })
                    .await
                    .unwrap();
                *n += 1;
            }
            if last {
                let dlq = bus.dead_letters("ledger");
                loop {
                    // The handler's own outputs move the head too: wait for a head it reached.
                    let head = bus.store().head_position().unwrap();
                    bus.wait_for("ledger", head).await.unwrap();
                    if dlq.count().unwrap() == 0 && bus.store().head_position() == Some(head) {
                        break;
                    }
                    dlq.redrive_all("test").unwrap();
                    until_empty(&dlq).await;
                }
                bus.shutdown().await.unwrap();
            } else if abrupt {
                tokio::time::sleep(Duration::from_millis(stop_after_ms)).await;
            } else {
                let head = bus.store().head_position().unwrap();
                bus.wait_for("ledger", head).await.unwrap();
                bus.shutdown().await.unwrap();
            }
        });
        abrupt_stops += u32::from(abrupt);
        rt.shutdown_timeout(Duration::from_secs(30));
    }
    assert!(abrupt_stops > 0, "seed {seed}");
    check(seed, &store, &published);
}

fn check(seed: u64, store: &Store, published: &BTreeMap<&str, u64>) {
    let read = |stream: &str| {
        store
            .read_stream(stream, 0, Direction::Forward, usize::MAX)
            .collect::<evlog::Result<Vec<_>>>()
            .unwrap()
    };
    let mut all: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for e in read("out-all") {
        let s: Seen = serde_json::from_slice(&e.payload).unwrap();
        *all.entry((s.stream, s.n)).or_default() += 1;
    }
    let mut total = 0;
    for (stream, count) in published {
        let outs: Vec<u64> = read(&format!("out-{stream}"))
            .iter()
            .map(|e| serde_json::from_slice::<Credited>(&e.payload).unwrap().n)
            .collect();
        assert_eq!(
            outs,
            (0..*count).collect::<Vec<_>>(),
            "seed {seed}: outputs of {stream}"
        );
        for n in 0..*count {
            assert_eq!(
                all.get(&(stream.to_string(), n)),
                Some(&1),
                "seed {seed}: {stream} {n} in out-all"
            );
        }
        total += *count as usize;
    }
    assert_eq!(
        all.len(),
        total,
        "seed {seed}: out-all holds only events published"
    );
}
