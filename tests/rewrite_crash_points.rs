//! Power loss at every I/O operation of compressing, compacting and archiving sealed segments (temp
//! file written, fsynced, renamed, directory fsynced, old file removed, directory fsynced,
//! index replaced), under every power-loss variant of the fault-injecting file system, and I/O
//! errors at each operation. After each, the store must open without repair, show exactly the
//! events it showed before (byte for byte, none duplicated), verify clean, and compress or
//! compact again to the same events.

#![cfg(feature = "fault-injection")]

use std::sync::Arc;

use evlog::io::fault::{ALL_POWER_LOSSES, Fault, FaultFs};
use evlog::{
    Direction, Durability, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions, Uuid,
};

const DIR: &str = "/store";

fn opts(fs: &FaultFs) -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
}

fn all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A store of several sealed segments, closed; and its events.
fn filled() -> (FaultFs, Vec<RecordedEvent>) {
    let fs = FaultFs::new();
    let store = opts(&fs).open(DIR).unwrap();
    for i in 0..120u64 {
        let payload = format!(
            r#"{{"i":{i},"pad":"{}"}}"#,
            "y".repeat((i % 5 * 30) as usize)
        );
        let e = EventData::new("Recorded", payload.into_bytes())
            .with_id(Uuid::from_u128(u128::from(i) + 1));
        store
            .append(&format!("s-{}", i % 3), ExpectedVersion::Any, &[e])
            .unwrap();
    }
    let events = all(&store);
    assert!(store.sealed_segments().0 >= 4);
    store.close().unwrap();
    (fs, events)
}

fn check(fs: &FaultFs, expected: &[RecordedEvent], what: &str) {
    check_with(fs, expected, what, |s| s.compress_sealed().map(|_| ()));
}

fn check_with(
    fs: &FaultFs,
    expected: &[RecordedEvent],
    what: &str,
    again: impl Fn(&Store) -> evlog::Result<()>,
) {
    let store = opts(fs)
        .open(DIR)
        .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    assert_eq!(all(&store), expected, "{what}: events differ");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{what}: {:?}", report.problems);
    again(&store).unwrap_or_else(|e| panic!("{what}: doing it again failed: {e}"));
    assert_eq!(
        all(&store),
        expected,
        "{what}: events differ after doing it again"
    );
    store.close().unwrap();
}

#[test]
fn power_loss_at_every_operation_of_compression_loses_and_duplicates_nothing() {
    let mut points = 0;
    for k in 0.. {
        let (fs, expected) = filled();
        let store = opts(&fs).open(DIR).unwrap();
        let start = fs.ops();
        fs.power_off_after(start + k);
        let done = store.compress_sealed().is_ok();
        drop(store);
        for (m, mode) in ALL_POWER_LOSSES.iter().enumerate() {
            let after = fs.after_power_loss(*mode, k * 31 + m as u64);
            check(
                &after,
                &expected,
                &format!("power loss after op {k}, {mode:?}"),
            );
            points += 1;
        }
        if done {
            break;
        }
    }
    println!("compression crash points checked: {points}");
    assert!(points > 50, "too few crash points: {points}");
}

#[test]
fn an_io_error_at_any_operation_of_compression_leaves_a_valid_store() {
    let mut errors = 0;
    for k in 0.. {
        let (fs, expected) = filled();
        let store = opts(&fs).open(DIR).unwrap();
        let start = fs.ops();
        fs.set_fault(Some(Fault::TransientEio(start + k)));
        let r = store.compress_sealed();
        fs.set_fault(None);
        // Reads still work in the same process, whatever step failed.
        assert_eq!(all(&store), expected, "EIO at op {k}: reads differ");
        drop(store);
        check(&fs, &expected, &format!("EIO at op {k}"));
        if r.is_ok() && fs.ops() <= start + k {
            break;
        }
        errors += 1;
        assert!(k < 10_000);
    }
    println!("compression I/O error points checked: {errors}");
    assert!(errors > 10);
}

/// [`filled`], with rules that hide events of two streams, half the segments compressed.
fn with_rules() -> (FaultFs, Vec<RecordedEvent>) {
    let (fs, _) = filled();
    let store = opts(&fs).open(DIR).unwrap();
    store.set_retention("s-0", None, Some(3)).unwrap();
    store.delete_stream("s-1", ExpectedVersion::Any).unwrap();
    store.compress_sealed().unwrap();
    let visible = all(&store);
    store.close().unwrap();
    (fs, visible)
}

#[test]
fn power_loss_at_every_operation_of_compaction_loses_and_duplicates_nothing() {
    let mut points = 0;
    for k in 0.. {
        let (fs, expected) = with_rules();
        let store = opts(&fs).open(DIR).unwrap();
        let start = fs.ops();
        fs.power_off_after(start + k);
        let done = store.compact().is_ok();
        drop(store);
        for (m, mode) in ALL_POWER_LOSSES.iter().enumerate() {
            let after = fs.after_power_loss(*mode, k * 37 + m as u64);
            check_with(
                &after,
                &expected,
                &format!("power loss after op {k} of compaction, {mode:?}"),
                |s| s.compact().map(|_| ()),
            );
            points += 1;
        }
        if done {
            break;
        }
    }
    println!("compaction crash points checked: {points}");
    assert!(points > 50, "too few crash points: {points}");
}

#[test]
fn an_io_error_at_any_operation_of_compaction_leaves_a_valid_store() {
    let mut errors = 0;
    for k in 0.. {
        let (fs, expected) = with_rules();
        let store = opts(&fs).open(DIR).unwrap();
        let start = fs.ops();
        fs.set_fault(Some(Fault::TransientEio(start + k)));
        let r = store.compact();
        fs.set_fault(None);
        assert_eq!(all(&store), expected, "EIO at op {k}: reads differ");
        drop(store);
        check_with(
            &fs,
            &expected,
            &format!("EIO at op {k} of compaction"),
            |s| s.compact().map(|_| ()),
        );
        if r.is_ok() && fs.ops() <= start + k {
            break;
        }
        errors += 1;
        assert!(k < 10_000);
    }
    println!("compaction I/O error points checked: {errors}");
    assert!(errors > 10);
}

#[test]
fn power_loss_at_every_operation_of_archiving_loses_and_duplicates_nothing() {
    let mut points = 0;
    for k in 0.. {
        let (fs, expected) = filled();
        let store = opts(&fs).archive_dir("/archive").open(DIR).unwrap();
        let start = fs.ops();
        fs.power_off_after(start + k);
        let done = store.archive_sealed(std::time::Duration::ZERO).is_ok();
        drop(store);
        for (m, mode) in ALL_POWER_LOSSES.iter().enumerate() {
            let after = fs.after_power_loss(*mode, k * 41 + m as u64);
            check_with(
                &after,
                &expected,
                &format!("power loss after op {k} of archiving, {mode:?}"),
                |s| {
                    s.archive_sealed(std::time::Duration::ZERO)
                        .map(|_| ())
                        .or_else(|e| match e {
                            // The power went before the marker was durable: nothing was
                            // archived, and this open has no archive configured.
                            evlog::Error::InvalidArgument(_) => Ok(()),
                            e => Err(e),
                        })
                },
            );
            points += 1;
        }
        if done {
            break;
        }
    }
    println!("archiving crash points checked: {points}");
    assert!(points > 50, "too few crash points: {points}");
}
