//! The zeros a durable writer writes ahead of its frames (`FORMAT.md` § 4), on the
//! fault-injecting file system (feature `fault-injection`), whose maps are copies: a reader must
//! never read a frame through a map taken before the frame was written over the zeros, and a
//! disk too full for the zeros must not cost appends whose frames fit.

#![cfg(feature = "fault-injection")]

use std::sync::Arc;

use evlog::io::fault::FaultFs;
use evlog::{
    Direction, Durability, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions,
};

fn payloads(events: &[RecordedEvent]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.payload.clone()).collect()
}

fn all(s: &Store) -> Vec<RecordedEvent> {
    s.read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap()
}

#[test]
fn reads_never_use_a_map_taken_before_a_frame_was_written_over_the_zeros() {
    let fs = FaultFs::new();
    let s = StoreOptions::new()
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
        .open("/store")
        .unwrap();
    let mut want = Vec::new();
    for i in 0..50u32 {
        let p = format!("event {i}").into_bytes();
        s.append("a", ExpectedVersion::Any, &[EventData::new("T", p.clone())])
            .unwrap();
        want.push(p);
        // Each read may map the active segment, zeros ahead included; the next append then
        // writes over those zeros.
        let stream: Vec<RecordedEvent> = s
            .read_stream("a", 0, Direction::Forward, usize::MAX)
            .collect::<evlog::Result<_>>()
            .unwrap();
        assert_eq!(payloads(&stream), want, "after {} appends", i + 1);
        assert_eq!(payloads(&all(&s)), want);
    }
    s.close().unwrap();
}

#[test]
fn a_disk_too_full_for_the_zeros_still_takes_appends_whose_frames_fit() {
    let fs = FaultFs::new();
    // Room for hundreds of these appends, not for 1 MiB of zeros.
    fs.set_space_limit(Some(256 << 10));
    let opts = StoreOptions::new()
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()));
    let s = opts.clone().open("/store").unwrap();
    let mut want = Vec::new();
    for i in 0..100u8 {
        let p = vec![i; 100];
        s.append("a", ExpectedVersion::Any, &[EventData::new("T", p.clone())])
            .unwrap_or_else(|e| panic!("append {i}: {e}"));
        want.push(p);
    }
    assert_eq!(payloads(&all(&s)), want);
    s.close().unwrap();
    let s = opts.open("/store").unwrap();
    assert_eq!(payloads(&all(&s)), want);
    let rep = s.verify().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
}
