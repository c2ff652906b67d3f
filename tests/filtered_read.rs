//! Filtered reads (`Store::replay` and forward `Store::read_all` with a `ReadFilter`) visit
//! only the frames the index name tables select: whatever the filter and the store, they
//! return exactly the events a full replay returns that pass the filter, in position order.

use std::ops::ControlFlow;
use std::time::Duration;

use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions,
};
use proptest::prelude::*;

mod common;
use common::replayed;

/// Stream ids chosen so that prefixes select none, some or all of them, and some share a
/// prefix that is itself a stream id ("c", "order-1").
const STREAMS: [&str; 8] = [
    "order-1", "order-12", "order-2", "cart-1", "cart-2", "c", "inv-9", "order-10",
];
/// Event types; the first two in name order have names of the same length.
const TYPES: [&str; 5] = ["Placed", "Added", "Shipped", "Refunded", "Baked"];
const PREFIXES: [&str; 9] = [
    "",
    "order-",
    "order-1",
    "cart",
    "c",
    "inv-9",
    "zzz",
    "order-12x",
    "o",
];

/// One append: a stream, the type of its first event (the others take the next types, so a
/// frame can mix types), and how many events.
#[derive(Debug, Clone)]
struct Append {
    stream: usize,
    first_type: usize,
    events: usize,
    pad: usize,
}

/// What is done to the store between the two rounds of appends.
#[derive(Debug, Clone)]
enum Change {
    Delete(usize),
    Tombstone(usize),
    MaxCount(usize, u64),
    TruncateBefore(usize, u64),
}

#[derive(Debug, Clone)]
struct Shape {
    before: Vec<Append>,
    changes: Vec<Change>,
    after: Vec<Append>,
    compress: bool,
    compact: bool,
    archive: bool,
    reopen: bool,
}

fn append() -> impl Strategy<Value = Append> {
    (0..STREAMS.len(), 0..TYPES.len(), 1..4usize, 0..400usize).prop_map(
        |(stream, first_type, events, pad)| Append {
            stream,
            first_type,
            events,
            pad,
        },
    )
}

fn change() -> impl Strategy<Value = Change> {
    let s = 0..STREAMS.len();
    prop_oneof![
        s.clone().prop_map(Change::Delete),
        s.clone().prop_map(Change::Tombstone),
        (s.clone(), 1..6u64).prop_map(|(s, n)| Change::MaxCount(s, n)),
        (s, 1..8u64).prop_map(|(s, v)| Change::TruncateBefore(s, v)),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec(append(), 20..120),
        prop::collection::vec(change(), 0..4),
        prop::collection::vec(append(), 0..40),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(before, changes, after, compress, compact, archive, reopen)| Shape {
                before,
                changes,
                after,
                compress,
                compact,
                archive,
                reopen,
            },
        )
}

fn opts(t: &tempfile::TempDir) -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Never)
        .archive_dir(t.path().join("archive"))
}

/// Checks that `r` succeeded, or failed only because its stream is tombstoned (a tombstoned
/// stream takes no appends and no other deletion).
fn unless_tombstoned<T>(r: evlog::Result<T>) {
    match r {
        Ok(_) | Err(Error::StreamDeleted { .. }) => {}
        Err(e) => panic!("{e}"),
    }
}

fn apply(store: &Store, appends: &[Append], n: &mut usize) {
    for a in appends {
        let events: Vec<EventData> = (0..a.events)
            .map(|k| {
                *n += 1;
                let body = format!(r#"{{"n":{n},"pad":"{}"}}"#, "p".repeat(a.pad));
                EventData::new(TYPES[(a.first_type + k) % TYPES.len()], body.into_bytes())
            })
            .collect();
        unless_tombstoned(store.append(STREAMS[a.stream], ExpectedVersion::Any, &events));
    }
}

/// Builds the store `shape` describes: sealed segments (compressed, compacted or archived as
/// it says, some partly hidden) and an active one.
fn build(t: &tempfile::TempDir, shape: &Shape) -> Store {
    let dir = t.path().join("store");
    let store = opts(t).open(&dir).unwrap();
    let mut n = 0;
    apply(&store, &shape.before, &mut n);
    for c in &shape.changes {
        let r = match *c {
            Change::Delete(s) => store.delete_stream(STREAMS[s], ExpectedVersion::Any),
            Change::Tombstone(s) => store.tombstone_stream(STREAMS[s], ExpectedVersion::Any),
            Change::MaxCount(s, k) => store.set_retention(STREAMS[s], None, Some(k)),
            Change::TruncateBefore(s, v) => store.truncate_before(STREAMS[s], v),
        };
        unless_tombstoned(r);
    }
    if shape.compact {
        store.compact().unwrap();
    }
    if shape.compress {
        store.compress_sealed().unwrap();
    }
    if shape.archive {
        store.archive_sealed(Duration::ZERO).unwrap();
    }
    apply(&store, &shape.after, &mut n);
    if shape.reopen {
        store.close().unwrap();
        return opts(t).open(&dir).unwrap();
    }
    store
}

/// The filters tried on every store: each type alone, a type the store never saw, several
/// types, every type, no type; each prefix; types and a prefix together.
fn filters() -> Vec<ReadFilter> {
    let mut out = vec![
        ReadFilter::all(),
        ReadFilter::all().event_types(Vec::<String>::new()),
    ];
    for t in TYPES.iter().chain(["Unseen"].iter()) {
        out.push(ReadFilter::all().event_types([*t]));
    }
    out.push(ReadFilter::all().event_types([TYPES[1], TYPES[4]]));
    out.push(ReadFilter::all().event_types([TYPES[2], "Unseen", TYPES[0], TYPES[2]]));
    out.push(ReadFilter::all().event_types(TYPES));
    for p in PREFIXES {
        out.push(ReadFilter::all().stream_prefix(p));
        out.push(ReadFilter::all().stream_prefix(p).event_types([TYPES[1]]));
        out.push(
            ReadFilter::all()
                .stream_prefix(p)
                .event_types([TYPES[3], TYPES[0]]),
        );
    }
    out
}

fn by_hand(all: &[RecordedEvent], filter: &ReadFilter) -> Vec<RecordedEvent> {
    all.iter()
        .filter(|e| filter.matches(&e.stream, &e.event_type))
        .cloned()
        .collect()
}

fn check(store: &Store, cut: (u64, u64)) {
    let (all, head) = replayed(store, 0, u64::MAX, &ReadFilter::all());
    let (lo, hi) = (cut.0 % (head + 1), cut.1 % (head + 1));
    let (from, to) = (lo.min(hi), lo.max(hi));
    let (part, part_end) = replayed(store, from, to, &ReadFilter::all());
    for filter in filters() {
        let want = by_hand(&all, &filter);
        let (got, end) = replayed(store, 0, u64::MAX, &filter);
        assert_eq!(got, want, "replay with {filter:?}");
        assert_eq!(end, head, "replay with {filter:?}: where it ended");
        let read: Vec<RecordedEvent> = store
            .read_all(0, Direction::Forward, filter.clone())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, want, "read_all with {filter:?}");
        // A range, starting and ending inside segments.
        let (got, end) = replayed(store, from, to, &filter);
        assert_eq!(
            got,
            by_hand(&part, &filter),
            "replay {from}..{to} with {filter:?}"
        );
        assert_eq!(
            end, part_end,
            "replay {from}..{to} with {filter:?}: where it ended"
        );
        let read: Vec<RecordedEvent> = store
            .read_all(from, Direction::Forward, filter.clone())
            .collect::<Result<_, _>>()
            .unwrap();
        let want_from: Vec<RecordedEvent> = want
            .iter()
            .filter(|e| e.position >= from)
            .cloned()
            .collect();
        assert_eq!(read, want_from, "read_all from {from} with {filter:?}");
        // Stopped by the callback after its second event: it ends right after that one.
        if want.len() >= 2 {
            let mut seen = 0;
            let end = store
                .replay(0, u64::MAX, &filter, |_| {
                    seen += 1;
                    if seen == 2 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            assert!(end.stopped);
            assert_eq!(end.next_position, want[1].position + 1, "{filter:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_filtered_read_returns_what_a_full_replay_filtered_by_hand_returns(
        shape in shape(),
        cut in (any::<u64>(), any::<u64>()),
    ) {
        let t = tempfile::tempdir().unwrap();
        let store = build(&t, &shape);
        check(&store, cut);
    }
}

/// Many segments with one type each (a type per run of appends), so that whole segments hold
/// no match and are skipped: still the events a full replay filtered by hand gives.
#[test]
fn segments_without_a_match_are_skipped_and_the_result_is_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let store = opts(&t).open(t.path().join("store")).unwrap();
    for (k, t) in TYPES.iter().enumerate() {
        for i in 0..60 {
            let body = format!(r#"{{"i":{i},"pad":"{}"}}"#, "q".repeat(90));
            let e = EventData::new(*t, body.into_bytes());
            store
                .append(STREAMS[(i + k) % STREAMS.len()], ExpectedVersion::Any, &[e])
                .unwrap();
        }
    }
    store.compress_sealed().unwrap();
    let (sealed, compressed) = store.sealed_segments();
    assert!(sealed > 10 && compressed > 0, "{sealed} {compressed}");
    check(&store, (17, 250));
}

// ---------------------------------------------------------------------------------------------
// Index files of another version, and damaged name tables.

use evlog::wire::index_file::IndexView;

/// A closed store of several sealed segments (some compressed) and an active one, and its
/// `.idx` files with their bytes.
fn closed_store(t: &tempfile::TempDir) -> (std::path::PathBuf, Vec<(std::path::PathBuf, Vec<u8>)>) {
    let dir = t.path().join("store");
    let store = opts(t).open(&dir).unwrap();
    let shape: Vec<Append> = (0..90)
        .map(|i| Append {
            stream: i % STREAMS.len(),
            first_type: i % TYPES.len(),
            events: 1 + i % 3,
            pad: 60,
        })
        .collect();
    apply(&store, &shape, &mut 0);
    store.compress_sealed().unwrap();
    apply(&store, &shape[..10], &mut 1000);
    store.close().unwrap();
    let mut idx: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx") && !p.ends_with("checkpoint.idx"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    idx.sort();
    assert!(idx.len() > 3, "{} index files", idx.len());
    (dir, idx)
}

/// Recomputes the body and header checksums of an index file.
fn fix_checksums(b: &mut [u8]) {
    let body = crc32fast::hash(&b[64..]);
    b[36..40].copy_from_slice(&body.to_le_bytes());
    let header = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&header.to_le_bytes());
}

/// The index in the layout of version 1 (`format/FORMAT.md` § 19): no flags, no name table
/// sizes, nothing after the Bloom filter.
fn as_version_1(idx: &[u8]) -> Vec<u8> {
    let h = IndexView::new(idx).unwrap().header;
    let mut old = idx[..idx.len() - h.names.tables_len()].to_vec();
    old[8..10].copy_from_slice(&1u16.to_le_bytes());
    old[10..12].fill(0);
    old[44..60].fill(0);
    fix_checksums(&mut old);
    old
}

fn all_filters_agree(store: &Store) {
    check(store, (3, 1 << 40));
}

#[test]
fn index_files_of_version_1_are_noted_by_verify_and_rebuilt_on_open() {
    let t = tempfile::tempdir().unwrap();
    let (dir, idx) = closed_store(&t);
    for (p, b) in &idx {
        std::fs::write(p, as_version_1(b)).unwrap();
    }
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    let noted = rep
        .notes
        .iter()
        .filter(|n| n.contains("index of another version"))
        .count();
    assert_eq!(noted, idx.len(), "{rep:?}");
    // A read-only open rebuilds them in memory and reads through them; nothing is written.
    let ro = opts(&t).open_read_only(&dir).unwrap();
    all_filters_agree(&ro);
    drop(ro);
    assert_eq!(std::fs::read(&idx[0].0).unwrap(), as_version_1(&idx[0].1));
    // A writable open writes them again as this version.
    let store = opts(&t).open(&dir).unwrap();
    for (p, b) in &idx {
        assert_eq!(&std::fs::read(p).unwrap(), b, "{}", p.display());
    }
    all_filters_agree(&store);
    drop(store);
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.is_clean() && rep.notes.iter().all(|n| !n.contains("another version")));
}

#[test]
fn an_index_of_this_version_without_name_tables_is_rebuilt_on_open() {
    let t = tempfile::tempdir().unwrap();
    let (dir, idx) = closed_store(&t);
    let (p, b) = &idx[1];
    let h = IndexView::new(b).unwrap().header;
    let mut bare = b[..b.len() - h.names.tables_len()].to_vec();
    bare[10..12].fill(0);
    bare[44..60].fill(0);
    fix_checksums(&mut bare);
    std::fs::write(p, &bare).unwrap();
    assert!(!evlog::verify_dir(&dir).unwrap().is_clean());
    let store = opts(&t).open(&dir).unwrap();
    assert_eq!(&std::fs::read(p).unwrap(), b);
    all_filters_agree(&store);
}

/// Byte offset of the name area of an index.
fn names_at(idx: &[u8]) -> usize {
    let h = IndexView::new(idx).unwrap().header;
    idx.len() - h.names.names_len as usize
}

#[test]
fn a_damaged_name_table_is_reported_by_verify_and_rebuilt_in_memory_by_reads() {
    let t = tempfile::tempdir().unwrap();
    let (dir, idx) = closed_store(&t);
    let (p, b) = &idx[0];
    // A flipped bit in the first type name: the body checksum fails.
    let mut damaged = b.clone();
    damaged[names_at(b)] ^= 0x01;
    std::fs::write(p, &damaged).unwrap();
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.problems.iter().any(|x| &x.file == p), "{rep:?}");
    {
        let store = opts(&t).open(&dir).unwrap();
        all_filters_agree(&store);
    }
    // Not rewritten by an ordinary open (the body is checked on first use)...
    assert_eq!(std::fs::read(p).unwrap(), damaged);
    // ...but by a repairing one.
    drop(opts(&t).repair(true).open(&dir).unwrap());
    assert_eq!(&std::fs::read(p).unwrap(), b);
    assert!(evlog::verify_dir(&dir).unwrap().is_clean());

    // Checksums that match tables out of order (the first two type names swapped in place,
    // both of the same length): `check_index_tables` rejects them on first use.
    let v = IndexView::new(b).unwrap();
    let (t0, t1) = (v.type_name(0).to_vec(), v.type_name(1).to_vec());
    assert_eq!(
        t0.len(),
        t1.len(),
        "TYPES has names of the same length first"
    );
    let at = names_at(b);
    let mut swapped = b.clone();
    swapped[at..at + t0.len()].copy_from_slice(&t1);
    swapped[at + t0.len()..at + 2 * t0.len()].copy_from_slice(&t0);
    fix_checksums(&mut swapped);
    let e = evlog::wire::index_file::check_index_tables(
        &swapped,
        &IndexView::new(&swapped).unwrap().header,
    )
    .unwrap_err();
    assert_eq!(e.what, "index type names out of order");
    std::fs::write(p, &swapped).unwrap();
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.problems.iter().any(|x| &x.file == p), "{rep:?}");
    let store = opts(&t).open(&dir).unwrap();
    all_filters_agree(&store);
}
