//! Retention rules and deletions: honoured by every read at once, kept across reopen, refused
//! where they must be, and crash-safe.

use std::time::Duration;

use evlog::{
    Direction, Error, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store, StoreOptions,
};

fn ev(i: u64) -> EventData {
    EventData::new("Tick", format!("{{\"i\":{i}}}").into_bytes())
}

fn fill(store: &Store, stream: &str, n: u64) {
    for i in 0..n {
        store
            .append(stream, ExpectedVersion::Any, &[ev(i)])
            .unwrap();
    }
}

fn versions(store: &Store, stream: &str, dir: Direction) -> Vec<u64> {
    let from = if dir == Direction::Forward {
        0
    } else {
        u64::MAX
    };
    store
        .read_stream(stream, from, dir, usize::MAX)
        .map(|e| e.unwrap().version)
        .collect()
}

fn all_of(store: &Store, stream: &str) -> Vec<u64> {
    store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .map(|e| e.unwrap())
        .filter(|e: &RecordedEvent| &*e.stream == stream)
        .map(|e| e.version)
        .collect()
}

fn open(dir: &std::path::Path) -> Store {
    StoreOptions::new().segment_bytes(4096).open(dir).unwrap()
}

#[test]
fn max_count_keeps_only_the_last_events_visible_in_every_read() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 10);
    fill(&s, "b", 4);
    s.set_retention("a", None, Some(3)).unwrap();
    assert_eq!(versions(&s, "a", Direction::Forward), vec![7, 8, 9]);
    assert_eq!(versions(&s, "a", Direction::Backward), vec![9, 8, 7]);
    assert_eq!(all_of(&s, "a"), vec![7, 8, 9]);
    assert_eq!(versions(&s, "b", Direction::Forward), vec![0, 1, 2, 3]);
    // The window moves with new events.
    s.append("a", ExpectedVersion::Exact(9), &[ev(10)]).unwrap();
    assert_eq!(versions(&s, "a", Direction::Forward), vec![8, 9, 10]);
    s.close().unwrap();
    let s = open(d.path());
    assert_eq!(versions(&s, "a", Direction::Forward), vec![8, 9, 10]);
    assert_eq!(all_of(&s, "a"), vec![8, 9, 10]);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn max_age_hides_events_older_than_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 5);
    s.set_retention("a", Some(Duration::from_secs(3600)), None)
        .unwrap();
    assert_eq!(versions(&s, "a", Direction::Forward).len(), 5);
    s.set_retention("a", Some(Duration::from_micros(1)), None)
        .unwrap();
    // Events appended before now are more than a microsecond old once a millisecond passed.
    std::thread::sleep(Duration::from_millis(2));
    assert!(versions(&s, "a", Direction::Forward).is_empty());
    assert!(all_of(&s, "a").is_empty());
    // Lifting the limit shows them again: nothing was removed.
    s.set_retention("a", None, None).unwrap();
    assert_eq!(versions(&s, "a", Direction::Forward).len(), 5);
    assert_eq!(s.stream_settings("a"), None);
}

#[test]
fn truncate_before_hides_older_versions_and_never_lowers() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 8);
    s.truncate_before("a", 5).unwrap();
    assert_eq!(versions(&s, "a", Direction::Forward), vec![5, 6, 7]);
    s.truncate_before("a", 3).unwrap();
    assert_eq!(versions(&s, "a", Direction::Forward), vec![5, 6, 7]);
    assert_eq!(
        s.read_stream("a", 6, Direction::Backward, usize::MAX)
            .map(|e| e.unwrap().version)
            .collect::<Vec<_>>(),
        vec![6, 5]
    );
    assert_eq!(all_of(&s, "a"), vec![5, 6, 7]);
}

#[test]
fn soft_delete_hides_the_stream_and_lets_it_continue_its_versions() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 4);
    let e = s.delete_stream("a", ExpectedVersion::Exact(2)).unwrap_err();
    assert!(matches!(
        e,
        Error::WrongExpectedVersion {
            actual: Some(3),
            ..
        }
    ));
    assert_eq!(
        versions(&s, "a", Direction::Forward).len(),
        4,
        "nothing changed"
    );
    s.delete_stream("a", ExpectedVersion::Exact(3)).unwrap();
    assert!(versions(&s, "a", Direction::Forward).is_empty());
    assert!(all_of(&s, "a").is_empty());
    assert_eq!(s.stream_version("a"), Some(3));
    let r = s.append("a", ExpectedVersion::Exact(3), &[ev(99)]).unwrap();
    assert_eq!(r.next_expected_version, 4);
    assert_eq!(versions(&s, "a", Direction::Forward), vec![4]);
    assert_eq!(all_of(&s, "a"), vec![4]);
    drop(s);
    let s = open(d.path());
    assert_eq!(versions(&s, "a", Direction::Forward), vec![4]);
}

#[test]
fn tombstone_hides_the_stream_and_refuses_every_later_write() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 3);
    fill(&s, "b", 2);
    s.tombstone_stream("a", ExpectedVersion::Any).unwrap();
    assert!(versions(&s, "a", Direction::Forward).is_empty());
    assert!(all_of(&s, "a").is_empty());
    assert_eq!(all_of(&s, "b"), vec![0, 1]);
    let head = s.head_position();
    for e in [
        s.append("a", ExpectedVersion::Any, &[ev(1)]).unwrap_err(),
        s.tombstone_stream("a", ExpectedVersion::Any).unwrap_err(),
        s.delete_stream("a", ExpectedVersion::Any).unwrap_err(),
        s.truncate_before("a", 1).unwrap_err(),
    ] {
        assert!(matches!(e, Error::StreamDeleted { .. }), "{e}");
    }
    assert_eq!(s.head_position(), head, "nothing written");
    drop(s);
    let s = open(d.path());
    assert!(matches!(
        s.append("a", ExpectedVersion::Any, &[ev(1)]).unwrap_err(),
        Error::StreamDeleted { .. }
    ));
    let ro = StoreOptions::new().open_read_only(d.path()).unwrap();
    assert!(versions(&ro, "a", Direction::Forward).is_empty());
    assert!(matches!(
        ro.truncate_before("b", 1).unwrap_err(),
        Error::ReadOnly
    ));
    // A stream id can be tombstoned before it has any event.
    s.tombstone_stream("reserved", ExpectedVersion::NoStream)
        .unwrap();
    assert!(
        s.append("reserved", ExpectedVersion::Any, &[ev(0)])
            .is_err()
    );
}

#[test]
fn bad_arguments_are_refused_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 3);
    assert!(matches!(
        s.set_retention("a", None, Some(0)).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        s.set_retention("", None, Some(1)).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    assert_eq!(s.stream_settings("a"), None);
    assert_eq!(versions(&s, "a", Direction::Forward).len(), 3);
}

#[test]
fn a_damaged_settings_file_is_corruption_named_by_open_and_verify() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    fill(&s, "a", 3);
    s.truncate_before("a", 1).unwrap();
    s.close().unwrap();
    let p = d.path().join("streams.settings");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x10;
    std::fs::write(&p, &b).unwrap();
    match StoreOptions::new().open(d.path()).unwrap_err() {
        Error::Corrupted { file, .. } => assert_eq!(file, p),
        e => panic!("{e}"),
    }
    let rep = evlog::verify_dir(d.path()).unwrap();
    assert!(rep.problems.iter().any(|x| x.file == p), "{rep:?}");
}

#[cfg(feature = "fault-injection")]
#[test]
fn power_loss_during_a_settings_change_leaves_the_old_or_the_new_settings() {
    use evlog::io::fault::{ALL_POWER_LOSSES, FaultFs};
    use std::sync::Arc;
    let base = FaultFs::new();
    let o = |fs: &FaultFs| {
        StoreOptions::new()
            .segment_bytes(4096)
            .vfs(Arc::new(fs.clone()))
    };
    {
        let s = o(&base).open("/s").unwrap();
        fill(&s, "a", 5);
        s.truncate_before("a", 2).unwrap();
    }
    let before = base.ops();
    {
        let s = o(&base).open("/s").unwrap();
        s.tombstone_stream("a", ExpectedVersion::Any).unwrap();
        std::mem::forget(s);
    }
    let ops = base.ops() - before;
    let mut checked = 0;
    for k in 0..=ops {
        let fs = base.snapshot();
        // Replay from the state before the tombstone: rebuild it the same way.
        let fs0 = FaultFs::new();
        {
            let s = o(&fs0).open("/s").unwrap();
            fill(&s, "a", 5);
            s.truncate_before("a", 2).unwrap();
        }
        let start = fs0.ops();
        fs0.power_off_after(start + k);
        if let Ok(s) = o(&fs0).open("/s") {
            let _ = s.tombstone_stream("a", ExpectedVersion::Any);
            std::mem::forget(s);
        }
        drop(fs);
        for mode in ALL_POWER_LOSSES {
            let disk = fs0.after_power_loss(mode, k);
            let s = o(&disk).open("/s").unwrap();
            let v = versions(&s, "a", Direction::Forward);
            let st = s.stream_settings("a").unwrap();
            if st.tombstone {
                assert!(v.is_empty());
            } else {
                assert_eq!(st.truncate_before, 2);
                assert_eq!(v, vec![2, 3, 4], "op {k} {mode:?}");
            }
            checked += 1;
        }
    }
    assert!(checked > 10);
}
