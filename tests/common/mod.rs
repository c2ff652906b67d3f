//! Helpers shared by the recovery, replay and filtered read tests: building stores, copying and damaging their files,
//! walking frames independently of the library, and checking what a store returns.
//!
//! The byte offsets here are taken from the format described in `src/wire/*` (segment header
//! 64 bytes, frame header 32, frame trailer 8, footer 64). They are written out on purpose
//! instead of being imported, so that a test notices if the library's idea of the format moves.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use evlog::{
    AppendResult, Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter,
    RecordedEvent, Store, StoreOptions, Uuid,
};
use tempfile::TempDir;

/// Size of a segment header; the first frame starts here.
pub const SEG_HEADER_BYTES: u64 = 64;
/// Size of a sealed segment's footer.
pub const FOOTER_BYTES: u64 = 64;
/// Size of a frame header.
pub const FRAME_HEADER_BYTES: u64 = 32;
/// Size of a frame trailer.
pub const FRAME_TRAILER_BYTES: u64 = 8;
/// Name of the checkpoint file.
pub const CHECKPOINT: &str = "checkpoint.idx";

/// Small segments so that a few hundred events make several of them.
pub fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Always)
}

/// The streams the generated workload appends to.
pub const STREAMS: [&str; 6] = [
    "order-1",
    "order-2",
    "account-7",
    "saga/ai-score",
    "oracle-feed",
    "audit",
];

/// A deterministic-size event: payload and metadata vary with `i`, the id is random.
pub fn make_event(i: u64) -> EventData {
    let pad = "x".repeat((i * 7 % 41) as usize);
    let payload = format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes();
    let mut e = EventData::new(format!("Type{}", i % 3), payload);
    if i.is_multiple_of(5) {
        e = e.with_metadata(
            Metadata::new()
                .with_correlation_id(Uuid::new_v4())
                .with("user", format!("u{i}")),
        );
    }
    if i.is_multiple_of(11) {
        e.payload.clear();
    }
    e
}

/// One acknowledged append.
#[derive(Debug, Clone)]
pub struct Ack {
    pub stream: String,
    pub result: AppendResult,
}

/// Appends a workload to `store`: `appends` calls over [`STREAMS`], every fourth one a batch,
/// with a mix of expected-version conditions. `model` holds each stream's last version and
/// `counter` numbers events; both carry over between calls.
pub fn populate(
    store: &Store,
    appends: usize,
    model: &mut HashMap<String, u64>,
    counter: &mut u64,
) -> Vec<Ack> {
    let mut acks = Vec::with_capacity(appends);
    for a in 0..appends {
        let stream = STREAMS[(*counter as usize + a) % STREAMS.len()];
        let n = if a % 4 == 0 { 1 + (a / 4) % 4 } else { 1 };
        let events: Vec<EventData> = (0..n as u64).map(|k| make_event(*counter + k)).collect();
        *counter += n as u64;
        let prev = model.get(stream).copied();
        let expected = match prev {
            None => ExpectedVersion::NoStream,
            Some(v) if a % 2 == 0 => ExpectedVersion::Exact(v),
            Some(_) if a % 3 == 0 => ExpectedVersion::StreamExists,
            Some(_) => ExpectedVersion::Any,
        };
        let result = store.append(stream, expected, &events).unwrap();
        let first_version = prev.map_or(0, |v| v + 1);
        assert_eq!(result.next_expected_version, first_version + n as u64 - 1);
        assert_eq!(result.last_position - result.first_position, n as u64 - 1);
        model.insert(stream.to_string(), result.next_expected_version);
        acks.push(Ack {
            stream: stream.to_string(),
            result,
        });
    }
    acks
}

/// Appends one more event to `stream` with the exact expected version the store reports, and
/// checks the result follows `expect_position`.
pub fn append_one(store: &Store, stream: &str, i: u64, expect_position: u64) -> AppendResult {
    let prev = store.stream_version(stream);
    let expected = prev.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let r = store.append(stream, expected, &[make_event(i)]).unwrap();
    assert_eq!(r.first_position, expect_position, "position after reopen");
    assert_eq!(r.next_expected_version, prev.map_or(0, |v| v + 1));
    r
}

/// A store built in two sessions, with an image of it as a crash would leave it and as a clean
/// close leaves it.
///
/// Session 1 appends most events and closes (so a checkpoint covers a prefix of the active
/// segment). Session 2 appends a few single events and finally a batch of three (the "last
/// append"), all in the same active segment; the crash image is copied while session 2 is
/// still open, then session 2 closes cleanly.
pub struct Image {
    _root: TempDir,
    /// The store after a clean close: the checkpoint covers the whole active segment.
    pub clean: PathBuf,
    /// The store copied while open after the last append was acknowledged: its checkpoint
    /// covers only what session 1 wrote.
    pub crash: PathBuf,
    /// Every event, in position order, as read back before the images were taken.
    pub all: Vec<RecordedEvent>,
    /// The last append.
    pub last: Ack,
    /// Length of the active segment when session 1 closed (what the crash image's checkpoint
    /// covers).
    pub session1_active_len: u64,
}

impl Image {
    /// Events acknowledged before the last append.
    pub fn before_last(&self) -> Vec<RecordedEvent> {
        self.all
            .iter()
            .filter(|e| e.position < self.last.result.first_position)
            .cloned()
            .collect()
    }
}

/// Builds an [`Image`] of about 250 events over 6 streams in several 4 KiB segments.
pub fn build_image() -> Image {
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    let crash = root.path().join("crash");
    let mut model = HashMap::new();
    let mut counter = 0;
    {
        let s = opts().open(&clean).unwrap();
        populate(&s, 150, &mut model, &mut counter);
        // Leave the active segment with a few frames and room for session 2.
        loop {
            let active = segments(&clean).pop().unwrap();
            let frames = frames_of(&active);
            if frames.len() >= 3 && frames.last().unwrap().1 <= 2600 {
                break;
            }
            populate(&s, 1, &mut model, &mut counter);
        }
        s.close().unwrap();
    }
    let segs_before = segments(&clean);
    assert!(segs_before.len() >= 5, "want several segments");
    let session1_active_len = file_len(segs_before.last().unwrap());
    assert!(
        frames_of(segs_before.last().unwrap()).len() >= 2,
        "want frames in the active segment before session 2"
    );
    let s = opts().open(&clean).unwrap();
    populate(&s, 3, &mut model, &mut counter);
    let stream = "order-2";
    let events: Vec<EventData> = (0..3).map(|k| make_event(counter + k)).collect();
    counter += 3;
    let _ = counter;
    let prev = model[stream];
    let result = s
        .append(stream, ExpectedVersion::Exact(prev), &events)
        .unwrap();
    let last = Ack {
        stream: stream.to_string(),
        result,
    };
    assert_eq!(
        segments(&clean),
        segs_before,
        "session 2 must not roll the active segment"
    );
    let all = read_all(&s);
    assert_eq!(all.len() as u64, result.last_position + 1);
    assert_dense(&all);
    copy_dir(&clean, &crash);
    s.close().unwrap();
    let rep = evlog::verify_dir(&clean).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    Image {
        _root: root,
        clean,
        crash,
        all,
        last,
        session1_active_len,
    }
}

/// Copies every regular file of `src` into `dst` (created).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// A fresh temporary copy of `src`; the store is at `.1`.
pub fn fresh_copy(src: &Path) -> (TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("store");
    copy_dir(src, &d);
    (t, d)
}

/// Segment files of `dir`, ascending.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    v.sort();
    v
}

/// Files of `dir` whose name ends with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    v.sort();
    v
}

/// Index file paired with a segment file.
pub fn idx_of(seg: &Path) -> PathBuf {
    seg.with_extension("idx")
}

pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).unwrap().len()
}

/// True when the file ends with a sealed segment footer (magic "EVLOGEND" 64 bytes from the end).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.len() >= (SEG_HEADER_BYTES + FOOTER_BYTES) as usize
        && &bytes[bytes.len() - FOOTER_BYTES as usize..][..8] == b"EVLOGEND"
}

/// Frames of a segment file as `(start, end)` byte ranges, walked from the header with the
/// frame lengths (checked against each trailer), stopping at the footer of a sealed segment
/// and at the zeros a durable writer writes ahead of its frames.
pub fn frames_of(path: &Path) -> Vec<(u64, u64)> {
    let b = fs::read(path).unwrap();
    let end = if is_sealed(&b) {
        b.len() - FOOTER_BYTES as usize
    } else {
        b.len()
    };
    let mut out = Vec::new();
    let mut at = SEG_HEADER_BYTES as usize;
    while at + FRAME_HEADER_BYTES as usize <= end {
        if b[at..end].iter().all(|&x| x == 0) {
            return out;
        }
        assert_eq!(&b[at..at + 4], b"EVFR", "frame magic at {at} in {path:?}");
        let body_len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let len = body_len + (FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES) as usize;
        if at + len > end {
            break;
        }
        let trailer_len =
            u32::from_le_bytes(b[at + len - 8..at + len - 4].try_into().unwrap()) as usize;
        assert_eq!(trailer_len, len, "frame trailer at {at} in {path:?}");
        out.push((at as u64, (at + len) as u64));
        at += len;
    }
    assert_eq!(at, end, "frames of {path:?} do not end at the data end");
    out
}

/// First position of the frame at `start` in `path` (header bytes 16..24).
pub fn frame_first_position(path: &Path, start: u64) -> u64 {
    let b = fs::read(path).unwrap();
    let s = start as usize;
    u64::from_le_bytes(b[s + 16..s + 24].try_into().unwrap())
}

/// Event count of the frame at `start` in `path` (header bytes 12..16).
pub fn frame_count(path: &Path, start: u64) -> u64 {
    let b = fs::read(path).unwrap();
    let s = start as usize;
    u64::from(u32::from_le_bytes(b[s + 12..s + 16].try_into().unwrap()))
}

/// Flips bit `bit` of byte `offset` of `path`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut b = fs::read(path).unwrap();
    b[offset as usize] ^= 1 << bit;
    fs::write(path, b).unwrap();
}

pub fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// Every event, forward.
pub fn read_all(s: &Store) -> Vec<RecordedEvent> {
    s.read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap()
}

/// Every event, backward from the head.
pub fn read_all_backward(s: &Store) -> Vec<RecordedEvent> {
    s.read_all(u64::MAX, Direction::Backward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap()
}

pub fn read_stream(s: &Store, stream: &str, direction: Direction) -> Vec<RecordedEvent> {
    let from = match direction {
        Direction::Forward => 0,
        Direction::Backward => u64::MAX,
    };
    s.read_stream(stream, from, direction, usize::MAX)
        .collect::<evlog::Result<_>>()
        .unwrap()
}

/// Positions are 0.. without gaps; each stream's versions are 0.. without gaps.
pub fn assert_dense(events: &[RecordedEvent]) {
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as u64, "positions are dense");
        let want = versions.get(&*e.stream).map_or(0, |v| v + 1);
        assert_eq!(e.version, want, "versions of {} are dense", e.stream);
        versions.insert(&e.stream, e.version);
    }
}

/// Checks that `s` holds exactly `expected` (every field of every event), through every read
/// path: forward and backward over the log, forward and backward per stream, the stream table
/// and the head.
pub fn assert_store_holds(s: &Store, expected: &[RecordedEvent]) {
    assert_dense(expected);
    assert_eq!(
        s.head_position(),
        (expected.len() as u64).checked_sub(1),
        "head position"
    );
    let got = read_all(s);
    assert_eq!(got.len(), expected.len(), "number of events");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e, "event at position {}", e.position);
    }
    let mut back = read_all_backward(s);
    back.reverse();
    assert!(back == expected, "backward read differs");
    let mut by_stream: BTreeMap<&str, Vec<RecordedEvent>> = BTreeMap::new();
    for e in expected {
        by_stream.entry(&e.stream).or_default().push(e.clone());
    }
    assert_eq!(s.stream_count(), by_stream.len(), "stream count");
    for stream in STREAMS {
        let want = by_stream.get(stream).cloned().unwrap_or_default();
        assert_eq!(
            s.stream_version(stream),
            want.last().map(|e| e.version),
            "version of {stream}"
        );
        let fwd = read_stream(s, stream, Direction::Forward);
        assert!(fwd == want, "forward read of {stream} differs");
        let mut bwd = read_stream(s, stream, Direction::Backward);
        bwd.reverse();
        assert!(bwd == want, "backward read of {stream} differs");
    }
}

/// The file and offset of an `Error::Corrupted`; panics on anything else.
pub fn expect_corrupted<T: std::fmt::Debug>(r: evlog::Result<T>, ctx: &str) -> (PathBuf, u64) {
    match r {
        Err(Error::Corrupted { file, offset, .. }) => (file, offset),
        Err(e) => panic!("{ctx}: expected Error::Corrupted, got: {e}"),
        Ok(v) => panic!("{ctx}: expected Error::Corrupted, got Ok({v:?})"),
    }
}

/// Asserts that verify lists a problem for `file`.
pub fn assert_verify_flags(dir: &Path, file: &Path, ctx: &str) {
    let rep = evlog::verify_dir(dir).unwrap();
    assert!(
        rep.problems.iter().any(|p| p.file == file),
        "{ctx}: verify_dir lists no problem for {file:?}: {rep:?}"
    );
}

/// Asserts verify finds nothing wrong.
pub fn assert_verify_clean(dir: &Path, ctx: &str) {
    let rep = evlog::verify_dir(dir).unwrap();
    assert!(rep.is_clean(), "{ctx}: verify_dir: {:?}", rep.problems);
}

/// The events `Store::replay` hands out for `from..to` and `filter` (owned), and the position
/// it ended at; checks that it counted them and was not stopped.
pub fn replayed(
    store: &Store,
    from: u64,
    to: u64,
    filter: &ReadFilter,
) -> (Vec<RecordedEvent>, u64) {
    let mut out = Vec::new();
    let end = store
        .replay(from, to, filter, |e| {
            out.push(e.to_owned_event());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(end.events as usize, out.len());
    assert!(!end.stopped);
    (out, end.next_position)
}

/// Runs `cmd`, a child process whose stdout is piped here, and kills it with SIGKILL after
/// `kill_after` (`None`: lets it end by itself, which it must do successfully). Returns the text
/// after `marker` of every whole stdout line holding it, and whether SIGKILL ended the child.
/// (The kill -9 tests run their own test binary as the child.)
pub fn run_child(
    mut cmd: std::process::Command,
    marker: &str,
    kill_after: Option<std::time::Duration>,
) -> (Vec<String>, bool) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd.spawn().expect("spawn the child");
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let marker = marker.to_owned();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find(&marker) {
                lines.push(line[at + marker.len()..].to_owned());
            }
        }
        lines
    });
    if let Some(after) = kill_after {
        std::thread::sleep(after);
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for the child");
    if kill_after.is_none() {
        assert!(status.success(), "the last child failed: {status}");
    }
    let lines = reader.join().expect("the stdout reader");
    (lines, status.signal() == Some(9))
}

/// The rounds of a kill -9 test (`rounds_env`, or `default`) and a seed from the clock.
pub fn kill9_rounds_and_seed(rounds_env: &str, default: u64) -> (u64, u64) {
    let rounds = std::env::var(rounds_env)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (rounds, seed)
}

/// This test binary run as the child of the kill -9 test `test_name`, on the store in `dir`
/// (passed in `dir_env`), its stdout piped for [`run_child`].
pub fn kill9_child(test_name: &str, dir_env: &str, dir: &Path) -> std::process::Command {
    use std::process::Stdio;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(dir_env, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}
