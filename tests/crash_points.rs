//! Power loss after every I/O operation, I/O errors on every operation, and a full disk, on the
//! fault-injecting file system (`evlog::io::fault`, feature `fault-injection`).
//!
//! For every operation index k of a workload that appends (single events and batches, several
//! streams), rolls and seals segments and writes checkpoints, the power is cut right after
//! operation k and the disk is rebuilt under each power-loss variant; open must then succeed
//! without repair and show every acknowledged append byte for byte, no partial append, dense
//! positions and versions, and indexes that agree with the log. Recovery itself is crashed at
//! each of its operations too. Run with `cargo test --release --all-features --test crash_points`.

#![cfg(feature = "fault-injection")]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use evlog::io::fault::{ALL_POWER_LOSSES, Fault, FaultFs, PowerLoss};
use evlog::{
    AppendResult, Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter,
    RecordedEvent, Store, StoreOptions, Uuid,
};

const DIR: &str = "/store";

fn opts(fs: &FaultFs) -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
}

/// One append of the workload: one stream's events, or several streams' (`append_multi`).
#[derive(Clone)]
struct Append {
    parts: Vec<(String, Vec<EventData>)>,
    /// One stream's events appended with `Store::append_async` (the syncer thread's fsync).
    asynchronous: bool,
}

impl Append {
    /// The events in the order the append stores them, each with its stream.
    fn events(&self) -> impl Iterator<Item = (&str, &EventData)> {
        self.parts
            .iter()
            .flat_map(|(s, events)| events.iter().map(move |e| (s.as_str(), e)))
    }

    fn len(&self) -> usize {
        self.parts.iter().map(|(_, e)| e.len()).sum()
    }

    /// Appends it: `Store::append` (or `Store::append_async`, awaited on `rt`) for one stream,
    /// `Store::append_multi` for several; the result covers all its events.
    fn run(&self, store: &Store, rt: &tokio::runtime::Runtime) -> evlog::Result<AppendResult> {
        if let [(stream, events)] = &self.parts[..] {
            if self.asynchronous {
                return rt.block_on(store.append_async(stream, ExpectedVersion::Any, events)?);
            }
            return store.append(stream, ExpectedVersion::Any, events);
        }
        let batch: Vec<_> = self
            .parts
            .iter()
            .map(|(s, events)| (s.as_str(), ExpectedVersion::Any, events.as_slice()))
            .collect();
        let rs = store.append_multi(&batch)?;
        Ok(AppendResult {
            first_position: rs[0].first_position,
            last_position: rs[rs.len() - 1].last_position,
            next_expected_version: rs[0].next_expected_version,
        })
    }
}

fn event(i: u64, k: u64) -> EventData {
    let payload = format!(
        r#"{{"n":{i},"k":{k},"pad":"{}"}}"#,
        "x".repeat((i % 7 * 40) as usize)
    );
    EventData::new(
        ["Created", "Updated", "Scored"][(i % 3) as usize],
        payload.into_bytes(),
    )
    .with_id(Uuid::from_u128(u128::from(i) << 16 | u128::from(k)))
    .with_metadata(Metadata::new().with("i", i.to_string()))
}

/// The workload: `n` appends to 4 streams, every third one a batch of 3, every fifth one an
/// `append_multi` over 3 streams (one event of it with opaque metadata bytes), every seventh
/// one of the others asynchronous.
fn plan(n: u64) -> Vec<Append> {
    (0..n)
        .map(|i| {
            if i % 5 == 4 {
                let parts = (0..3)
                    .map(|k| {
                        let mut e = event(i, k);
                        if k == 1 {
                            e.metadata.bytes = vec![k as u8; 3 + (i % 5) as usize];
                        }
                        (format!("agg-{}", (i + k) % 4), vec![e])
                    })
                    .collect();
                return Append {
                    parts,
                    asynchronous: false,
                };
            }
            Append {
                asynchronous: i % 7 == 3,
                parts: vec![(
                    format!("agg-{}", i % 4),
                    (0..if i % 3 == 2 { 3 } else { 1 })
                        .map(|k| event(i, k))
                        .collect(),
                )],
            }
        })
        .collect()
}

/// Runs the workload until an append fails; returns the acknowledged appends with their results
/// and the index of the first append not acknowledged (it may or may not be on disk).
fn run(store: &Store, plan: &[Append]) -> Vec<(usize, AppendResult)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut acked = Vec::new();
    for (i, a) in plan.iter().enumerate() {
        match a.run(store, &rt) {
            Ok(r) => acked.push((i, r)),
            Err(_) => break,
        }
    }
    acked
}

fn read_all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<Result<_, _>>()
        .expect("read_all after recovery")
}

/// Checks a recovered store against what was acknowledged before the crash.
fn check(ctx: &str, store: &Store, plan: &[Append], acked: &[(usize, AppendResult)]) {
    let all = read_all(store);
    for (p, e) in all.iter().enumerate() {
        assert_eq!(e.position, p as u64, "{ctx}: positions are dense");
    }
    // Every acknowledged append is there, byte for byte, at its positions.
    for (i, r) in acked {
        let a = &plan[*i];
        for (k, (stream, want)) in a.events().enumerate() {
            let got = all
                .get((r.first_position + k as u64) as usize)
                .unwrap_or_else(|| panic!("{ctx}: acknowledged append {i} is missing"));
            assert_eq!(&*got.stream, stream, "{ctx}: append {i}");
            assert_eq!(got.id, want.id, "{ctx}: append {i}");
            assert_eq!(*got.event_type, *want.event_type, "{ctx}: append {i}");
            assert_eq!(got.payload, want.payload, "{ctx}: append {i}");
            assert_eq!(got.metadata, want.metadata, "{ctx}: append {i}");
        }
    }
    // Whatever else is there is whole appends of the plan, in plan order, never part of one.
    let ids: HashMap<Uuid, (usize, usize)> = plan
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.events()
                .enumerate()
                .map(move |(k, (_, e))| (e.id, (i, k)))
        })
        .collect();
    let mut p = 0;
    let mut last_append = None;
    while p < all.len() {
        let (i, k) = *ids
            .get(&all[p].id)
            .unwrap_or_else(|| panic!("{ctx}: unknown event at {p}"));
        assert_eq!(k, 0, "{ctx}: append {i} starts in its middle at {p}");
        assert!(last_append < Some(i), "{ctx}: appends out of order");
        let n = plan[i].len();
        assert!(p + n <= all.len(), "{ctx}: append {i} is partly there");
        for (k, (_, e)) in plan[i].events().enumerate() {
            assert_eq!(all[p + k].id, e.id, "{ctx}: append {i} is partly there");
        }
        last_append = Some(i);
        p += n;
    }
    // Versions are dense per stream, and the stream table agrees with the log.
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for e in &all {
        let want = versions.get(&*e.stream).map_or(0, |v| v + 1);
        assert_eq!(e.version, want, "{ctx}: versions of {}", e.stream);
        versions.insert(&e.stream, e.version);
    }
    for (s, v) in &versions {
        assert_eq!(store.stream_version(s), Some(*v), "{ctx}: stream table");
        let n = store
            .read_stream(s, 0, Direction::Forward, usize::MAX)
            .count() as u64;
        assert_eq!(n, v + 1, "{ctx}: read_stream of {s}");
    }
    let rep = store.verify().expect("verify");
    assert!(
        rep.is_clean(),
        "{ctx}: verify after recovery: {:?}",
        rep.problems
    );
}

fn dir() -> &'static Path {
    Path::new(DIR)
}

/// Opens the disk image, checks it, and appends once more.
fn reopen_and_check(ctx: &str, disk: &FaultFs, plan: &[Append], acked: &[(usize, AppendResult)]) {
    let store = opts(disk)
        .open(dir())
        .unwrap_or_else(|e| panic!("{ctx}: open after power loss: {e}"));
    check(ctx, &store, plan, acked);
    let next = store.head_position().map_or(0, |h| h + 1);
    let r = store
        .append(
            "after",
            ExpectedVersion::Any,
            &[EventData::new("After", b"{}".to_vec())],
        )
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
    assert_eq!(r.first_position, next, "{ctx}");
}

/// Seeds drawn for the variants that make random choices.
fn seeds(mode: PowerLoss) -> std::ops::Range<u64> {
    match mode {
        PowerLoss::TornSectors => 0..3,
        PowerLoss::Garbage => 0..2,
        _ => 0..1,
    }
}

#[test]
fn power_loss_after_every_operation_keeps_every_acknowledged_append() {
    let plan = plan(150);
    // Count the operations of an uninterrupted run.
    let probe = FaultFs::new();
    {
        let store = opts(&probe).open(dir()).unwrap();
        assert_eq!(run(&store, &plan).len(), plan.len());
    }
    let total = probe.ops();
    assert!(
        total > 150,
        "the workload should roll segments ({total} operations)"
    );
    let mut checked = 0u64;
    let mut recovery_points = 0u64;
    for k in 0..=total {
        let fs = FaultFs::new();
        fs.power_off_after(k);
        let acked = match opts(&fs).open(dir()) {
            Ok(store) => {
                let a = run(&store, &plan);
                std::mem::forget(store); // the power is off: no clean close
                a
            }
            Err(_) => Vec::new(),
        };
        for mode in ALL_POWER_LOSSES {
            for seed in seeds(mode) {
                let ctx = format!("power off after op {k} of {total}, {mode:?} seed {seed}");
                let disk = fs.after_power_loss(mode, seed ^ k);
                // Crash recovery itself at each of its operations, on a sample of the images.
                if matches!(mode, PowerLoss::TornSectors | PowerLoss::DropUnsynced) {
                    let count = disk.snapshot();
                    let r_ops = match opts(&count).open(dir()) {
                        Ok(s) => {
                            let n = count.ops();
                            std::mem::forget(s);
                            n
                        }
                        Err(e) => panic!("{ctx}: open: {e}"),
                    };
                    for r in 0..r_ops {
                        let again = disk.snapshot();
                        again.power_off_after(r);
                        if let Ok(s) = opts(&again).open(dir()) {
                            std::mem::forget(s);
                        }
                        let ctx2 = format!("{ctx}, recovery cut after its op {r}");
                        reopen_and_check(
                            &ctx2,
                            &again.after_power_loss(mode, seed + r),
                            &plan,
                            &acked,
                        );
                        recovery_points += 1;
                    }
                }
                reopen_and_check(&ctx, &disk, &plan, &acked);
                checked += 1;
            }
        }
    }
    println!(
        "crash points checked: {checked} after workload operations ({total} operations x variants), \
         {recovery_points} during recovery, {} in all",
        checked + recovery_points
    );
    assert!(
        checked + recovery_points >= 10_000,
        "at least 10,000 crash points"
    );
}

#[test]
fn an_io_error_on_any_operation_never_acknowledges_what_is_not_durable() {
    let plan = plan(30);
    let probe = FaultFs::new();
    {
        let store = opts(&probe).open(dir()).unwrap();
        run(&store, &plan);
    }
    let total = probe.ops();
    for n in 0..total {
        for fault in [Fault::TransientEio(n), Fault::PersistentEio(n)] {
            let ctx = format!("{fault:?} of {total}");
            let fs = FaultFs::new();
            fs.set_fault(Some(fault));
            let (acked, refused_after) = match opts(&fs).open(dir()) {
                Ok(store) => {
                    let acked = run(&store, &plan);
                    let mut refused = None;
                    if acked.len() < plan.len() {
                        // After a failed write or fsync the store refuses appends until reopened.
                        let e = store
                            .append(
                                "x",
                                ExpectedVersion::Any,
                                &[EventData::new("X", b"".to_vec())],
                            )
                            .unwrap_err();
                        refused = Some(matches!(e, Error::Poisoned));
                    }
                    std::mem::forget(store);
                    (acked, refused)
                }
                Err(_) => (Vec::new(), None),
            };
            if let Some(poisoned) = refused_after {
                assert!(
                    poisoned,
                    "{ctx}: an append after the failure was not refused as Poisoned"
                );
            }
            fs.set_fault(None);
            // Acknowledged appends were durable: they survive losing everything unsynced.
            let disk = fs.after_power_loss(PowerLoss::DropUnsynced, n);
            reopen_and_check(&ctx, &disk, &plan, &acked);
        }
    }
}

#[test]
fn a_full_disk_gives_a_clear_error_keeps_the_store_consistent_and_passes_once_space_is_freed() {
    let plan = plan(40);
    for limit in [3_000u64, 6_000, 9_000, 15_000] {
        let fs = FaultFs::new();
        fs.set_space_limit(Some(limit));
        let store = match opts(&fs).open(dir()) {
            Ok(s) => s,
            Err(e) => {
                assert!(e.to_string().contains("space"), "limit {limit}: {e}");
                continue;
            }
        };
        let acked = run(&store, &plan);
        assert!(
            acked.len() < plan.len(),
            "limit {limit}: the disk never filled"
        );
        let e = store
            .append(
                "y",
                ExpectedVersion::Any,
                &[EventData::new("Y", vec![0; 5000])],
            )
            .unwrap_err();
        assert!(
            matches!(e, Error::Poisoned) || e.to_string().contains("space"),
            "limit {limit}: {e}"
        );
        // The failed store is dropped (it closes what it can), space is freed, and the store
        // opens with everything acknowledged and takes appends again.
        drop(store);
        fs.set_space_limit(None);
        let ctx = format!("space limit {limit}");
        reopen_and_check(&ctx, &fs.snapshot(), &plan, &acked);
    }
}
