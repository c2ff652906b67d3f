//! Model test: random sequences of operations against a store and against a plain in-memory
//! model (a `Vec` of events and a map stream → version), compared after every step.
//!
//! Operations: appends (single events and batches, several streams, right and wrong expected
//! versions of every kind), idempotent re-sends of an earlier append (unchanged → the original
//! result and nothing written; changed content, another stream, fewer or more events → the
//! errors the API promises; older than the idempotency window → a new append), reads
//! (`read_stream` both ways with limits, `read_all` both ways with type and prefix filters), a
//! read-only open beside the writer, reopen (close + open), and a crash: the directory is copied
//! while the store is open (every append is `Durability::Always`, so acknowledged appends are
//! in the copy), and the test goes on from the copy. Segments are 4 KiB so that they roll often.
//! Every case ends with a full comparison, `verify` and a clean close.
//!
//! ```text
//! cargo test --release --test model -- --nocapture              # 10,000 cases
//! EVLOG_MODEL_CASES=100000 cargo test --release --test model -- --nocapture
//! PROPTEST_RNG_SEED=42 cargo test --release --test model       # a fixed seed
//! ```
//!
//! Stores are created under `/dev/shm` when it exists (the model checks logic, not the disk;
//! fsync on tmpfs is free), or under `EVLOG_MODEL_DIR`, or the system temp dir.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use evlog::{
    AppendResult, Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter,
    RecordedEvent, Store, StoreOptions, Uuid,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

/// Cases per run (default [`DEFAULT_CASES`]).
const CASES_ENV: &str = "EVLOG_MODEL_CASES";
const DEFAULT_CASES: u32 = 10_000;
/// Directory to create the stores in.
const DIR_ENV: &str = "EVLOG_MODEL_DIR";
/// Longest operation sequence of a case.
const OPS_PER_CASE: usize = 32;

const SEGMENT_BYTES: u64 = 4096;
/// Streams; "s-1" is a prefix of "s-10", and one id is not ASCII.
const STREAMS: [&str; 4] = ["s-1", "s-10", "s-2", "t-ü"];
/// Prefixes for `read_all` filters.
const PREFIXES: [&str; 4] = ["s-", "s-1", "t", "x"];
const TYPES: [&str; 3] = ["A", "B", "C"];

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::Always)
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// An event to generate: its id comes from the case's counter.
#[derive(Debug, Clone)]
struct Ev {
    ty: u8,
    payload_len: u16,
    seed: u8,
    /// Bit 0: correlation id; bit 1: causation id; bit 2: one user key; bit 3: a second one;
    /// bit 4: opaque metadata bytes (a version-3 frame).
    meta: u8,
}

/// An expected version, resolved against the stream's current version when the op runs.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The right one: `NoStream` for a new stream, else `Exact(current)`.
    Right,
    Any,
    NoStream,
    StreamExists,
    /// `Exact(current + off)` (`Exact(off)` for a new stream), saturating at 0.
    Exact(i8),
}

/// How a re-send differs from the append it re-sends.
#[derive(Debug, Clone, Copy)]
enum Change {
    None,
    /// One more payload byte on event `i % n`.
    Payload(u8),
    /// Another type on event `i % n`.
    Type(u8),
    /// A correlation id toggled on event `i % n`.
    Meta(u8),
    /// Sent to stream `s` (may be the same).
    Stream(u8),
    /// Without its first event (when it has more than one).
    DropFirst,
    /// With a new event before the others.
    PrependNew,
    /// With a new event after the others.
    AppendNew,
    /// With its first event twice.
    DupWithin,
}

#[derive(Debug, Clone, Copy)]
enum ReadFrom {
    Start,
    At(u8),
    End,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: u8,
        events: Vec<Ev>,
        expect: Expect,
    },
    Resend {
        which: u16,
        change: Change,
        expect: Expect,
    },
    ReadStream {
        stream: u8,
        from: ReadFrom,
        backward: bool,
        limit: Option<u8>,
    },
    ReadAll {
        from: ReadFrom,
        backward: bool,
        types: Option<Vec<u8>>,
        prefix: Option<u8>,
    },
    ReadOnly,
    Reopen,
    Crash,
}

fn ev() -> impl Strategy<Value = Ev> {
    let len = prop_oneof![
        8 => 0u16..200,
        2 => 200u16..1200,
        1 => 1200u16..4500,
    ];
    (0u8..3, len, any::<u8>(), 0u8..32).prop_map(|(ty, payload_len, seed, meta)| Ev {
        ty,
        payload_len,
        seed,
        meta,
    })
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        12 => Just(Expect::Right),
        2 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::StreamExists),
        2 => (-2i8..=2).prop_map(Expect::Exact),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        6 => Just(Change::None),
        1 => any::<u8>().prop_map(Change::Payload),
        1 => any::<u8>().prop_map(Change::Type),
        1 => any::<u8>().prop_map(Change::Meta),
        1 => (0u8..4).prop_map(Change::Stream),
        1 => Just(Change::DropFirst),
        1 => Just(Change::PrependNew),
        1 => Just(Change::AppendNew),
        1 => Just(Change::DupWithin),
    ]
}

fn read_from() -> impl Strategy<Value = ReadFrom> {
    prop_oneof![
        Just(ReadFrom::Start),
        any::<u8>().prop_map(ReadFrom::At),
        Just(ReadFrom::End),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let batch = prop_oneof![
        3 => vec(ev(), 1..=1),
        2 => vec(ev(), 2..=4),
        1 => vec(ev(), 5..=12),
    ];
    prop_oneof![
        40 => (0u8..4, batch, expect()).prop_map(|(stream, events, expect)| Op::Append {
            stream,
            events,
            expect,
        }),
        14 => (any::<u16>(), change(), expect()).prop_map(|(which, change, expect)| Op::Resend {
            which,
            change,
            expect,
        }),
        10 => (0u8..4, read_from(), any::<bool>(), prop::option::of(0u8..6)).prop_map(
            |(stream, from, backward, limit)| Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            }
        ),
        10 => (
            read_from(),
            any::<bool>(),
            prop::option::of(vec(0u8..3, 0..=2)),
            prop::option::of(0u8..4)
        )
            .prop_map(|(from, backward, types, prefix)| Op::ReadAll {
                from,
                backward,
                types,
                prefix,
            }),
        4 => Just(Op::ReadOnly),
        6 => Just(Op::Reopen),
        5 => Just(Op::Crash),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone)]
struct ModelEvent {
    stream: &'static str,
    version: u64,
    data: EventData,
    timestamp_us: u64,
}

/// One successful append (one frame).
#[derive(Debug, Clone)]
struct Frame {
    stream: &'static str,
    first_position: u64,
    events: Vec<EventData>,
    result: AppendResult,
}

#[derive(Default)]
struct Model {
    events: Vec<ModelEvent>,
    versions: HashMap<&'static str, u64>,
    frames: Vec<Frame>,
}

/// What the model says an append returns.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A new frame is written.
    Written(AppendResult),
    /// A re-send: the original result, nothing written.
    Original(AppendResult),
    WrongExpectedVersion(Option<u64>),
    DuplicateEventId(Uuid),
    InvalidArgument,
}

fn same_content(a: &EventData, b: &EventData) -> bool {
    a.id == b.id
        && a.event_type == b.event_type
        && a.payload == b.payload
        && a.metadata == b.metadata
}

impl Model {
    /// The frame holding the latest stored copy of `id` inside the idempotency window (the
    /// active and the last sealed segment: positions from `window_start`).
    fn lookup(&self, id: Uuid, window_start: u64) -> Option<(usize, u64)> {
        self.frames
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, f)| f.first_position >= window_start)
            .find_map(|(i, f)| {
                f.events
                    .iter()
                    .position(|e| e.id == id)
                    .map(|k| (i, f.first_position + k as u64))
            })
    }

    /// What appending `events` to `stream` at `expected` does (see `Store::append` and
    /// FORMAT.md § 14).
    fn outcome(
        &self,
        stream: &'static str,
        expected: ExpectedVersion,
        events: &[EventData],
        window_start: u64,
    ) -> Outcome {
        let mut ids = std::collections::HashSet::new();
        if !events.iter().all(|e| ids.insert(e.id)) {
            return Outcome::InvalidArgument;
        }
        match self.lookup(events[0].id, window_start) {
            Some((fi, p0)) => {
                let f = &self.frames[fi];
                if f.first_position != p0 || f.events.len() != events.len() {
                    return Outcome::DuplicateEventId(events[0].id);
                }
                for (stored, e) in f.events.iter().zip(events) {
                    if f.stream != stream || !same_content(stored, e) {
                        return Outcome::DuplicateEventId(e.id);
                    }
                }
                return Outcome::Original(f.result);
            }
            None => {
                if let Some(e) = events[1..]
                    .iter()
                    .find(|e| self.lookup(e.id, window_start).is_some())
                {
                    return Outcome::DuplicateEventId(e.id);
                }
            }
        }
        let actual = self.versions.get(stream).copied();
        if !expected.matches(actual) {
            return Outcome::WrongExpectedVersion(actual);
        }
        let first_version = actual.map_or(0, |v| v + 1);
        let first_position = self.events.len() as u64;
        let n = events.len() as u64;
        Outcome::Written(AppendResult {
            first_position,
            last_position: first_position + n - 1,
            next_expected_version: first_version + n - 1,
        })
    }

    /// Stream events as `read_stream(stream, from, direction, limit)` returns them.
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        backward: bool,
        limit: usize,
    ) -> Vec<(u64, &ModelEvent)> {
        let all = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.stream == stream)
            .map(|(p, e)| (p as u64, e));
        if backward {
            let mut v: Vec<_> = all.filter(|(_, e)| e.version <= from).collect();
            v.reverse();
            v.truncate(limit);
            v
        } else {
            all.filter(|(_, e)| e.version >= from).take(limit).collect()
        }
    }

    fn read_all(&self, from: u64, backward: bool, filter: &ReadFilter) -> Vec<(u64, &ModelEvent)> {
        let all = self
            .events
            .iter()
            .enumerate()
            .map(|(p, e)| (p as u64, e))
            .filter(|(_, e)| filter.matches(e.stream, &e.data.event_type));
        if backward {
            let mut v: Vec<_> = all.filter(|(p, _)| *p <= from).collect();
            v.reverse();
            v
        } else {
            all.filter(|(p, _)| *p >= from).collect()
        }
    }
}

fn check_event(got: &RecordedEvent, position: u64, want: &ModelEvent, what: &str) {
    assert_eq!(got.position, position, "{what}: position");
    assert_eq!(&*got.stream, want.stream, "{what}: stream at {position}");
    assert_eq!(got.version, want.version, "{what}: version at {position}");
    assert_eq!(got.id, want.data.id, "{what}: id at {position}");
    assert_eq!(
        *got.event_type, *want.data.event_type,
        "{what}: type at {position}"
    );
    assert_eq!(
        got.payload, want.data.payload,
        "{what}: payload at {position}"
    );
    assert_eq!(
        got.metadata, want.data.metadata,
        "{what}: metadata at {position}"
    );
    assert_eq!(
        got.timestamp_us, want.timestamp_us,
        "{what}: timestamp at {position}"
    );
}

fn check_list(got: Vec<RecordedEvent>, want: &[(u64, &ModelEvent)], what: &str) {
    assert_eq!(
        got.iter().map(|e| e.position).collect::<Vec<_>>(),
        want.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        "{what}: positions returned"
    );
    for (g, (p, w)) in got.iter().zip(want) {
        check_event(g, *p, w, what);
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// Counts over the whole run, printed at the end.
#[derive(Default)]
struct Stats {
    cases: AtomicU64,
    ops: AtomicU64,
    written: AtomicU64,
    events: AtomicU64,
    originals: AtomicU64,
    resent_anew: AtomicU64,
    wrong_version: AtomicU64,
    duplicate_id: AtomicU64,
    invalid: AtomicU64,
    reads: AtomicU64,
    read_only: AtomicU64,
    reopens: AtomicU64,
    crashes: AtomicU64,
    segments: AtomicU64,
}

static STATS: Stats = Stats {
    cases: AtomicU64::new(0),
    ops: AtomicU64::new(0),
    written: AtomicU64::new(0),
    events: AtomicU64::new(0),
    originals: AtomicU64::new(0),
    resent_anew: AtomicU64::new(0),
    wrong_version: AtomicU64::new(0),
    duplicate_id: AtomicU64::new(0),
    invalid: AtomicU64::new(0),
    reads: AtomicU64::new(0),
    read_only: AtomicU64::new(0),
    reopens: AtomicU64::new(0),
    crashes: AtomicU64::new(0),
    segments: AtomicU64::new(0),
};

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn temp_root() -> tempfile::TempDir {
    if let Some(d) = std::env::var_os(DIR_ENV) {
        return tempfile::tempdir_in(d).unwrap();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(t) = tempfile::tempdir_in(shm)
    {
        return t;
    }
    tempfile::tempdir().unwrap()
}

/// First positions of the segment files of `dir`, ascending.
fn segment_starts(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            let stem = name.strip_suffix(".seg")?;
            (stem.len() == 20).then(|| stem.parse().ok()).flatten()
        })
        .collect();
    v.sort_unstable();
    v
}

struct Case {
    _root: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    copies: u32,
    store: Option<Store>,
    model: Model,
    next_id: u64,
}

impl Case {
    fn new() -> Case {
        let root = temp_root();
        let dir = root.path().join("store-0");
        let store = opts().open(&dir).unwrap();
        Case {
            root: root.path().to_path_buf(),
            _root: root,
            dir,
            copies: 0,
            store: Some(store),
            model: Model::default(),
            next_id: 1,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn event(&mut self, e: &Ev) -> EventData {
        let id = Uuid::from_u64_pair(0x6d6f_6465_6c00_0000, self.next_id);
        self.next_id += 1;
        let payload: Vec<u8> = (0..e.payload_len as usize)
            .map(|i| e.seed.wrapping_add((i * 7) as u8))
            .collect();
        let mut m = Metadata::new();
        if e.meta & 1 != 0 {
            m = m.with_correlation_id(Uuid::from_u64_pair(1, self.next_id));
        }
        if e.meta & 2 != 0 {
            m = m.with_causation_id(Uuid::from_u64_pair(2, self.next_id));
        }
        if e.meta & 4 != 0 {
            m = m.with("user", format!("u{}", e.seed));
        }
        if e.meta & 8 != 0 {
            m = m.with("source", "model-ü");
        }
        if e.meta & 16 != 0 {
            m = m.with_bytes(vec![e.seed, 0xff, 0]);
        }
        EventData::new(TYPES[e.ty as usize], payload)
            .with_id(id)
            .with_metadata(m)
    }

    fn resolve(&self, stream: &str, e: Expect) -> ExpectedVersion {
        let current = self.model.versions.get(stream).copied();
        match e {
            Expect::Right => current.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::StreamExists => ExpectedVersion::StreamExists,
            Expect::Exact(off) => ExpectedVersion::Exact(match current {
                Some(v) => v.saturating_add_signed(off.into()),
                None => off.max(0) as u64,
            }),
        }
    }

    /// Appends through the store and the model and compares what they did.
    /// `resend`: the events are an earlier append's, perhaps changed.
    fn append(
        &mut self,
        stream: &'static str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
        resend: bool,
    ) {
        let starts = segment_starts(&self.dir);
        let window_start = if starts.len() >= 2 {
            starts[starts.len() - 2]
        } else {
            0
        };
        let want = self.model.outcome(stream, expected, &events, window_start);
        let head_before = self.store().head_position();
        let got = self.store().append(stream, expected, &events);
        let what = format!(
            "append to {stream} at {expected} of {} events",
            events.len()
        );
        match (&want, &got) {
            (Outcome::Written(w), Ok(g)) | (Outcome::Original(w), Ok(g)) => {
                assert_eq!(g, w, "{what}: result")
            }
            (
                Outcome::WrongExpectedVersion(actual),
                Err(Error::WrongExpectedVersion {
                    stream: s,
                    expected: e,
                    actual: a,
                }),
            ) => {
                assert_eq!((s.as_str(), *e, *a), (stream, expected, *actual), "{what}");
            }
            (Outcome::DuplicateEventId(w), Err(Error::DuplicateEventId { id })) => {
                assert_eq!(id, w, "{what}: the duplicate id named")
            }
            (Outcome::InvalidArgument, Err(Error::InvalidArgument(_))) => {}
            _ => panic!("{what}: the model says {want:?}, the store returned {got:?}"),
        }
        match want {
            Outcome::Written(r) => {
                bump(&STATS.written);
                if resend {
                    // Older than the idempotency window: written again as a new append.
                    bump(&STATS.resent_anew);
                }
                STATS
                    .events
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                // Read the new events back to learn their timestamp (the model cannot know it).
                let back: Vec<RecordedEvent> = self
                    .store()
                    .read_all(r.first_position, Direction::Forward, ReadFilter::all())
                    .collect::<evlog::Result<_>>()
                    .unwrap();
                assert_eq!(back.len(), events.len(), "{what}: events read back");
                let ts = back[0].timestamp_us;
                let first_version = r.next_expected_version + 1 - events.len() as u64;
                for (k, (e, b)) in events.iter().zip(&back).enumerate() {
                    let m = ModelEvent {
                        stream,
                        version: first_version + k as u64,
                        data: e.clone(),
                        timestamp_us: ts,
                    };
                    check_event(b, r.first_position + k as u64, &m, &what);
                    self.model.events.push(m);
                }
                self.model.versions.insert(stream, r.next_expected_version);
                self.model.frames.push(Frame {
                    stream,
                    first_position: r.first_position,
                    events,
                    result: r,
                });
            }
            other => {
                match other {
                    Outcome::Original(_) => bump(&STATS.originals),
                    Outcome::WrongExpectedVersion(_) => bump(&STATS.wrong_version),
                    Outcome::DuplicateEventId(_) => bump(&STATS.duplicate_id),
                    _ => bump(&STATS.invalid),
                }
                assert_eq!(
                    self.store().head_position(),
                    head_before,
                    "{what}: nothing may be written"
                );
            }
        }
    }

    fn resend(&mut self, which: u16, change: Change, expect: Expect) {
        if self.model.frames.is_empty() {
            return;
        }
        let f = self.model.frames[which as usize % self.model.frames.len()].clone();
        let mut stream = f.stream;
        let mut events = f.events.clone();
        let n = events.len();
        match change {
            Change::None => {}
            Change::Payload(i) => events[i as usize % n].payload.push(0xA5),
            Change::Type(i) => {
                let e = &mut events[i as usize % n];
                e.event_type = if e.event_type == "A" { "B" } else { "A" }.into();
            }
            Change::Meta(i) => {
                let m = &mut events[i as usize % n].metadata;
                m.correlation_id = match m.correlation_id {
                    Some(_) => None,
                    None => Some(Uuid::from_u64_pair(3, 3)),
                };
            }
            Change::Stream(s) => stream = STREAMS[s as usize],
            Change::DropFirst => {
                if n > 1 {
                    events.remove(0);
                }
            }
            Change::PrependNew => {
                let e = self.event(&Ev {
                    ty: 0,
                    payload_len: 3,
                    seed: 1,
                    meta: 0,
                });
                events.insert(0, e);
            }
            Change::AppendNew => {
                let e = self.event(&Ev {
                    ty: 1,
                    payload_len: 5,
                    seed: 2,
                    meta: 1,
                });
                events.push(e);
            }
            Change::DupWithin => events.push(events[0].clone()),
        }
        let expected = self.resolve(stream, expect);
        self.append(stream, expected, events, true);
    }

    fn read_stream(&self, stream: &str, from: ReadFrom, backward: bool, limit: Option<u8>) {
        let from = match from {
            ReadFrom::Start => 0,
            ReadFrom::At(k) => u64::from(k % 16),
            ReadFrom::End => u64::MAX,
        };
        let limit = limit.map_or(usize::MAX, usize::from);
        let dir = if backward {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let got: Vec<RecordedEvent> = self
            .store()
            .read_stream(stream, from, dir, limit)
            .collect::<evlog::Result<_>>()
            .unwrap();
        let want = self.model.read_stream(stream, from, backward, limit);
        check_list(
            got,
            &want,
            &format!("read_stream({stream}, {from}, {dir:?}, {limit})"),
        );
    }

    fn read_all(&self, from: ReadFrom, backward: bool, types: Option<Vec<u8>>, prefix: Option<u8>) {
        let len = self.model.events.len() as u64;
        let from = match from {
            ReadFrom::Start => 0,
            ReadFrom::At(k) => u64::from(k) % (len + 3),
            ReadFrom::End => u64::MAX,
        };
        let mut filter = ReadFilter::all();
        if let Some(t) = types {
            filter = filter.event_types(t.iter().map(|t| TYPES[*t as usize]));
        }
        if let Some(p) = prefix {
            filter = filter.stream_prefix(PREFIXES[p as usize]);
        }
        let dir = if backward {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let got: Vec<RecordedEvent> = self
            .store()
            .read_all(from, dir, filter.clone())
            .collect::<evlog::Result<_>>()
            .unwrap();
        let want = self.model.read_all(from, backward, &filter);
        check_list(
            got,
            &want,
            &format!("read_all({from}, {dir:?}, {filter:?})"),
        );
    }

    /// Compares everything the store holds with the model.
    fn check_all(&self, s: &Store, what: &str) {
        assert_eq!(
            s.head_position(),
            (self.model.events.len() as u64).checked_sub(1),
            "{what}: head position"
        );
        let got: Vec<RecordedEvent> = s
            .read_all(0, Direction::Forward, ReadFilter::all())
            .collect::<evlog::Result<_>>()
            .unwrap();
        let want = self.model.read_all(0, false, &ReadFilter::all());
        check_list(got, &want, what);
        // The borrowed metadata of every event says what the model's owned metadata says.
        let mut n = 0;
        s.replay(0, u64::MAX, &ReadFilter::all(), |e| {
            let (_, w) = want[n];
            let m = &w.data.metadata;
            assert_eq!(
                e.correlation_id(),
                m.correlation_id,
                "{what}: at {}",
                e.position
            );
            assert_eq!(
                e.causation_id(),
                m.causation_id,
                "{what}: at {}",
                e.position
            );
            assert!(
                e.metadata_entries().eq(m.extra.iter()),
                "{what}: at {}",
                e.position
            );
            for (k, v) in m.extra.iter() {
                assert_eq!(e.metadata_value(k), Some(v), "{what}: at {}", e.position);
            }
            assert_eq!(
                e.metadata_bytes(),
                m.bytes.as_slice(),
                "{what}: at {}",
                e.position
            );
            n += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(n, want.len(), "{what}: replay");
        for st in STREAMS {
            assert_eq!(
                s.stream_version(st),
                self.model.versions.get(st).copied(),
                "{what}: version of {st}"
            );
        }
        assert_eq!(
            s.stream_count(),
            self.model.versions.len(),
            "{what}: streams"
        );
    }

    fn read_only(&self) {
        let ro = opts().open_read_only(&self.dir).unwrap();
        self.check_all(&ro, "read-only open beside the writer");
        let back: Vec<RecordedEvent> = ro
            .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
            .collect::<evlog::Result<_>>()
            .unwrap();
        let want = self.model.read_all(u64::MAX, true, &ReadFilter::all());
        check_list(back, &want, "read-only open, backward");
    }

    fn reopen(&mut self) {
        self.store.take().unwrap().close().unwrap();
        let rep = evlog::verify_dir(&self.dir).unwrap();
        assert!(rep.is_clean(), "verify after close: {:?}", rep.problems);
        self.store = Some(opts().open(&self.dir).unwrap());
        self.check_all(self.store(), "after reopen");
    }

    /// The directory as a crash right now would leave it: copied while the store is open.
    fn crash(&mut self) {
        self.copies += 1;
        let copy = self.root.join(format!("store-{}", self.copies));
        std::fs::create_dir(&copy).unwrap();
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
            }
        }
        // The original store closes into its own directory, which is left behind.
        drop(self.store.take());
        self.dir = copy;
        self.store = Some(opts().open(&self.dir).unwrap());
        self.check_all(self.store(), "after a crash");
    }

    fn run(&mut self, op: &Op) {
        bump(&STATS.ops);
        match op {
            Op::Append {
                stream,
                events,
                expect,
            } => {
                let stream = STREAMS[*stream as usize];
                let events: Vec<EventData> = events.iter().map(|e| self.event(e)).collect();
                let expected = self.resolve(stream, *expect);
                self.append(stream, expected, events, false);
            }
            Op::Resend {
                which,
                change,
                expect,
            } => self.resend(*which, *change, *expect),
            Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            } => {
                bump(&STATS.reads);
                self.read_stream(STREAMS[*stream as usize], *from, *backward, *limit)
            }
            Op::ReadAll {
                from,
                backward,
                types,
                prefix,
            } => {
                bump(&STATS.reads);
                self.read_all(*from, *backward, types.clone(), *prefix)
            }
            Op::ReadOnly => {
                bump(&STATS.read_only);
                self.read_only()
            }
            Op::Reopen => {
                bump(&STATS.reopens);
                self.reopen()
            }
            Op::Crash => {
                bump(&STATS.crashes);
                self.crash()
            }
        }
    }

    fn finish(mut self) {
        self.check_all(self.store(), "at the end");
        let rep = self.store().verify().unwrap();
        assert!(rep.is_clean(), "verify at the end: {:?}", rep.problems);
        STATS
            .segments
            .fetch_add(segment_starts(&self.dir).len() as u64, Ordering::Relaxed);
        self.store.take().unwrap().close().unwrap();
    }
}

fn run_case(ops: &[Op]) {
    bump(&STATS.cases);
    let mut case = Case::new();
    for op in ops {
        case.run(op);
    }
    case.finish();
}

#[test]
fn store_agrees_with_the_model() {
    let cases = std::env::var(CASES_ENV)
        .ok()
        .map(|v| v.parse().expect("EVLOG_MODEL_CASES is a number"))
        .unwrap_or(DEFAULT_CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    // Shrinking runs many failing cases; their panic messages would bury the minimal one,
    // which is printed below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = runner.run(&vec(op(), 1..=OPS_PER_CASE), |ops| {
        run_case(&ops);
        Ok(())
    });
    std::panic::set_hook(hook);
    let s = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "model: {} cases, {} operations: {} appends written ({} events), {} re-sends returned the \
         original, {} re-sends older than the window written anew, {} wrong expected versions, {} duplicate ids, {} invalid, {} reads, {} \
         read-only opens, {} reopens, {} crashes; {} segments at the ends of cases",
        s(&STATS.cases),
        s(&STATS.ops),
        s(&STATS.written),
        s(&STATS.events),
        s(&STATS.originals),
        s(&STATS.resent_anew),
        s(&STATS.wrong_version),
        s(&STATS.duplicate_id),
        s(&STATS.invalid),
        s(&STATS.reads),
        s(&STATS.read_only),
        s(&STATS.reopens),
        s(&STATS.crashes),
        s(&STATS.segments),
    );
    println!("model: took {:.1} s", started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!("model test failed: {why}\nminimal failing operations:\n{ops:#?}")
        }
        Err(TestError::Abort(why)) => panic!("model test aborted: {why}"),
    }
}
