//! The public API, call by call: every field round-trips, ordering, expected versions, filters,
//! reads in both directions with limits and starting points, reopen, multiple segments,
//! idempotent re-sends, bad inputs, read-only stores, waiting for the head, durability levels.
//!
//! Every test compares what the store returns with a plain in-memory model of what was appended.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evlog::wire::limits::{
    MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_EVENT_TYPE_BYTES, MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_BYTES, MAX_STREAM_ID_BYTES,
};
use evlog::wire::record::event_len;
use evlog::{
    AppendResult, Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter,
    RecordedEvent, Store, StoreOptions, Uuid,
};

/// Smallest segment size the store accepts: makes a few events roll the segment.
const SMALL_SEGMENT_BYTES: u64 = 4096;

/// One appended event as the model remembers it.
#[derive(Debug, Clone)]
struct Stored {
    stream: String,
    version: u64,
    position: u64,
    data: EventData,
}

/// What the store must hold: every acknowledged event in position order.
#[derive(Debug, Default, Clone)]
struct Model {
    events: Vec<Stored>,
    versions: HashMap<String, u64>,
}

impl Model {
    /// Records an acknowledged append and checks its result against the model.
    fn record(&mut self, stream: &str, events: &[EventData], r: &AppendResult) {
        let first_version = self.versions.get(stream).map_or(0, |v| v + 1);
        let first_position = self.events.len() as u64;
        let n = events.len() as u64;
        assert_eq!(
            *r,
            AppendResult {
                first_position,
                last_position: first_position + n - 1,
                next_expected_version: first_version + n - 1,
            },
            "append result for {stream:?}"
        );
        for (i, e) in events.iter().enumerate() {
            self.events.push(Stored {
                stream: stream.to_owned(),
                version: first_version + i as u64,
                position: first_position + i as u64,
                data: e.clone(),
            });
        }
        self.versions
            .insert(stream.to_owned(), first_version + n - 1);
    }

    fn head(&self) -> Option<u64> {
        (self.events.len() as u64).checked_sub(1)
    }

    /// What `read_all(from, direction, filter)` must return.
    fn read_all(&self, from: u64, direction: Direction, filter: &ReadFilter) -> Vec<&Stored> {
        let pass = |e: &&Stored| filter.matches(&e.stream, &e.data.event_type);
        match direction {
            Direction::Forward => self
                .events
                .iter()
                .filter(|e| e.position >= from)
                .filter(pass)
                .collect(),
            Direction::Backward => self
                .events
                .iter()
                .rev()
                .filter(|e| e.position <= from)
                .filter(pass)
                .collect(),
        }
    }

    /// What `read_stream(stream, from, direction, limit)` must return.
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Vec<&Stored> {
        let mine = self.events.iter().filter(|e| e.stream == stream);
        match direction {
            Direction::Forward => mine.filter(|e| e.version >= from).take(limit).collect(),
            Direction::Backward => mine
                .rev()
                .filter(|e| e.version <= from)
                .take(limit)
                .collect(),
        }
    }
}

fn assert_same(got: &RecordedEvent, want: &Stored) {
    assert_eq!(&*got.stream, want.stream.as_str(), "stream of {got:?}");
    assert_eq!(got.version, want.version, "version of {got:?}");
    assert_eq!(got.position, want.position, "position of {got:?}");
    assert_eq!(got.id, want.data.id, "id of {got:?}");
    assert_eq!(*got.event_type, *want.data.event_type, "type of {got:?}");
    assert_eq!(
        got.payload, want.data.payload,
        "payload at {}",
        want.position
    );
    assert_eq!(got.metadata, want.data.metadata, "metadata of {got:?}");
}

fn assert_all_same(got: &[RecordedEvent], want: &[&Stored], what: &str) {
    let g: Vec<u64> = got.iter().map(|e| e.position).collect();
    let w: Vec<u64> = want.iter().map(|e| e.position).collect();
    assert_eq!(g, w, "positions of {what}");
    for (g, w) in got.iter().zip(want) {
        assert_same(g, w);
    }
}

fn read_all(s: &Store, from: u64, direction: Direction, filter: ReadFilter) -> Vec<RecordedEvent> {
    s.read_all(from, direction, filter)
        .collect::<evlog::Result<_>>()
        .expect("read_all")
}

fn read_stream(
    s: &Store,
    stream: &str,
    from: u64,
    direction: Direction,
    limit: usize,
) -> Vec<RecordedEvent> {
    s.read_stream(stream, from, direction, limit)
        .collect::<evlog::Result<_>>()
        .expect("read_stream")
}

fn append(
    s: &Store,
    m: &mut Model,
    stream: &str,
    expected: ExpectedVersion,
    events: &[EventData],
) -> AppendResult {
    let r = s.append(stream, expected, events).expect("append");
    m.record(stream, events, &r);
    r
}

/// Checks every read the model can answer: the whole log both ways, every stream both ways.
fn assert_store_matches(s: &Store, m: &Model) {
    assert_eq!(s.head_position(), m.head(), "head position");
    assert_eq!(s.stream_count(), m.versions.len(), "stream count");
    for (stream, v) in &m.versions {
        assert_eq!(s.stream_version(stream), Some(*v), "version of {stream:?}");
    }
    let f = ReadFilter::all();
    let got = read_all(s, 0, Direction::Forward, f.clone());
    assert_all_same(
        &got,
        &m.read_all(0, Direction::Forward, &f),
        "read_all forward",
    );
    let got = read_all(s, u64::MAX, Direction::Backward, f.clone());
    assert_all_same(
        &got,
        &m.read_all(u64::MAX, Direction::Backward, &f),
        "read_all backward",
    );
    for stream in m.versions.keys() {
        let got = read_stream(s, stream, 0, Direction::Forward, usize::MAX);
        let want = m.read_stream(stream, 0, Direction::Forward, usize::MAX);
        assert_all_same(&got, &want, &format!("stream {stream:?} forward"));
        let got = read_stream(s, stream, u64::MAX, Direction::Backward, usize::MAX);
        let want = m.read_stream(stream, u64::MAX, Direction::Backward, usize::MAX);
        assert_all_same(&got, &want, &format!("stream {stream:?} backward"));
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter(|e| {
            e.as_ref()
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count()
}

fn small_segments() -> StoreOptions {
    StoreOptions::new().segment_bytes(SMALL_SEGMENT_BYTES)
}

fn ev(event_type: &str, payload: impl Into<Vec<u8>>) -> EventData {
    EventData::new(event_type, payload)
}

fn is_invalid(r: evlog::Result<AppendResult>) -> bool {
    matches!(r, Err(Error::InvalidArgument(_)))
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn every_field_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    let correlation = Uuid::new_v4();
    let causation = Uuid::new_v4();
    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let events = vec![
        ev("Full", b"{\"a\":1}".to_vec())
            .with_id(Uuid::new_v4())
            .with_metadata(
                Metadata::new()
                    .with_correlation_id(correlation)
                    .with_causation_id(causation)
                    .with("user", "ada")
                    .with("empty", "")
                    .with("ключ", "значение ✓")
                    .with("", "empty key"),
            ),
        ev("EmptyPayload", Vec::new()),
        ev("Binary", binary.clone()),
        ev("OnlyCorrelation", b"x".to_vec())
            .with_metadata(Metadata::new().with_correlation_id(correlation)),
        ev("OnlyCausation", b"y".to_vec())
            .with_metadata(Metadata::new().with_causation_id(causation)),
        ev("Ünïcödé-类型-🚀", "ünïcödé payload".as_bytes().to_vec()),
    ];
    let before = now_us();
    let stream = "заказ-🦀-1";
    let r = append(&s, &mut m, stream, ExpectedVersion::NoStream, &events);
    let after = now_us();
    assert_eq!(r.first_position, 0);
    assert_eq!(r.last_position, 5);
    assert_eq!(r.next_expected_version, 5);

    let got = read_stream(&s, stream, 0, Direction::Forward, usize::MAX);
    assert_all_same(&got, &m.events.iter().collect::<Vec<_>>(), "stream");
    for e in &got {
        assert!(
            (before..=after).contains(&e.timestamp_us),
            "timestamp {} outside {before}..={after}",
            e.timestamp_us
        );
    }
    // One append: one timestamp.
    assert!(got.iter().all(|e| e.timestamp_us == got[0].timestamp_us));
    let all = read_all(&s, 0, Direction::Forward, ReadFilter::all());
    assert_eq!(all, got, "read_all and read_stream return the same events");
    assert_eq!(got[1].payload, Vec::<u8>::new());
    assert_eq!(got[2].payload, binary);
    assert_eq!(got[0].metadata.correlation_id, Some(correlation));
    assert_eq!(got[0].metadata.causation_id, Some(causation));
    assert_eq!(got[0].metadata.extra.get("ключ"), Some("значение ✓"));
    assert_eq!(got[3].metadata.causation_id, None);
    assert_eq!(got[4].metadata.correlation_id, None);
    assert_eq!(s.stream_version(stream), Some(5));
    assert_eq!(s.stream_count(), 1);
    assert_eq!(s.head_position(), Some(5));
    s.close().unwrap();

    let s = Store::open(dir.path()).unwrap();
    let again = read_all(&s, 0, Direction::Forward, ReadFilter::all());
    assert_eq!(again, got, "identical after reopen, timestamps included");
    assert_store_matches(&s, &m);
}

#[test]
fn empty_store_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.head_position(), None);
    assert_eq!(s.stream_count(), 0);
    assert_eq!(s.stream_version("nope"), None);
    assert!(read_all(&s, 0, Direction::Forward, ReadFilter::all()).is_empty());
    assert!(read_all(&s, u64::MAX, Direction::Backward, ReadFilter::all()).is_empty());
    assert!(read_all(&s, 0, Direction::Backward, ReadFilter::all()).is_empty());
    assert!(read_stream(&s, "nope", 0, Direction::Forward, usize::MAX).is_empty());
    assert!(read_stream(&s, "nope", u64::MAX, Direction::Backward, usize::MAX).is_empty());
    s.sync().unwrap();
    assert!(s.verify().unwrap().is_clean());
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.head_position(), None);
}

#[test]
fn event_of_exactly_max_event_bytes_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    let meta = Metadata::new()
        .with("k", "v")
        .with_correlation_id(Uuid::new_v4());
    let mut e = ev("Big", Vec::new()).with_metadata(meta);
    let overhead = event_len(&e);
    e.payload = (0..MAX_EVENT_BYTES - overhead)
        .map(|i| (i % 251) as u8)
        .collect();
    assert_eq!(event_len(&e), MAX_EVENT_BYTES);

    // One byte more is refused and writes nothing.
    let mut over = e.clone().with_id(Uuid::new_v4());
    over.payload.push(0);
    assert!(is_invalid(s.append("big", ExpectedVersion::Any, &[over])));
    assert_eq!(s.head_position(), None);
    // Metadata counts too.
    let over = e
        .clone()
        .with_id(Uuid::new_v4())
        .with_metadata(Metadata::new().with("k", "vv"));
    assert!(is_invalid(s.append("big", ExpectedVersion::Any, &[over])));
    assert_eq!(s.head_position(), None);

    append(
        &s,
        &mut m,
        "small",
        ExpectedVersion::Any,
        &[ev("S", b"a".to_vec())],
    );
    append(&s, &mut m, "big", ExpectedVersion::NoStream, &[e]);
    append(
        &s,
        &mut m,
        "small",
        ExpectedVersion::Any,
        &[ev("S", b"b".to_vec())],
    );
    assert_store_matches(&s, &m);
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_store_matches(&s, &m);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn unicode_stream_ids_up_to_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    // 2-byte characters: the limit is in bytes, not characters.
    let longest = "é".repeat(MAX_STREAM_ID_BYTES / 2);
    assert_eq!(longest.len(), MAX_STREAM_ID_BYTES);
    let too_long = format!("a{longest}");
    let streams = ["日本語", "🦀🦀", "a", "ab", "a b", "with/slash", "Ω"];
    for (i, st) in streams.iter().enumerate() {
        append(
            &s,
            &mut m,
            st,
            ExpectedVersion::NoStream,
            &[ev("T", vec![i as u8])],
        );
    }
    append(
        &s,
        &mut m,
        &longest,
        ExpectedVersion::NoStream,
        &[ev("T", b"long".to_vec())],
    );
    assert!(is_invalid(s.append(
        &too_long,
        ExpectedVersion::Any,
        &[ev("T", b"x".to_vec())]
    )));
    let max_type = "t".repeat(MAX_EVENT_TYPE_BYTES);
    append(
        &s,
        &mut m,
        "types",
        ExpectedVersion::Any,
        &[ev(&max_type, b"x".to_vec())],
    );
    assert_store_matches(&s, &m);
    // "a" and "ab" share a prefix but never each other's events.
    assert_eq!(
        read_stream(&s, "a", 0, Direction::Forward, usize::MAX).len(),
        1
    );
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_store_matches(&s, &m);
}

// ---------------------------------------------------------------------------------------------
// Ordering and expected versions
// ---------------------------------------------------------------------------------------------

#[test]
fn positions_and_versions_are_dense_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    for i in 0..60u64 {
        let stream = format!("s-{}", i % 4);
        let n = 1 + (i % 3) as usize;
        let events: Vec<_> = (0..n)
            .map(|k| ev("T", format!("{i}-{k}").into_bytes()))
            .collect();
        append(&s, &mut m, &stream, ExpectedVersion::Any, &events);
    }
    assert_store_matches(&s, &m);
    let all = read_all(&s, 0, Direction::Forward, ReadFilter::all());
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64);
    }
    for w in all.windows(2) {
        assert!(w[0].timestamp_us <= w[1].timestamp_us, "timestamps ascend");
    }
}

#[test]
fn expected_version_any() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    let r = append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::Any,
        &[ev("T", b"1".to_vec())],
    );
    assert_eq!(r.next_expected_version, 0);
    let r = append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::Any,
        &[ev("T", b"2".to_vec())],
    );
    assert_eq!(r.next_expected_version, 1);
    assert_store_matches(&s, &m);
}

#[test]
fn expected_version_no_stream() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::NoStream,
        &[ev("T", b"1".to_vec())],
    );
    // Another stream existing does not matter.
    append(
        &s,
        &mut m,
        "b",
        ExpectedVersion::NoStream,
        &[ev("T", b"1".to_vec())],
    );
    let e = ev("T", b"2".to_vec());
    match s.append("a", ExpectedVersion::NoStream, std::slice::from_ref(&e)) {
        Err(Error::WrongExpectedVersion {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(stream, "a");
            assert_eq!(expected, ExpectedVersion::NoStream);
            assert_eq!(actual, Some(0));
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    assert_store_matches(&s, &m);
    // The refused event's id was not burnt: it can be appended afterwards.
    append(&s, &mut m, "a", ExpectedVersion::Exact(0), &[e]);
    assert_store_matches(&s, &m);
}

#[test]
fn expected_version_stream_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    match s.append(
        "a",
        ExpectedVersion::StreamExists,
        &[ev("T", b"1".to_vec())],
    ) {
        Err(Error::WrongExpectedVersion {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(stream, "a");
            assert_eq!(expected, ExpectedVersion::StreamExists);
            assert_eq!(actual, None);
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    assert_eq!(s.head_position(), None);
    assert_eq!(s.stream_count(), 0, "a refused append creates no stream");
    assert_eq!(s.stream_version("a"), None);
    append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::Any,
        &[ev("T", b"1".to_vec())],
    );
    append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::StreamExists,
        &[ev("T", b"2".to_vec())],
    );
    assert_store_matches(&s, &m);
}

#[test]
fn expected_version_exact() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    // Exact(0) on a stream with no events is a mismatch.
    match s.append("a", ExpectedVersion::Exact(0), &[ev("T", b"1".to_vec())]) {
        Err(Error::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, None),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    let r = append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::NoStream,
        &[ev("T", b"1".to_vec()), ev("T", b"2".to_vec())],
    );
    assert_eq!(r.next_expected_version, 1);
    for wrong in [0, 2, 3, u64::MAX] {
        match s.append(
            "a",
            ExpectedVersion::Exact(wrong),
            &[ev("T", b"x".to_vec())],
        ) {
            Err(Error::WrongExpectedVersion {
                stream,
                expected,
                actual,
            }) => {
                assert_eq!(stream, "a");
                assert_eq!(expected, ExpectedVersion::Exact(wrong));
                assert_eq!(actual, Some(1));
            }
            other => panic!("Exact({wrong}): expected WrongExpectedVersion, got {other:?}"),
        }
        assert_store_matches(&s, &m);
    }
    let r = append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::Exact(r.next_expected_version),
        &[ev("T", b"3".to_vec())],
    );
    assert_eq!(r.next_expected_version, 2);
    assert_store_matches(&s, &m);
    // Versions are per stream: another stream starts at 0 again.
    let r = append(
        &s,
        &mut m,
        "b",
        ExpectedVersion::Any,
        &[ev("T", b"b".to_vec())],
    );
    assert_eq!(r.next_expected_version, 0);
    assert_eq!(r.first_position, 3);
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_store_matches(&s, &m);
    // Versions survive a reopen.
    append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::Exact(2),
        &[ev("T", b"4".to_vec())],
    );
    assert!(matches!(
        s.append("a", ExpectedVersion::Exact(2), &[ev("T", b"5".to_vec())]),
        Err(Error::WrongExpectedVersion {
            actual: Some(3),
            ..
        })
    ));
    assert_store_matches(&s, &m);
}

// ---------------------------------------------------------------------------------------------
// Filters and reads
// ---------------------------------------------------------------------------------------------

/// Three streams under two prefixes, three types, batches of varied sizes.
fn filter_fixture(s: &Store, m: &mut Model) {
    let types = ["Placed", "Paid", "Shipped"];
    let streams = ["order-1", "order-2", "user-1", "orders"];
    for i in 0..40usize {
        let n = 1 + i % 4;
        let events: Vec<_> = (0..n)
            .map(|k| ev(types[(i + k) % 3], format!("{i}.{k}").into_bytes()))
            .collect();
        append(s, m, streams[i % 4], ExpectedVersion::Any, &events);
    }
}

#[test]
fn read_all_filters_by_type_prefix_and_both() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    filter_fixture(&s, &mut m);
    let head = m.head().unwrap();
    let filters = [
        ReadFilter::all(),
        ReadFilter::all().event_types(["Paid"]),
        ReadFilter::all().event_types(["Paid", "Shipped"]),
        ReadFilter::all().event_types(["NoSuchType"]),
        ReadFilter::all().stream_prefix("order-"),
        ReadFilter::all().stream_prefix("order"),
        ReadFilter::all().stream_prefix("user-1"),
        ReadFilter::all().stream_prefix("zzz"),
        ReadFilter::all().stream_prefix(""),
        ReadFilter::all()
            .event_types(["Placed"])
            .stream_prefix("order-"),
        ReadFilter::all()
            .event_types(["Placed", "Shipped"])
            .stream_prefix("user"),
    ];
    for f in &filters {
        for from in [0, 1, head / 2, head, head + 1, u64::MAX] {
            for dir in [Direction::Forward, Direction::Backward] {
                let got = read_all(&s, from, dir, f.clone());
                let want = m.read_all(from, dir, f);
                assert_all_same(&got, &want, &format!("{f:?} from {from} {dir:?}"));
            }
        }
    }
    // Sanity: the filters select something, so the comparisons above are not vacuous.
    let paid = read_all(
        &s,
        0,
        Direction::Forward,
        ReadFilter::all().event_types(["Paid"]),
    );
    assert!(!paid.is_empty() && paid.iter().all(|e| &*e.event_type == "Paid"));
    let orders = read_all(
        &s,
        0,
        Direction::Forward,
        ReadFilter::all().stream_prefix("order-"),
    );
    assert!(!orders.is_empty() && orders.iter().all(|e| e.stream.starts_with("order-")));
    assert!(orders.iter().any(|e| &*e.stream == "order-2"));
}

#[test]
fn read_stream_every_start_limit_and_direction() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    filter_fixture(&s, &mut m);
    let streams: Vec<String> = m.versions.keys().cloned().collect();
    for stream in streams
        .iter()
        .map(String::as_str)
        .chain(["missing", "order"])
    {
        let last = m.versions.get(stream).copied().unwrap_or(0);
        for from in (0..=last + 2).chain([u64::MAX]) {
            for limit in [0, 1, 2, 5, usize::MAX] {
                for dir in [Direction::Forward, Direction::Backward] {
                    let got = read_stream(&s, stream, from, dir, limit);
                    let want = m.read_stream(stream, from, dir, limit);
                    assert_all_same(
                        &got,
                        &want,
                        &format!("{stream} from {from} limit {limit} {dir:?}"),
                    );
                }
            }
        }
    }
}

#[test]
fn read_all_from_every_position_including_mid_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    for i in 0..12 {
        let events: Vec<_> = (0..5)
            .map(|k| ev("T", format!("{i}.{k}").into_bytes()))
            .collect();
        append(
            &s,
            &mut m,
            &format!("s-{}", i % 3),
            ExpectedVersion::Any,
            &events,
        );
    }
    let head = m.head().unwrap();
    let f = ReadFilter::all();
    for from in 0..=head + 2 {
        for dir in [Direction::Forward, Direction::Backward] {
            let got = read_all(&s, from, dir, f.clone());
            assert_all_same(
                &got,
                &m.read_all(from, dir, &f),
                &format!("from {from} {dir:?}"),
            );
            // A limit is `take`: the first events are the same.
            let got: Vec<_> = s
                .read_all(from, dir, f.clone())
                .take(3)
                .collect::<evlog::Result<_>>()
                .unwrap();
            let want: Vec<_> = m.read_all(from, dir, &f).into_iter().take(3).collect();
            assert_all_same(&got, &want, &format!("from {from} {dir:?} take 3"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reopen and segments
// ---------------------------------------------------------------------------------------------

#[test]
fn reopen_after_clean_close_gives_identical_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::default();
    let (all, streams) = {
        let s = Store::open(dir.path()).unwrap();
        filter_fixture(&s, &mut m);
        let all = read_all(&s, 0, Direction::Forward, ReadFilter::all());
        let streams: Vec<_> = m
            .versions
            .keys()
            .map(|st| read_stream(&s, st, 0, Direction::Forward, usize::MAX))
            .collect();
        s.close().unwrap();
        (all, streams)
    };
    for round in 0..2 {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(read_all(&s, 0, Direction::Forward, ReadFilter::all()), all);
        for (st, want) in m.versions.keys().zip(&streams) {
            assert_eq!(
                &read_stream(&s, st, 0, Direction::Forward, usize::MAX),
                want
            );
        }
        assert_store_matches(&s, &m);
        assert!(s.verify().unwrap().is_clean());
        if round == 0 {
            s.close().unwrap();
        } else {
            drop(s); // dropping closes too
        }
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(read_all(&s, 0, Direction::Forward, ReadFilter::all()), all);
    // And appends continue where the log ended.
    append(
        &s,
        &mut m,
        "order-1",
        ExpectedVersion::Any,
        &[ev("T", b"more".to_vec())],
    );
    assert_store_matches(&s, &m);
}

#[test]
fn reads_cross_segment_boundaries_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments();
    let s = opts.open(dir.path()).unwrap();
    let mut m = Model::default();
    for i in 0..150usize {
        let n = 1 + i % 5;
        let events: Vec<_> = (0..n)
            .map(|k| ev(["A", "B"][k % 2], vec![(i + k) as u8; 40 + (i * 7) % 90]))
            .collect();
        append(
            &s,
            &mut m,
            &format!("s-{}", i % 6),
            ExpectedVersion::Any,
            &events,
        );
        if i == 70 {
            // A frame larger than a whole segment gets a segment of its own.
            let big = ev("Big", vec![7u8; 3 * SMALL_SEGMENT_BYTES as usize]);
            append(&s, &mut m, "big", ExpectedVersion::Any, &[big]);
        }
    }
    let segments = segment_files(dir.path());
    assert!(
        segments > 10,
        "only {segments} segments: rolling was not exercised"
    );
    let head = m.head().unwrap();
    assert_store_matches(&s, &m);
    let f = ReadFilter::all();
    let check_reads = |s: &Store| {
        for from in (0..=head + 1).step_by(7).chain([head, head + 1]) {
            for dir in [Direction::Forward, Direction::Backward] {
                let got = read_all(s, from, dir, f.clone());
                assert_all_same(&got, &m.read_all(from, dir, &f), &format!("{from} {dir:?}"));
            }
        }
        let g = ReadFilter::all().event_types(["B"]).stream_prefix("s-1");
        for dir in [Direction::Forward, Direction::Backward] {
            let got = read_all(
                s,
                if dir == Direction::Forward {
                    0
                } else {
                    u64::MAX
                },
                dir,
                g.clone(),
            );
            let want = m.read_all(
                if dir == Direction::Forward {
                    0
                } else {
                    u64::MAX
                },
                dir,
                &g,
            );
            assert_all_same(&got, &want, "filtered");
        }
        for stream in m.versions.keys() {
            let last = m.versions[stream];
            for from in [0, last / 3, last / 2, last, u64::MAX] {
                for limit in [1, 7, usize::MAX] {
                    for dir in [Direction::Forward, Direction::Backward] {
                        let got = read_stream(s, stream, from, dir, limit);
                        let want = m.read_stream(stream, from, dir, limit);
                        assert_all_same(&got, &want, &format!("{stream} {from} {limit} {dir:?}"));
                    }
                }
            }
        }
    };
    check_reads(&s);
    assert!(s.verify().unwrap().is_clean());
    s.close().unwrap();
    let s = opts.open(dir.path()).unwrap();
    check_reads(&s);
    assert_store_matches(&s, &m);
    // Appending after the reopen keeps rolling and keeps positions dense.
    for i in 0..40usize {
        append(
            &s,
            &mut m,
            "after",
            ExpectedVersion::Any,
            &[ev("A", vec![i as u8; 200])],
        );
    }
    assert_store_matches(&s, &m);
    assert!(segment_files(dir.path()) > segments);
    assert!(s.verify().unwrap().is_clean());
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

fn batch_with_ids(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|k| {
            ev("T", format!("{tag}.{k}").into_bytes())
                .with_id(Uuid::new_v4())
                .with_metadata(Metadata::new().with("tag", tag))
        })
        .collect()
}

#[test]
fn idempotent_resend_returns_same_result_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    append(
        &s,
        &mut m,
        "other",
        ExpectedVersion::Any,
        &batch_with_ids("o", 2),
    );
    let batch = batch_with_ids("b", 3);
    let r = append(&s, &mut m, "a", ExpectedVersion::NoStream, &batch);
    let single = batch_with_ids("single", 1);
    let r1 = append(&s, &mut m, "a", ExpectedVersion::Exact(2), &single);
    // A re-send returns the original result, whatever version it names now.
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::StreamExists,
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(99),
    ] {
        assert_eq!(s.append("a", expected, &batch).unwrap(), r, "{expected:?}");
        assert_eq!(
            s.append("a", expected, &single).unwrap(),
            r1,
            "{expected:?}"
        );
        assert_store_matches(&s, &m);
    }
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.append("a", ExpectedVersion::NoStream, &batch).unwrap(), r);
    assert_eq!(s.append("a", ExpectedVersion::Any, &single).unwrap(), r1);
    assert_store_matches(&s, &m);
}

#[test]
fn idempotent_resend_after_a_segment_roll() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_segments();
    let s = opts.open(dir.path()).unwrap();
    let mut m = Model::default();
    let batch = batch_with_ids("b", 3);
    let r = append(&s, &mut m, "a", ExpectedVersion::NoStream, &batch);
    let before = segment_files(dir.path());
    let mut i = 0;
    while segment_files(dir.path()) == before {
        append(
            &s,
            &mut m,
            "filler",
            ExpectedVersion::Any,
            &[ev("F", vec![i as u8; 300])],
        );
        i += 1;
        assert!(i < 100, "segment never rolled");
    }
    // The batch is in the last sealed segment now.
    assert_eq!(s.append("a", ExpectedVersion::NoStream, &batch).unwrap(), r);
    assert_store_matches(&s, &m);
    // Reusing one of its ids with other content is still caught.
    let mut changed = batch.clone();
    changed[1].payload = b"changed".to_vec();
    assert!(matches!(
        s.append("a", ExpectedVersion::Any, &changed),
        Err(Error::DuplicateEventId { id }) if id == batch[1].id
    ));
    assert_store_matches(&s, &m);
    s.close().unwrap();
    let s = opts.open(dir.path()).unwrap();
    assert_eq!(s.append("a", ExpectedVersion::NoStream, &batch).unwrap(), r);
    assert_store_matches(&s, &m);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn id_reuse_with_different_content_is_duplicate_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    let batch = batch_with_ids("b", 3);
    append(&s, &mut m, "a", ExpectedVersion::NoStream, &batch);
    let id0 = batch[0].id;
    let id1 = batch[1].id;

    let mut attempts: Vec<(&str, Vec<EventData>, Uuid)> = Vec::new();
    let mut other_payload = batch.clone();
    other_payload[0].payload = b"other".to_vec();
    attempts.push(("other payload", other_payload, id0));
    let mut other_type = batch.clone();
    other_type[2].event_type = "Other".into();
    attempts.push(("other type", other_type, batch[2].id));
    let mut other_meta = batch.clone();
    other_meta[1].metadata = Metadata::new().with("tag", "b").with("more", "x");
    attempts.push(("other metadata", other_meta, id1));
    let mut other_corr = batch.clone();
    other_corr[1].metadata.correlation_id = Some(Uuid::new_v4());
    attempts.push(("other correlation id", other_corr, id1));
    attempts.push(("other stream", batch.clone(), id0));
    attempts.push(("prefix of the append", batch[..2].to_vec(), id0));
    attempts.push(("later event alone", vec![batch[1].clone()], id1));
    let mut extended = batch.clone();
    extended.push(ev("T", b"new".to_vec()));
    attempts.push(("append plus a new event", extended, id0));
    attempts.push((
        "new event then an old id",
        vec![ev("T", b"new".to_vec()), batch[1].clone()],
        id1,
    ));
    let mut reused_in_new = ev("T", b"fresh".to_vec());
    reused_in_new.id = id0;
    attempts.push(("old id, new content", vec![reused_in_new], id0));

    for (what, events, want_id) in attempts {
        let stream = if what == "other stream" { "b" } else { "a" };
        match s.append(stream, ExpectedVersion::Any, &events) {
            Err(Error::DuplicateEventId { id }) => assert_eq!(id, want_id, "{what}"),
            other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
        }
        assert_store_matches(&s, &m);
    }
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut other = batch.clone();
    other[0].payload = b"other".to_vec();
    assert!(matches!(
        s.append("a", ExpectedVersion::Any, &other),
        Err(Error::DuplicateEventId { id }) if id == id0
    ));
    assert_store_matches(&s, &m);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn each_bad_input_is_invalid_argument_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut m = Model::default();
    append(
        &s,
        &mut m,
        "a",
        ExpectedVersion::Any,
        &[ev("T", b"1".to_vec())],
    );
    let ok = || ev("T", b"x".to_vec());
    let dup = ok();
    let cases: Vec<(&str, String, Vec<EventData>)> =
        vec![
            ("empty stream id", String::new(), vec![ok()]),
            (
                "oversize stream id",
                "s".repeat(MAX_STREAM_ID_BYTES + 1),
                vec![ok()],
            ),
            (
                "empty event type",
                "a".into(),
                vec![ok(), ev("", b"x".to_vec())],
            ),
            (
                "oversize event type",
                "a".into(),
                vec![ev(&"t".repeat(MAX_EVENT_TYPE_BYTES + 1), b"x".to_vec())],
            ),
            (
                "event over MAX_EVENT_BYTES",
                "a".into(),
                vec![ok(), ev("T", vec![0u8; MAX_EVENT_BYTES + 1])],
            ),
            (
                "too many events",
                "a".into(),
                (0..=MAX_BATCH_EVENTS).map(|_| ok()).collect(),
            ),
            ("no events", "a".into(), vec![]),
            (
                "duplicate id in one call",
                "a".into(),
                vec![dup.clone(), ok(), dup.clone()],
            ),
            (
                "too many metadata entries",
                "a".into(),
                vec![
                    ev("T", b"x".to_vec()).with_metadata(
                        (0..=MAX_METADATA_ENTRIES)
                            .fold(Metadata::new(), |m, i| m.with(format!("k{i}"), "v")),
                    ),
                ],
            ),
            (
                "oversize metadata key",
                "a".into(),
                vec![ev("T", b"x".to_vec()).with_metadata(
                    Metadata::new().with("k".repeat(MAX_METADATA_KEY_BYTES + 1), "v"),
                )],
            ),
            (
                "batch over MAX_BATCH_BYTES",
                "a".into(),
                (0..MAX_BATCH_BYTES / (MAX_EVENT_BYTES - 64) + 1)
                    .map(|_| ev("T", vec![1u8; MAX_EVENT_BYTES - 64]))
                    .collect(),
            ),
        ];
    for (what, stream, events) in &cases {
        for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
            match s.append(stream, expected, events) {
                Err(Error::InvalidArgument(msg)) => assert!(!msg.is_empty(), "{what}"),
                other => panic!("{what}: expected InvalidArgument, got {other:?}"),
            }
            assert_store_matches(&s, &m);
        }
    }
    // Nothing of the refused appends was remembered: their events go in fine on their own.
    append(&s, &mut m, "a", ExpectedVersion::Exact(0), &[dup]);
    append(&s, &mut m, "a", ExpectedVersion::Any, &cases[2].2[..1]);
    assert_store_matches(&s, &m);
    // Exactly at the limits is fine.
    let most: Vec<_> = (0..MAX_BATCH_EVENTS).map(|_| ok()).collect();
    append(&s, &mut m, "most", ExpectedVersion::NoStream, &most);
    assert_store_matches(&s, &m);
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_store_matches(&s, &m);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        StoreOptions::new().segment_bytes(SMALL_SEGMENT_BYTES - 1),
        StoreOptions::new().segment_bytes(0),
        StoreOptions::new().segment_bytes(u64::MAX),
        StoreOptions::new().durability(Durability::Interval(Duration::ZERO)),
    ] {
        assert!(
            matches!(opts.open(dir.path()), Err(Error::InvalidArgument(_))),
            "{opts:?}"
        );
    }
    assert!(
        StoreOptions::new()
            .segment_bytes(SMALL_SEGMENT_BYTES)
            .open(dir.path())
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// Read-only
// ---------------------------------------------------------------------------------------------

#[test]
fn append_on_read_only_store_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::default();
    {
        let s = Store::open(dir.path()).unwrap();
        filter_fixture(&s, &mut m);
        s.close().unwrap();
    }
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        ro.append("a", ExpectedVersion::Any, &[ev("T", b"x".to_vec())]),
        Err(Error::ReadOnly)
    ));
    assert_store_matches(&ro, &m);
    ro.sync().unwrap();
    // A writer can open while the read-only store is open (it takes no lock) ...
    let w = Store::open(dir.path()).unwrap();
    let mut later = m.clone();
    append(
        &w,
        &mut later,
        "new",
        ExpectedVersion::NoStream,
        &[ev("T", b"n".to_vec())],
    );
    // ... and the read-only store keeps the prefix it opened with.
    assert_store_matches(&ro, &m);
    assert!(matches!(
        ro.append("a", ExpectedVersion::Any, &[ev("T", b"x".to_vec())]),
        Err(Error::ReadOnly)
    ));
    // A read-only store opened now sees the new event.
    let ro2 = Store::open_read_only(dir.path()).unwrap();
    assert_store_matches(&ro2, &later);
    ro.close().unwrap();
    ro2.close().unwrap();
    w.close().unwrap();
}

#[test]
fn read_only_open_of_a_missing_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        Store::open_read_only(&missing),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists(), "read-only open created the directory");
}

// ---------------------------------------------------------------------------------------------
// Waiting for the head
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_for_head_after_wakes_on_append_from_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Store::open(dir.path()).unwrap());
    // Generous timeouts: the assertions are on returned values, a slow machine only waits longer.
    let long = Duration::from_secs(120);

    // Empty store: waiting for any event.
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || s.wait_for_head_after(None, long))
    };
    s.append("a", ExpectedVersion::Any, &[ev("T", b"1".to_vec())])
        .unwrap();
    assert_eq!(waiter.join().unwrap(), Some(0));

    // After position 0: a batch of three makes the head 3.
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || s.wait_for_head_after(Some(0), long))
    };
    s.append(
        "b",
        ExpectedVersion::Any,
        &[
            ev("T", b"2".to_vec()),
            ev("T", b"3".to_vec()),
            ev("T", b"4".to_vec()),
        ],
    )
    .unwrap();
    assert_eq!(waiter.join().unwrap(), Some(3));

    // Waiting after an older position returns at once with the current head.
    assert_eq!(s.wait_for_head_after(Some(1), long), Some(3));
    assert_eq!(s.wait_for_head_after(None, long), Some(3));

    // With other durability levels too (the head is published on another path).
    for d in [
        Durability::Never,
        Durability::Interval(Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(StoreOptions::new().durability(d).open(dir.path()).unwrap());
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_for_head_after(None, long))
        };
        s.append("a", ExpectedVersion::Any, &[ev("T", b"1".to_vec())])
            .unwrap();
        assert_eq!(waiter.join().unwrap(), Some(0), "{d:?}");
    }
}

#[test]
fn wait_for_head_after_times_out_with_the_same_head() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let short = Duration::from_millis(20);
    assert_eq!(s.wait_for_head_after(None, short), None);
    assert_eq!(s.wait_for_head_after(None, Duration::ZERO), None);
    s.append(
        "a",
        ExpectedVersion::Any,
        &[ev("T", b"1".to_vec()), ev("T", b"2".to_vec())],
    )
    .unwrap();
    assert_eq!(s.wait_for_head_after(Some(1), short), Some(1));
    assert_eq!(s.wait_for_head_after(Some(1), Duration::ZERO), Some(1));
    // Waiting after a position beyond the head still returns the head.
    assert_eq!(s.wait_for_head_after(Some(10), short), Some(1));
    // A refused append does not move the head.
    let _ = s.append("a", ExpectedVersion::NoStream, &[ev("T", b"3".to_vec())]);
    assert_eq!(s.wait_for_head_after(Some(1), short), Some(1));
}

// ---------------------------------------------------------------------------------------------
// Durability levels
// ---------------------------------------------------------------------------------------------

#[test]
fn every_durability_level_works_and_survives_close_and_reopen() {
    for d in [
        Durability::Always,
        Durability::Never,
        Durability::Interval(Duration::from_millis(5)),
        Durability::Interval(Duration::from_secs(3600)),
    ] {
        for segment_bytes in [SMALL_SEGMENT_BYTES, 1 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let opts = StoreOptions::new()
                .durability(d)
                .segment_bytes(segment_bytes);
            let mut m = Model::default();
            let s = opts.open(dir.path()).unwrap();
            for i in 0..60usize {
                let events: Vec<_> = (0..1 + i % 3)
                    .map(|k| ev("T", vec![k as u8; 50 + i]))
                    .collect();
                append(
                    &s,
                    &mut m,
                    &format!("s-{}", i % 5),
                    ExpectedVersion::Any,
                    &events,
                );
            }
            assert_store_matches(&s, &m);
            s.sync().unwrap();
            assert_store_matches(&s, &m);
            s.close().unwrap();

            let s = opts.open(dir.path()).unwrap();
            assert_store_matches(&s, &m);
            for i in 0..20usize {
                append(
                    &s,
                    &mut m,
                    "more",
                    ExpectedVersion::Any,
                    &[ev("T", vec![1; i])],
                );
            }
            drop(s); // dropping closes too

            let s = opts.open(dir.path()).unwrap();
            assert_store_matches(&s, &m);
            let report = s.verify().unwrap();
            assert!(report.is_clean(), "{d:?}: {report:?}");
            assert_eq!(report.events, m.events.len() as u64, "{d:?}");
            // Reopening with another durability level reads the same log.
            s.close().unwrap();
            let s = Store::open(dir.path()).unwrap();
            assert_store_matches(&s, &m);
        }
    }
}

#[test]
fn long_stream_reads_across_index_refills_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .segment_bytes(64 << 10)
        .durability(Durability::Never);
    let s = opts.open(dir.path()).unwrap();
    let mut m = Model::default();
    let mut i = 0usize;
    while m.versions.get("long").is_none_or(|v| *v < 2600) {
        let events: Vec<_> = (0..1 + i % 7)
            .map(|k| ev("L", format!("{i}.{k}").into_bytes()))
            .collect();
        append(&s, &mut m, "long", ExpectedVersion::Any, &events);
        append(
            &s,
            &mut m,
            "side",
            ExpectedVersion::Any,
            &[ev("S", vec![0; 30])],
        );
        i += 1;
    }
    assert!(segment_files(dir.path()) > 2, "rolling was not exercised");
    let check = |s: &Store| {
        let last = m.versions["long"];
        for from in [
            0,
            1,
            1022,
            1023,
            1024,
            1025,
            2047,
            2048,
            2049,
            last - 1,
            last,
            last + 1,
        ]
        .into_iter()
        .chain([u64::MAX])
        {
            for limit in [1, 1024, 1025, 3000, usize::MAX] {
                for dir in [Direction::Forward, Direction::Backward] {
                    let got = read_stream(s, "long", from, dir, limit);
                    let want = m.read_stream("long", from, dir, limit);
                    assert_all_same(&got, &want, &format!("from {from} limit {limit} {dir:?}"));
                }
            }
        }
    };
    check(&s);
    s.close().unwrap();
    let s = opts.open(dir.path()).unwrap();
    check(&s);
    assert_store_matches(&s, &m);
}

#[test]
fn several_sessions_keep_reads_versions_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::default();
    let mut sent: Vec<(String, Vec<EventData>, AppendResult)> = Vec::new();
    for session in 0..4 {
        let s = Store::open(dir.path()).unwrap();
        assert_store_matches(&s, &m);
        // Re-sends of every earlier append (from this session's base index) write nothing.
        for (stream, events, r) in &sent {
            assert_eq!(s.append(stream, ExpectedVersion::Any, events).unwrap(), *r);
        }
        assert_store_matches(&s, &m);
        for i in 0..10 {
            let stream = format!("s-{}", i % 3);
            let events = batch_with_ids(&format!("{session}.{i}"), 1 + i % 3);
            let expected = match m.versions.get(&stream) {
                Some(v) => ExpectedVersion::Exact(*v),
                None => ExpectedVersion::NoStream,
            };
            let r = append(&s, &mut m, &stream, expected, &events);
            sent.push((stream, events, r));
        }
        // And re-sends of this session's appends too (base and added entries together).
        for (stream, events, r) in &sent {
            assert_eq!(s.append(stream, ExpectedVersion::Any, events).unwrap(), *r);
            let mut changed = events.clone();
            changed[0].payload.push(b'!');
            assert!(matches!(
                s.append(stream, ExpectedVersion::Any, &changed),
                Err(Error::DuplicateEventId { .. })
            ));
        }
        assert_store_matches(&s, &m);
        if session % 2 == 0 {
            s.close().unwrap();
        }
    }
    let s = Store::open(dir.path()).unwrap();
    assert_store_matches(&s, &m);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn append_at_keeps_the_given_timestamp_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = evlog::Store::open(dir.path()).unwrap();
    let r = s
        .append_at(
            "imported",
            evlog::ExpectedVersion::NoStream,
            &[evlog::EventData::new("Old", b"{}".to_vec())],
            1_234_567,
        )
        .unwrap();
    assert_eq!(r.first_position, 0);
    let ts = |s: &evlog::Store| {
        s.read_stream("imported", 0, evlog::Direction::Forward, 1)
            .next()
            .unwrap()
            .unwrap()
            .timestamp_us
    };
    assert_eq!(ts(&s), 1_234_567);
    drop(s);
    let s = evlog::Store::open(dir.path()).unwrap();
    assert_eq!(ts(&s), 1_234_567);
}
