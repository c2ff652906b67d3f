//! Power loss at every operation of a subscription that copies events with `commit_with` (the
//! output event and the checkpoint in one `append_multi`), on the fault-injecting file system:
//! after each crash, under each power-loss variant, the store opens, the subscription resumes
//! from its checkpoint, and when it has caught up every input has exactly one output, in its
//! stream's order. Run with `cargo test --release --all-features --test subscription_crash_points`.

#![cfg(feature = "fault-injection")]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use evlog::io::fault::{ALL_POWER_LOSSES, FaultFs};
use evlog::subscription::{Subscription, SubscriptionOptions};
use evlog::{
    Direction, Durability, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions,
};

const DIR: &str = "/store";
const INPUTS: u64 = 24;

fn opts(fs: &FaultFs) -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
}

fn sub_opts() -> SubscriptionOptions {
    SubscriptionOptions::default()
        .filter(ReadFilter::all().stream_prefix("in-"))
        .checkpoint_every(5, Duration::from_secs(3600))
}

/// Appends the inputs (those not there yet) and copies each one not copied yet; stops at the
/// first error (the power went off).
fn run(store: &Store) -> evlog::Result<()> {
    let have = (0..3)
        .map(|s| {
            store
                .stream_version(&format!("in-{s}"))
                .map_or(0, |v| v + 1)
        })
        .sum::<u64>();
    for i in have..INPUTS {
        store.append(
            &format!("in-{}", i % 3),
            ExpectedVersion::Any,
            &[EventData::new("In", format!("{{\"i\":{i}}}").into_bytes())],
        )?;
    }
    let mut copier = Subscription::named(store, "copier", sub_opts())?;
    loop {
        let batch = copier.poll_owned(1, Duration::ZERO)?;
        let Some(e) = batch.first() else {
            return Ok(());
        };
        let out = format!("out-{}", e.stream);
        let expected = store
            .stream_version(&out)
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let copy = EventData::new("Copied", e.position.to_string().into_bytes());
        copier.commit_with(e.position + 1, &[(out, expected, vec![copy])])?;
    }
}

/// Every input has exactly one output, in its stream's order.
fn check(ctx: &str, store: &Store) {
    let all: Vec<RecordedEvent> = store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap_or_else(|e| panic!("{ctx}: read_all: {e}"));
    let mut want: HashMap<String, Vec<u64>> = HashMap::new();
    let mut got: HashMap<String, Vec<u64>> = HashMap::new();
    for e in &all {
        if let Some(s) = e.stream.strip_prefix("in-") {
            want.entry(s.to_owned()).or_default().push(e.position);
        } else if let Some(s) = e.stream.strip_prefix("out-in-") {
            let p = std::str::from_utf8(&e.payload).unwrap().parse().unwrap();
            got.entry(s.to_owned()).or_default().push(p);
        }
    }
    assert_eq!(
        want.values().map(Vec::len).sum::<usize>() as u64,
        INPUTS,
        "{ctx}: inputs"
    );
    assert_eq!(
        got, want,
        "{ctx}: outputs are not exactly one per input, in order"
    );
    let rep = store.verify().unwrap();
    assert!(rep.is_clean(), "{ctx}: verify: {:?}", rep.problems);
}

#[test]
fn power_loss_at_every_operation_of_a_copying_subscription_keeps_it_exactly_once() {
    let dir = Path::new(DIR);
    let probe = FaultFs::new();
    run(&opts(&probe).open(dir).unwrap()).unwrap();
    let total = probe.ops();
    let mut checked = 0;
    for k in 0..=total {
        let fs = FaultFs::new();
        fs.power_off_after(k);
        if let Ok(store) = opts(&fs).open(dir) {
            let _ = run(&store);
            std::mem::forget(store); // the power is off: no clean close
        }
        for mode in ALL_POWER_LOSSES {
            let ctx = format!("power off after op {k} of {total}, {mode:?}");
            let disk = fs.after_power_loss(mode, k);
            let store = opts(&disk)
                .open(dir)
                .unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
            run(&store).unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
            check(&ctx, &store);
            checked += 1;
        }
    }
    println!("subscription crash points checked: {checked} ({total} operations x variants)");
    assert!(
        total > 100,
        "the run should roll segments ({total} operations)"
    );
}
