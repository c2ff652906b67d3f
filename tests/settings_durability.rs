//! What is recorded outside the log about its events (the stream settings: deletions,
//! retention) and what compaction drops for them must count only events a crash or a failed
//! write cannot take back; a re-sent append keeps its first answer after a deletion. Each test
//! here failed before its fix.

#![cfg(feature = "fault-injection")]

use std::sync::Arc;

use evlog::io::fault::{Fault, FaultFs, PowerLoss};
use evlog::{Direction, Durability, EventData, ExpectedVersion, Store, StoreOptions};

fn ev(n: u128) -> EventData {
    EventData::new("E", b"{}".to_vec()).with_id(evlog::Uuid::from_u128(n))
}

fn opts(fs: &FaultFs, d: Durability) -> StoreOptions {
    StoreOptions::new().durability(d).vfs(Arc::new(fs.clone()))
}

fn versions(s: &Store, stream: &str) -> Vec<u64> {
    s.read_stream(stream, 0, Direction::Forward, usize::MAX)
        .map(|e| e.unwrap().version)
        .collect()
}

/// A soft delete after an append that is not durable yet: the delete makes that append
/// durable first, so after a power cut the deletion does not count a version that is gone (the
/// next append would reuse it, be acknowledged, and stay hidden for good).
#[test]
fn a_deletion_counts_only_versions_a_crash_cannot_take_back() {
    let fs = FaultFs::new();
    {
        let s = opts(&fs, Durability::Always).open("/s").unwrap();
        s.append("a", ExpectedVersion::NoStream, &[ev(1)]).unwrap();
        s.close().unwrap();
    }
    let s = opts(&fs, Durability::Never).open("/s").unwrap();
    s.append("a", ExpectedVersion::Exact(0), &[ev(2)]).unwrap(); // not durable yet
    s.delete_stream("a", ExpectedVersion::Any).unwrap();
    std::mem::forget(s); // power cut, no close
    let disk = fs.after_power_loss(PowerLoss::DropUnsynced, 1);
    let s = opts(&disk, Durability::Always).open("/s").unwrap();
    // Both versions survived (the delete made version 1 durable), and both are deleted.
    assert_eq!(s.stream_version("a"), Some(1));
    assert!(versions(&s, "a").is_empty());
    let r = s.append("a", ExpectedVersion::Any, &[ev(3)]).unwrap();
    assert_eq!(r.next_expected_version, 2);
    assert_eq!(
        versions(&s, "a"),
        [2],
        "an append after the deletion is visible"
    );
}

/// An append whose write fails poisons the store. Its version, counted by the writer, is not
/// used: a deletion on the poisoned store is refused, and retention keeps the last stored event
/// visible.
#[test]
fn a_failed_append_counts_for_no_deletion_and_no_retention_window() {
    let fs = FaultFs::new();
    let s = opts(&fs, Durability::Always).open("/s").unwrap();
    s.append("a", ExpectedVersion::NoStream, &[ev(1)]).unwrap();
    s.set_retention("a", None, Some(1)).unwrap();
    fs.set_fault(Some(Fault::TransientEio(fs.ops()))); // the next write fails once
    assert!(s.append("a", ExpectedVersion::Exact(0), &[ev(2)]).is_err());
    assert!(s.is_poisoned());
    assert_eq!(
        versions(&s, "a"),
        [0],
        "the last stored event stays visible"
    );
    assert!(matches!(
        s.delete_stream("a", ExpectedVersion::Any),
        Err(evlog::Error::Poisoned)
    ));
    drop(s);
    let s = opts(&fs, Durability::Always).open("/s").unwrap();
    assert_eq!(s.stream_version("a"), Some(0));
    s.append("a", ExpectedVersion::Exact(0), &[ev(3)]).unwrap();
    assert_eq!(
        versions(&s, "a"),
        [1],
        "retention keeps the last event, now version 1"
    );
}

/// Compaction drops the events retention hides, counted from the last durable version: an
/// older durable event is not dropped for a newer one a crash can still take back.
#[test]
fn compaction_drops_nothing_for_an_event_that_is_not_durable() {
    let fs = FaultFs::new();
    let s = opts(&fs, Durability::Never).open("/s").unwrap();
    s.append("a", ExpectedVersion::NoStream, &[ev(1)]).unwrap();
    s.set_retention("a", None, Some(1)).unwrap(); // makes version 0 durable
    s.seal_active().unwrap();
    s.append("a", ExpectedVersion::Exact(0), &[ev(2)]).unwrap(); // not durable yet
    s.compact().unwrap();
    std::mem::forget(s); // power cut, no close
    let disk = fs.after_power_loss(PowerLoss::DropUnsynced, 1);
    let s = opts(&disk, Durability::Always).open("/s").unwrap();
    assert_eq!(s.stream_version("a"), Some(0));
    assert_eq!(
        versions(&s, "a"),
        [0],
        "the durable event survived the compaction"
    );
}

/// A re-sent `append_multi` (same event ids) gets its first answer even after one of its
/// streams was tombstoned: it writes nothing.
#[test]
fn a_resent_append_keeps_its_answer_after_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let batch = [
        ("a", ExpectedVersion::NoStream, vec![ev(1)]),
        ("b", ExpectedVersion::NoStream, vec![ev(2)]),
    ];
    let first = s.append_multi(&batch).unwrap();
    s.tombstone_stream("b", ExpectedVersion::Any).unwrap();
    assert_eq!(s.append_multi(&batch).unwrap(), first);
    // A new append to it is refused.
    assert!(matches!(
        s.append("b", ExpectedVersion::Any, &[ev(3)]),
        Err(evlog::Error::StreamDeleted { .. })
    ));
}
