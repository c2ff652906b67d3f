//! Compaction: sealed segments rewritten without the events retention and deletions hide.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions, Uuid,
};

const STREAMS: u64 = 8;

fn event(i: u64) -> EventData {
    let payload = format!(
        r#"{{"n":{i},"pad":"{}"}}"#,
        "q".repeat((i % 11 * 9) as usize)
    );
    EventData::new(
        ["Opened", "Moved", "Closed"][(i % 3) as usize],
        payload.into_bytes(),
    )
    .with_id(Uuid::from_u128(u128::from(i) + 7))
}

fn fill(store: &Store, from: u64, n: u64) {
    for i in from..from + n {
        store
            .append(
                &format!("s-{}", i % STREAMS),
                ExpectedVersion::Any,
                &[event(i)],
            )
            .unwrap();
    }
}

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(8 << 10)
        .durability(Durability::Never)
}

/// Everything a reader can see: read_all both ways, every stream, every stream version.
#[derive(Debug, PartialEq)]
struct View {
    forward: Vec<RecordedEvent>,
    backward: Vec<RecordedEvent>,
    streams: Vec<Vec<RecordedEvent>>,
    versions: Vec<Option<u64>>,
}

fn view(store: &Store) -> View {
    let names: Vec<String> = (0..STREAMS).map(|s| format!("s-{s}")).collect();
    View {
        forward: store
            .read_all(0, Direction::Forward, ReadFilter::all())
            .collect::<Result<_, _>>()
            .unwrap(),
        backward: store
            .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
            .collect::<Result<_, _>>()
            .unwrap(),
        streams: names
            .iter()
            .map(|s| {
                store
                    .read_stream(s, 0, Direction::Forward, usize::MAX)
                    .collect::<Result<_, _>>()
                    .unwrap()
            })
            .collect(),
        versions: names.iter().map(|s| store.stream_version(s)).collect(),
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg" || x == "zseg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Rules on four streams: a count limit, a truncation, a soft delete, a tombstone.
fn hide_some(store: &Store) {
    store.set_retention("s-0", None, Some(5)).unwrap();
    store.truncate_before("s-1", 40).unwrap();
    store.delete_stream("s-2", ExpectedVersion::Any).unwrap();
    store.tombstone_stream("s-3", ExpectedVersion::Any).unwrap();
}

fn compaction_keeps_what_reads_see(compress_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 1600);
    if compress_first {
        store.compress_sealed().unwrap();
    }
    hide_some(&store);
    let before = view(&store);
    let visible = before.forward.len();
    let bytes = segment_bytes(dir.path());
    let rep = store.compact().unwrap();
    assert!(rep.segments_rewritten > 0, "{rep:?}");
    // s-0 keeps 5 of 200, s-1 keeps 160, s-2 and s-3 keep none; the active segment's events
    // stay until it is sealed.
    assert!(rep.events_dropped > 500, "{rep:?}");
    assert!(rep.bytes_reclaimed() > 0, "{rep:?}");
    assert!(segment_bytes(dir.path()) < bytes);
    assert_eq!(view(&store), before);
    assert_eq!(before.forward.len(), visible);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    // Nothing more to drop the second time.
    assert_eq!(store.compact().unwrap().events_dropped, 0);
    // A soft-deleted stream continues its versions; a tombstoned one stays closed.
    let r = store
        .append("s-2", ExpectedVersion::Exact(199), &[event(9_000)])
        .unwrap();
    assert_eq!(r.next_expected_version, 200);
    assert!(matches!(
        store.append("s-3", ExpectedVersion::Any, &[event(9_001)]),
        Err(Error::StreamDeleted { .. })
    ));
    let after_append = view(&store);
    store.close().unwrap();

    // Reopened, and reopened with the checkpoint and indexes gone (the log is rescanned).
    let store = opts().open(dir.path()).unwrap();
    assert_eq!(view(&store), after_append);
    store.close().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_str().unwrap().to_owned();
        if n.ends_with(".idx") {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let store = opts().open(dir.path()).unwrap();
    assert_eq!(view(&store), after_append);
    assert!(store.verify().unwrap().is_clean());
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(view(&ro), after_append);
}

#[test]
fn compaction_drops_hidden_events_and_reads_see_the_same() {
    compaction_keeps_what_reads_see(false);
}

#[test]
fn compaction_of_compressed_segments_keeps_them_compressed() {
    compaction_keeps_what_reads_see(true);
}

#[test]
fn a_store_without_rules_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 500);
    let bytes = segment_bytes(dir.path());
    let rep = store.compact().unwrap();
    assert_eq!(rep.segments_rewritten, 0);
    assert!(rep.segments_examined > 0);
    assert_eq!(segment_bytes(dir.path()), bytes);
}

#[test]
fn age_retention_drops_old_events_once_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 600);
    store
        .set_retention("s-5", Some(Duration::from_millis(1)), None)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let before = view(&store);
    assert!(before.streams[5].is_empty());
    let rep = store.compact().unwrap();
    assert!(rep.events_dropped > 0);
    assert_eq!(view(&store), before);
    // Relaxing the rule later cannot bring dropped events back: they are gone from the log.
    store.set_retention("s-5", None, None).unwrap();
    let now = view(&store);
    assert!(now.streams[5].len() < 75, "{}", now.streams[5].len());
}

#[test]
fn a_re_sent_append_whose_event_was_dropped_gets_its_original_result() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 300);
    let last = store
        .append("s-9", ExpectedVersion::NoStream, &[event(5_000)])
        .unwrap();
    // Seal the segment holding it (it is then the newest sealed one, inside the window of
    // remembered ids), and drop it by truncation.
    let (sealed, _) = store.sealed_segments();
    let mut i = 300;
    while store.sealed_segments().0 == sealed {
        fill(&store, i, 1);
        i += 1;
    }
    store.truncate_before("s-9", 1).unwrap();
    assert_eq!(store.compact().unwrap().events_dropped, 1);
    let again = store
        .append("s-9", ExpectedVersion::NoStream, &[event(5_000)])
        .unwrap();
    assert_eq!(again, last);
}

#[test]
fn reads_and_appends_go_on_while_segments_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(opts().open(dir.path()).unwrap());
    fill(&store, 0, 3000);
    hide_some(&store);
    let before = view(&store);
    std::thread::scope(|s| {
        let st = store.clone();
        let compactor = s.spawn(move || st.compact().unwrap());
        let st = store.clone();
        let appender = s.spawn(move || {
            for i in 3000..3400 {
                st.append(&format!("t-{}", i % 5), ExpectedVersion::Any, &[event(i)])
                    .unwrap();
            }
        });
        for _ in 0..5 {
            let now: Vec<RecordedEvent> = store
                .read_all(0, Direction::Forward, ReadFilter::all())
                .take(before.forward.len())
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(now, before.forward);
        }
        appender.join().unwrap();
        assert!(compactor.join().unwrap().events_dropped > 0);
    });
    let now = view(&store);
    assert_eq!(now.forward[..before.forward.len()], before.forward[..]);
}

/// Found in review: a read-only store reading the segment it took for the active one, after
/// the writer sealed and compacted it, mapped the new (shorter) file by its path and read it at
/// the old offsets: `read_stream` returned no events, with `Ok`.
#[test]
fn a_read_only_store_reads_its_active_segment_after_the_writer_compacts_it() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB segments: everything in the active segment.
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    store
        .append("x", ExpectedVersion::Any, &[event(1)])
        .unwrap();
    for i in 0..30 {
        store
            .append("y", ExpectedVersion::Any, &[event(100 + i)])
            .unwrap();
        store
            .append("z", ExpectedVersion::Any, &[event(200 + i)])
            .unwrap();
    }
    let ro = Store::open_read_only(dir.path()).unwrap();
    store.truncate_before("x", 1).unwrap();
    assert!(store.seal_active().unwrap());
    assert_eq!(store.compact().unwrap().events_dropped, 1);
    let ys: Vec<RecordedEvent> = ro
        .read_stream("y", 0, Direction::Forward, usize::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ys.len(), 30);
    let mut n = 0;
    ro.replay_stream("z", 0, |_| {
        n += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 30);
}
