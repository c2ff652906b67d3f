//! Store::replay: borrowed events, in position order, over every kind of segment.

use std::ops::ControlFlow;

mod common;

use evlog::{
    Direction, Durability, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions, Uuid,
};

fn event(i: u64) -> EventData {
    // Every 97th event is large enough (1.5 MiB) not to fit one read chunk of the active
    // segment.
    let pad = if i % 97 == 5 {
        1_500_000
    } else {
        (i % 17 * 11) as usize
    };
    EventData::new(
        ["Placed", "Paid", "Shipped"][(i % 3) as usize],
        format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(pad)).into_bytes(),
    )
    .with_id(Uuid::from_u128(u128::from(i) + 3))
}

fn fill(store: &Store, n: u64) {
    for i in 0..n {
        let stream = format!("{}-{}", ["order", "cart"][(i % 2) as usize], i % 7);
        store
            .append(&stream, ExpectedVersion::Any, &[event(i)])
            .unwrap();
    }
}

fn replayed(store: &Store, from: u64, to: u64, filter: &ReadFilter) -> Vec<RecordedEvent> {
    common::replayed(store, from, to, filter).0
}

fn read_all(store: &Store, filter: ReadFilter) -> Vec<RecordedEvent> {
    store
        .read_all(0, Direction::Forward, filter)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A store with compressed and plain sealed segments and an active one.
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .segment_bytes(4 << 20)
        .durability(Durability::Never);
    let store = opts.open(dir.path()).unwrap();
    fill(&store, 600);
    store.compress_sealed().unwrap();
    for i in 600..900 {
        store
            .append("late", ExpectedVersion::Any, &[event(i)])
            .unwrap();
    }
    let (sealed, compressed) = store.sealed_segments();
    assert!(
        sealed > compressed && compressed > 0,
        "{sealed} {compressed}"
    );
    (dir, store)
}

#[test]
fn replay_gives_what_read_all_gives_over_every_kind_of_segment() {
    let (_d, store) = store();
    let all = read_all(&store, ReadFilter::all());
    assert_eq!(all.len(), 900);
    assert_eq!(replayed(&store, 0, u64::MAX, &ReadFilter::all()), all);
    for filter in [
        ReadFilter::all().event_types(["Paid"]),
        ReadFilter::all().stream_prefix("cart-"),
        ReadFilter::all()
            .event_types(["Shipped", "Placed"])
            .stream_prefix("order-"),
    ] {
        assert_eq!(
            replayed(&store, 0, u64::MAX, &filter),
            read_all(&store, filter.clone())
        );
    }
}

#[test]
fn ranges_and_stopping() {
    let (_d, store) = store();
    let all = read_all(&store, ReadFilter::all());
    for (a, b) in [
        (0, 1),
        (5, 300),
        (299, 301),
        (600, 900),
        (850, 5000),
        (900, 950),
    ] {
        let got = replayed(&store, a, b, &ReadFilter::all());
        let want: Vec<_> = all
            .iter()
            .filter(|e| e.position >= a && e.position < b)
            .cloned()
            .collect();
        assert_eq!(got, want, "{a}..{b}");
    }
    // Stop after 250 events, then continue where it stopped.
    let mut first = Vec::new();
    let end = store
        .replay(0, u64::MAX, &ReadFilter::all(), |e| {
            first.push(e.position);
            if first.len() == 250 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(end.stopped);
    assert_eq!(end.next_position, 250);
    let rest = replayed(&store, end.next_position, u64::MAX, &ReadFilter::all());
    assert_eq!(first.len() + rest.len(), 900);
    assert_eq!(rest[0].position, 250);
}

#[test]
fn two_threads_replaying_halves_see_the_whole() {
    let (_d, store) = store();
    let all = read_all(&store, ReadFilter::all());
    let (a, b) = std::thread::scope(|s| {
        let h1 = s.spawn(|| replayed(&store, 0, 450, &ReadFilter::all()));
        let h2 = s.spawn(|| replayed(&store, 450, u64::MAX, &ReadFilter::all()));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert_eq!([a, b].concat(), all);
}

#[test]
fn retention_and_compaction_are_honoured() {
    let (_d, store) = store();
    store.truncate_before("late", 100).unwrap();
    store
        .delete_stream("order-0", ExpectedVersion::Any)
        .unwrap();
    let visible = read_all(&store, ReadFilter::all());
    assert_eq!(replayed(&store, 0, u64::MAX, &ReadFilter::all()), visible);
    store.compact().unwrap();
    assert_eq!(replayed(&store, 0, u64::MAX, &ReadFilter::all()), visible);
    assert_eq!(read_all(&store, ReadFilter::all()), visible);
}

#[test]
fn damage_is_an_error_after_the_events_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .segment_bytes(64 << 10)
        .durability(Durability::Never);
    let store = opts.open(dir.path()).unwrap();
    for i in 0..400u64 {
        let e = EventData::new("T", format!("{{\"i\":{i}}}").into_bytes());
        store.append("s", ExpectedVersion::Any, &[e]).unwrap();
    }
    store.close().unwrap();
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .min()
        .unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    b[2000] ^= 0x20;
    std::fs::write(&seg, &b).unwrap();
    let store = opts.open(dir.path()).unwrap();
    let mut seen = 0;
    let r = store.replay(0, u64::MAX, &ReadFilter::all(), |_| {
        seen += 1;
        ControlFlow::Continue(())
    });
    match r {
        Err(evlog::Error::Corrupted { file, .. }) => assert_eq!(file, seg),
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert!(seen > 0 && seen < 400, "{seen}");
}

fn read_stream(store: &Store, s: &str, from: u64) -> Vec<RecordedEvent> {
    store
        .read_stream(s, from, Direction::Forward, usize::MAX)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn replayed_stream(store: &Store, s: &str, from: u64) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let end = store
        .replay_stream(s, from, |e| {
            out.push(e.to_owned_event());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(end.events as usize, out.len());
    out
}

#[test]
fn replay_stream_gives_what_read_stream_gives() {
    let (_d, store) = store();
    let streams: Vec<String> = (0..7)
        .flat_map(|i| [format!("order-{i}"), format!("cart-{i}")])
        .chain(["late".to_string(), "missing".to_string()])
        .collect();
    for s in &streams {
        for from in [0, 1, 30, 10_000] {
            assert_eq!(
                replayed_stream(&store, s, from),
                read_stream(&store, s, from),
                "{s} from {from}"
            );
        }
    }
    store.truncate_before("late", 250).unwrap();
    store
        .tombstone_stream("cart-1", ExpectedVersion::Any)
        .unwrap();
    assert_eq!(
        replayed_stream(&store, "late", 0),
        read_stream(&store, "late", 0)
    );
    assert_eq!(replayed_stream(&store, "late", 0).len(), 50);
    assert!(replayed_stream(&store, "cart-1", 0).is_empty());
    // Stopping early.
    let mut n = 0;
    let end = store
        .replay_stream("late", 0, |_| {
            n += 1;
            if n == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(end.stopped);
    assert_eq!((end.events, end.next_position), (10, 260));
}

/// Filtered reads (which peek at each record's stream and type before decoding it) give what
/// filtering every event afterwards gives.
#[test]
fn filtered_reads_equal_filtering_every_event() {
    let (_d, store) = store();
    let all = read_all(&store, ReadFilter::all());
    for (types, prefix) in [
        (Some(vec!["Paid"]), None),
        (Some(vec!["Placed", "Shipped"]), None),
        (None, Some("cart-")),
        (Some(vec!["Paid"]), Some("order-")),
        (Some(vec!["NoSuchType"]), None),
    ] {
        let mut filter = ReadFilter::all();
        if let Some(t) = &types {
            filter = filter.event_types(t.iter().copied());
        }
        if let Some(p) = prefix {
            filter = filter.stream_prefix(p);
        }
        let want: Vec<RecordedEvent> = all
            .iter()
            .filter(|e| {
                types.as_ref().is_none_or(|t| t.contains(&&*e.event_type))
                    && prefix.is_none_or(|p| e.stream.starts_with(p))
            })
            .cloned()
            .collect();
        assert_eq!(
            read_all(&store, filter.clone()),
            want,
            "{types:?} {prefix:?}"
        );
        assert_eq!(
            replayed(&store, 0, u64::MAX, &filter),
            want,
            "{types:?} {prefix:?}"
        );
    }
}

/// Found in review: a replay that ends inside a frame said to continue after the whole frame,
/// so paging by `next_position` skipped the rest of it.
#[test]
fn a_replay_ending_inside_a_frame_continues_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for k in 0..2u64 {
        let batch: Vec<EventData> = (0..10).map(|i| event(k * 10 + i)).collect();
        store.append("b", ExpectedVersion::Any, &batch).unwrap();
    }
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let end = store
            .replay(from, from + 5, &ReadFilter::all(), |e| {
                seen.push(e.position);
                ControlFlow::Continue(())
            })
            .unwrap();
        if end.events == 0 {
            break;
        }
        assert_eq!(end.next_position, from + 5);
        from = end.next_position;
    }
    assert_eq!(seen, (0..20).collect::<Vec<u64>>());
}

#[test]
fn a_replay_at_the_tail_of_the_active_segment_gets_each_new_event() {
    // A reader that follows appends (a live subscription) replays from the head it saw: each
    // replay reads only the new frames, of every size (event 5 does not fit one read chunk).
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    let mut next = 0;
    for i in 0..120u64 {
        let batch: Vec<_> = (0..=i % 3).map(|k| event(i * 3 + k)).collect();
        store
            .append(&format!("s-{}", i % 5), ExpectedVersion::Any, &batch)
            .unwrap();
        let got = replayed(&store, next, u64::MAX, &ReadFilter::all());
        let want: Vec<u64> = (next..next + batch.len() as u64).collect();
        assert_eq!(got.iter().map(|e| e.position).collect::<Vec<_>>(), want);
        for (e, d) in got.iter().zip(&batch) {
            assert_eq!((e.id, &e.payload), (d.id, &d.payload));
        }
        next += batch.len() as u64;
    }
    // And from the middle of a frame of several events.
    let got = replayed(&store, next - 2, u64::MAX, &ReadFilter::all());
    assert_eq!(got.len(), 2);
}
