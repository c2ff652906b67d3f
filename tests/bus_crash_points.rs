//! Power loss at every file operation of a bus handler's run (an async handler, and a handler
//! of borrowed events), on the fault-injecting file
//! system: the handler's checkpoint writes and its dead-letter writes (an event that always
//! fails is parked with the later events of its stream; another fails once and is retried).
//! After each crash, under each power-loss variant, the store opens, a new bus resumes the
//! handler, and once it has caught up: every input was handled (before the crash or after) or
//! is parked, the always-failing event and the later events of its stream are parked and were
//! never handled, nothing is parked twice, the resumed run handled each stream's events in
//! order, and the store verifies clean. The async handler also emits one output per input
//! (`HandlerContext::emit`, stored with the checkpoint): each handled input's output is stored
//! exactly once, in order, whatever the crash.
//!
//! `cargo test --release --all-features --test bus_crash_points`

#![cfg(all(feature = "fault-injection", feature = "bus"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use evlog::bus::{BusConfig, DeadLetterRecord, EventBus, Outcome};
use evlog::io::fault::{ALL_POWER_LOSSES, FaultFs};
use evlog::{Direction, Durability, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions};

const DIR: &str = "/store";
const INPUTS: u64 = 60;
const STREAMS: u64 = 3;
/// The input that always fails (its stream is `acct-{POISON % STREAMS}`).
const POISON: u64 = 7;

fn opts(fs: &FaultFs) -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
}

fn config() -> BusConfig {
    BusConfig::default()
        .max_retries(1)
        .retry_delay_ms(5)
        .batch_events(4)
        .checkpoint_every_events(3)
}

/// What the handler saw: every handling (input number, stream), in order.
type Handled = Arc<Mutex<Vec<(u64, String)>>>;

/// Appends the inputs not there yet, then runs the handler until it is done with the log or
/// the power goes off. Input `i` fails on its first delivery when `i % 5 == 2`, always when
/// `i == POISON`.
fn run(store: Arc<Store>, handled: &Handled, by_ref: bool) -> Result<(), String> {
    let have: u64 = (0..STREAMS)
        .map(|s| {
            store
                .stream_version(&format!("acct-{s}"))
                .map_or(0, |v| v + 1)
        })
        .sum();
    for i in have..INPUTS {
        store
            .append(
                &format!("acct-{}", i % STREAMS),
                ExpectedVersion::Any,
                &[EventData::new(
                    "Moved",
                    format!("{i} {}", "x".repeat(90)).into_bytes(),
                )],
            )
            .map_err(|e| e.to_string())?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let h = handled.clone();
    rt.block_on(async move {
        let bus = EventBus::new(store.clone(), config());
        if by_ref {
            bus.subscribe_ref("ledger", ReadFilter::all(), move |e, attempt| {
                let text = std::str::from_utf8(e.payload).unwrap();
                let i: u64 = text.split(' ').next().unwrap().parse().unwrap();
                if i == POISON || (i % 5 == 2 && attempt == 1) {
                    return Err(format!("input {i} refused").into());
                }
                h.lock().unwrap().push((i, e.stream.to_owned()));
                Ok(Outcome::Handled)
            })
        } else {
            bus.subscribe_all("ledger", move |ctx, e| {
                let input = e.stream.starts_with("acct-");
                let text = std::str::from_utf8(&e.payload).unwrap();
                let i: u64 = text.split(' ').next().unwrap().parse().unwrap();
                let fails = input && (i == POISON || (i % 5 == 2 && ctx.attempt() == 1));
                if input && !fails {
                    h.lock().unwrap().push((i, e.stream.to_string()));
                }
                async move {
                    if !input {
                        // Its own outputs.
                        return Ok(Outcome::Skip);
                    }
                    if fails {
                        return Err(format!("input {i} refused").into());
                    }
                    let out = format!("out-{}", ctx.event().stream);
                    let data = EventData::new("Credited", i.to_string().into_bytes());
                    ctx.emit(&out, ExpectedVersion::Any, vec![data]);
                    Ok(Outcome::Handled)
                }
            })
        }
        .map_err(|e| e.to_string())?;
        let head = store.head_position().unwrap();
        let r = bus
            .wait_for("ledger", head)
            .await
            .map_err(|e| e.to_string());
        let s = bus.shutdown().await.map_err(|e| e.to_string());
        r.and(s)
    })
}

fn check(ctx: &str, store: &Arc<Store>, before: &Handled, after: &Handled, by_ref: bool) {
    let poisoned_stream = format!("acct-{}", POISON % STREAMS);
    let inputs: BTreeMap<u64, String> = (0..INPUTS)
        .map(|i| (i, format!("acct-{}", i % STREAMS)))
        .collect();
    let bus = EventBus::new(store.clone(), BusConfig::default());
    let dlq = bus.dead_letters("ledger");
    let parked: BTreeSet<(String, u64)> = dlq
        .list()
        .unwrap()
        .into_iter()
        .map(|l| (l.stream, l.version))
        .collect();
    // Input i is version i / STREAMS of its stream.
    let want_parked: BTreeSet<(String, u64)> = inputs
        .iter()
        .filter(|(i, s)| **s == poisoned_stream && **i >= POISON)
        .map(|(i, s)| (s.clone(), i / STREAMS))
        .collect();
    assert_eq!(parked, want_parked, "{ctx}: parked");
    let mut positions = BTreeSet::new();
    for r in dlq.history().unwrap() {
        if let DeadLetterRecord::Parked(l) = r {
            assert!(positions.insert(l.position), "{ctx}: parked twice: {l:?}");
        }
    }
    let before = before.lock().unwrap();
    let after = after.lock().unwrap();
    let ever: BTreeSet<u64> = before.iter().chain(after.iter()).map(|(i, _)| *i).collect();
    for (i, s) in &inputs {
        let is_parked = *s == poisoned_stream && *i >= POISON;
        assert_eq!(
            ever.contains(i),
            !is_parked,
            "{ctx}: input {i} handled {} but parked {is_parked}",
            ever.contains(i)
        );
    }
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, s) in after.iter() {
        if let Some(prev) = last.insert(s, *i) {
            assert!(*i > prev, "{ctx}: {s}: input {i} handled after {prev}");
        }
    }
    if !by_ref {
        // Exactly once: the outputs of each stream's handled inputs, once each, in order.
        for s in 0..STREAMS {
            let stream = format!("acct-{s}");
            let want: Vec<u64> = inputs
                .iter()
                .filter(|(i, t)| **t == stream && !(**t == poisoned_stream && **i >= POISON))
                .map(|(i, _)| *i)
                .collect();
            let got: Vec<u64> = store
                .read_stream(&format!("out-{stream}"), 0, Direction::Forward, usize::MAX)
                .map(|e| {
                    String::from_utf8(e.unwrap().payload.to_vec())
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect();
            assert_eq!(got, want, "{ctx}: outputs of {stream}");
        }
    }
    let rep = store.verify().unwrap();
    assert!(rep.is_clean(), "{ctx}: verify: {:?}", rep.problems);
}

#[test]
fn power_loss_at_every_operation_of_a_handler_loses_nothing_and_parks_once() {
    for by_ref in [false, true] {
        crash_points(by_ref);
    }
}

/// Every crash point of a run of the async handler (`subscribe_all`) or of the handler of
/// borrowed events (`subscribe_ref`).
fn crash_points(by_ref: bool) {
    let dir = Path::new(DIR);
    let probe = FaultFs::new();
    let probe_handled = Handled::default();
    run(
        Arc::new(opts(&probe).open(dir).unwrap()),
        &probe_handled,
        by_ref,
    )
    .unwrap();
    let total = probe.ops();
    let mut checked = 0;
    for k in 0..=total {
        let fs = FaultFs::new();
        fs.power_off_after(k);
        let before = Handled::default();
        if let Ok(store) = opts(&fs).open(dir) {
            let store = Arc::new(store);
            let _ = run(store.clone(), &before, by_ref);
            std::mem::forget(store); // the power is off: no clean close
        }
        for mode in ALL_POWER_LOSSES {
            let ctx = format!("by_ref {by_ref}: power off after op {k} of {total}, {mode:?}");
            let disk = fs.after_power_loss(mode, k);
            let store = Arc::new(
                opts(&disk)
                    .open(dir)
                    .unwrap_or_else(|e| panic!("{ctx}: open: {e}")),
            );
            let after = Handled::default();
            run(store.clone(), &after, by_ref).unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
            check(&ctx, &store, &before, &after, by_ref);
            checked += 1;
        }
    }
    println!(
        "bus crash points checked (by_ref {by_ref}): {checked} ({total} operations x variants)"
    );
    assert!(
        total > 100,
        "the run should roll segments ({total} operations)"
    );
}
