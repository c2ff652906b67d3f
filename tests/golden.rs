//! Golden files: small stores in `format/golden/`, generated once and committed, decoded by the
//! current code. A change to the on-disk format breaks these tests; that is their purpose (see
//! `format/FORMAT.md` § 18). Regenerate only with a deliberate format change and version bump:
//!
//! ```text
//! cargo test --release --test golden -- --ignored --nocapture regenerate_golden_files
//! ```
//!
//! Then update the constants below from what the generator prints.

mod golden_common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use golden_common::{copy_of, golden_dir, read_all, sealed_data_end, segment_names};

use evlog::wire::checkpoint::{decode_checkpoint, encode_checkpoint};
use evlog::wire::frame::{FrameHeader, begin_frame, check_frame, finish_frame};
use evlog::wire::index_file::{IndexView, bloom_blocks_for, check_index_body, check_index_tables};
use evlog::wire::record::encode_record;
use evlog::wire::segment::{FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader};
use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent,
    StoreOptions, Uuid,
};

// ---------------------------------------------------------------------------------------------
// What the golden stores hold. The workload is deterministic except for timestamps; the numbers
// below were printed by the generator and are hard-coded on purpose.

/// Segment size the golden stores were written with.
const SEGMENT_BYTES: u64 = 4096;
/// Streams of the workload (one with a non-ASCII id).
const STREAMS: [&str; 4] = ["order-1", "order-2", "payment-7", "saga-ai-scoring-ü"];
/// Appends in the workload.
const APPENDS: u64 = 40;
/// Base of the event ids: event `k` of the workload has id `ID_BASE + k`.
const ID_BASE: u128 = 0x6576_6c6f_6700_4000_8000_0000_0000_0000;

/// Events in `valid/` (and in `torn-tail/` after its tail is cut).
const EVENTS: u64 = 79;
/// Events per stream in `valid/`.
const EVENTS_PER_STREAM: [(&str, u64); 4] = [
    ("order-1", 25),
    ("order-2", 12),
    ("payment-7", 28),
    ("saga-ai-scoring-ü", 14),
];
/// Events per type in `valid/`.
const EVENTS_PER_TYPE: [(&str, u64); 6] = [
    ("AIScoreCompleted", 7),
    ("AIScoreRequested", 7),
    ("OrderPaid", 12),
    ("OrderPlaced", 13),
    ("OrderShipped", 12),
    ("PaymentAuthorized", 28),
];
/// Segment files of `valid/`: (first position, sealed event count; 0 for the active segment).
const SEGMENTS: [(u64, u64); 4] = [(0, 21), (21, 24), (45, 22), (67, 0)];
/// Frames in `valid/`.
const FRAMES: u64 = 40;
/// Length of the active segment of `valid/`.
const ACTIVE_LEN: u64 = 2082;
/// Bytes of the partial frame appended to the active segment of `torn-tail/`.
const TORN_BYTES: u64 = 62;
/// The segment of `flipped-bit/` that has a flipped bit, the byte and the bit.
const FLIPPED_SEGMENT: &str = "00000000000000000021.seg";
const FLIPPED_OFFSET: u64 = 2074;
const FLIPPED_BIT: u8 = 0x10;
/// The frame holding the flipped byte: its offset and length.
const FLIPPED_FRAME: (u64, u64) = (1759, 361);

// ---------------------------------------------------------------------------------------------

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::Always)
}

/// The appends of the golden workload: (stream, events).
fn workload() -> Vec<(&'static str, Vec<EventData>)> {
    let mut out = Vec::new();
    let mut k: u64 = 0;
    for i in 0..APPENDS {
        let stream = STREAMS[((i * 7 + i / 3) % 4) as usize];
        let batch = 1 + i % 3;
        let mut events = Vec::new();
        for _ in 0..batch {
            let event_type = match stream {
                "order-1" | "order-2" => {
                    ["OrderPlaced", "OrderPaid", "OrderShipped"][(k % 3) as usize]
                }
                "payment-7" => "PaymentAuthorized",
                _ => ["AIScoreRequested", "AIScoreCompleted"][(k % 2) as usize],
            };
            let payload = if k % 17 == 5 {
                Vec::new()
            } else {
                format!(
                    r#"{{"event":{k},"stream":"{stream}","pad":"{}"}}"#,
                    "x".repeat((k * 13 % 60) as usize)
                )
                .into_bytes()
            };
            let mut m = Metadata::new();
            if k.is_multiple_of(5) {
                m = m.with_correlation_id(Uuid::from_u128(ID_BASE + 0x1_0000 + k as u128));
            }
            if k.is_multiple_of(7) {
                m = m.with_causation_id(Uuid::from_u128(ID_BASE + 0x2_0000 + k as u128));
            }
            if k.is_multiple_of(4) {
                m = m.with("user", "ada");
            }
            if k.is_multiple_of(9) {
                m = m.with("source", "golden").with("trace", format!("t-{k}"));
            }
            events.push(
                EventData::new(event_type, payload)
                    .with_id(Uuid::from_u128(ID_BASE + k as u128))
                    .with_metadata(m),
            );
            k += 1;
        }
        out.push((stream, events));
    }
    out
}

/// What reading `valid/` must give, in position order (timestamps aside).
fn expected_events() -> Vec<(String, u64, EventData)> {
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (stream, events) in workload() {
        for e in events {
            let v = versions.entry(stream).or_insert(0);
            out.push((stream.to_string(), *v, e));
            *v += 1;
        }
    }
    out
}

fn check_events(got: &[RecordedEvent]) {
    let want = expected_events();
    assert_eq!(got.len() as u64, EVENTS);
    assert_eq!(want.len() as u64, EVENTS, "the workload changed");
    // 2024-01-01T00:00:00Z: the golden files are younger than that.
    let not_before = 1_704_067_200_000_000;
    let mut prev_ts = 0;
    for (i, (g, (stream, version, e))) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.position, i as u64);
        assert_eq!(&*g.stream, stream.as_str(), "position {i}");
        assert_eq!(g.version, *version, "position {i}");
        assert_eq!(g.id, e.id, "position {i}");
        assert_eq!(*g.event_type, *e.event_type, "position {i}");
        assert_eq!(g.payload, e.payload, "position {i}");
        assert_eq!(g.metadata, e.metadata, "position {i}");
        assert!(g.timestamp_us >= not_before, "position {i}");
        assert!(
            g.timestamp_us >= prev_ts,
            "timestamps of the generator run ascend"
        );
        prev_ts = g.timestamp_us;
    }
}

/// Offset and length of every frame of a segment file (walking frames from offset 64).
fn frames_of(data: &[u8]) -> Vec<(u64, u64)> {
    let end = sealed_data_end(data).unwrap_or(data.len() as u64) as usize;
    let mut at = SEGMENT_HEADER_BYTES;
    let mut out = Vec::new();
    while at < end {
        let Ok(h) = check_frame(&data[at..end]) else {
            break;
        };
        out.push((at as u64, h.frame_len() as u64));
        at += h.frame_len();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// valid/

#[test]
fn golden_valid_segments_decode_as_specified() {
    let dir = golden_dir("valid");
    let names = segment_names(&dir);
    let want: Vec<String> = SEGMENTS
        .iter()
        .map(|(p, _)| format!("{p:020}.seg"))
        .collect();
    assert_eq!(names, want);
    let mut frames = 0;
    for (seq, (first, count)) in SEGMENTS.iter().enumerate() {
        let data = fs::read(dir.join(format!("{first:020}.seg"))).unwrap();
        let h = SegmentHeader::decode(&data).unwrap();
        assert_eq!(h.seq, seq as u64);
        assert_eq!(h.first_position, *first);
        let prev = SEGMENTS[..seq].last().map(|(p, n)| p + n - 1);
        assert_eq!(h.prev_last_position, prev);
        frames += frames_of(&data).len() as u64;
        if *count == 0 {
            assert_eq!(data.len() as u64, ACTIVE_LEN);
            assert_eq!(sealed_data_end(&data), None, "the last segment is active");
            continue;
        }
        let f = SegmentFooter::decode(&data[data.len() - FOOTER_BYTES..]).unwrap();
        assert_eq!(f.first_position, *first);
        assert_eq!(f.event_count, *count);
        assert_eq!(f.data_end, (data.len() - FOOTER_BYTES) as u64);
        assert_eq!(f.data_crc, crc32fast::hash(&data[..f.data_end as usize]));
        assert_eq!(f.frame_count, frames_of(&data).len() as u64);
        assert!(dir.join(format!("{first:020}.idx")).exists());
    }
    assert_eq!(frames, FRAMES);
    assert!(dir.join("checkpoint.idx").exists());
}

#[test]
fn golden_valid_opens_and_reads_back_every_event() {
    let t = copy_of("valid");
    let store = opts().open(t.path()).unwrap();
    assert_eq!(store.head_position(), Some(EVENTS - 1));
    assert_eq!(store.stream_count(), STREAMS.len());
    let all = read_all(&store);
    check_events(&all);
    let back: Vec<_> = store
        .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap();
    assert_eq!(back.len() as u64, EVENTS);
    assert!(back.iter().rev().zip(&all).all(|(a, b)| a == b));
    for (stream, n) in EVENTS_PER_STREAM {
        assert_eq!(store.stream_version(stream), Some(n - 1));
        let events: Vec<_> = store
            .read_stream(stream, 0, Direction::Forward, usize::MAX)
            .collect::<evlog::Result<_>>()
            .unwrap();
        assert_eq!(events.len() as u64, n, "{stream}");
        assert!(
            events
                .iter()
                .enumerate()
                .all(|(i, e)| e.version == i as u64)
        );
        let from_all: Vec<_> = all
            .iter()
            .filter(|e| &*e.stream == stream)
            .cloned()
            .collect();
        assert_eq!(events, from_all);
    }
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    for e in &all {
        *types.entry(e.event_type.to_string()).or_default() += 1;
    }
    let want: BTreeMap<String, u64> = EVENTS_PER_TYPE
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect();
    assert_eq!(types, want);
    // The store goes on: an append continues the stream and the positions.
    let r = store
        .append(
            "order-1",
            ExpectedVersion::Exact(24),
            &[EventData::new("OrderCancelled", b"{}".to_vec())],
        )
        .unwrap();
    assert_eq!(r.first_position, EVENTS);
    store.close().unwrap();
    let store = opts().open(t.path()).unwrap();
    assert_eq!(store.head_position(), Some(EVENTS));
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn golden_valid_re_send_in_the_idempotency_window_returns_the_original_result() {
    let t = copy_of("valid");
    let store = opts().open(t.path()).unwrap();
    let (stream, events) = workload().pop().unwrap();
    let r = store.append(stream, ExpectedVersion::Any, &events).unwrap();
    assert_eq!(r.last_position, EVENTS - 1);
    assert_eq!(store.head_position(), Some(EVENTS - 1), "nothing written");
}

#[test]
fn golden_valid_opens_read_only_in_place_and_verifies_clean() {
    let dir = golden_dir("valid");
    let store = StoreOptions::new().open_read_only(&dir).unwrap();
    check_events(&read_all(&store));
    drop(store);
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert!(rep.notes.is_empty(), "{rep:?}");
    assert_eq!(rep.segments, SEGMENTS.len());
    assert_eq!(rep.events, EVENTS);
    assert_eq!(rep.frames, FRAMES);
    assert_eq!(rep.streams, STREAMS.len());
}

#[test]
fn golden_valid_stats() {
    let s = evlog::stats::stats_dir(&golden_dir("valid")).unwrap();
    assert_eq!(s.events, EVENTS);
    assert_eq!(s.streams, STREAMS.len() as u64);
    assert_eq!(s.segments_sealed, SEGMENTS.len() as u64 - 1);
    assert_eq!(s.segments_active, 1);
    assert_eq!(s.head_position, Some(EVENTS - 1));
    let want: BTreeMap<String, u64> = EVENTS_PER_TYPE
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect();
    assert_eq!(s.event_types, want);
    let on_disk: u64 = fs::read_dir(golden_dir("valid"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(s.bytes_on_disk, on_disk);
    assert!(s.oldest_timestamp_us <= s.newest_timestamp_us);
}

// ---------------------------------------------------------------------------------------------
// torn-tail/

fn active_name() -> String {
    format!("{:020}.seg", SEGMENTS[SEGMENTS.len() - 1].0)
}

#[test]
fn golden_torn_tail_is_cut_on_open() {
    let active = active_name();
    let golden_len = fs::metadata(golden_dir("torn-tail").join(&active))
        .unwrap()
        .len();
    assert_eq!(golden_len, ACTIVE_LEN + TORN_BYTES);
    let t = copy_of("torn-tail");
    let store = opts().open(t.path()).unwrap();
    assert_eq!(store.head_position(), Some(EVENTS - 1));
    check_events(&read_all(&store));
    assert_eq!(
        fs::metadata(t.path().join(&active)).unwrap().len(),
        ACTIVE_LEN,
        "the torn tail is cut back to the last whole frame"
    );
    // The position of the torn frame is reused by the next append: it was never acknowledged.
    let r = store
        .append(
            "order-1",
            ExpectedVersion::Exact(24),
            &[EventData::new("OrderCancelled", b"{}".to_vec())],
        )
        .unwrap();
    assert_eq!(r.first_position, EVENTS);
    store.close().unwrap();
    assert!(evlog::verify_dir(t.path()).unwrap().is_clean());
}

#[test]
fn golden_torn_tail_read_only_open_ignores_the_tail_and_verify_notes_it() {
    let dir = golden_dir("torn-tail");
    let store = StoreOptions::new().open_read_only(&dir).unwrap();
    check_events(&read_all(&store));
    drop(store);
    assert_eq!(
        fs::metadata(dir.join(active_name())).unwrap().len(),
        ACTIVE_LEN + TORN_BYTES,
        "a read-only open changes nothing"
    );
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!(rep.events, EVENTS);
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("torn tail") && n.contains(&format!("byte {ACTIVE_LEN}"))),
        "{rep:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// flipped-bit/

#[test]
fn golden_flipped_bit_differs_from_valid_in_one_bit_of_the_named_frame() {
    let valid = fs::read(golden_dir("valid").join(FLIPPED_SEGMENT)).unwrap();
    let flipped = fs::read(golden_dir("flipped-bit").join(FLIPPED_SEGMENT)).unwrap();
    assert_eq!(valid.len(), flipped.len());
    let diff: Vec<usize> = (0..valid.len())
        .filter(|&i| valid[i] != flipped[i])
        .collect();
    assert_eq!(diff, vec![FLIPPED_OFFSET as usize]);
    assert_eq!(valid[diff[0]] ^ flipped[diff[0]], FLIPPED_BIT);
    let frame = frames_of(&valid)
        .into_iter()
        .find(|(at, len)| (*at..at + len).contains(&FLIPPED_OFFSET))
        .unwrap();
    assert_eq!(frame, FLIPPED_FRAME);
    let dir = golden_dir("flipped-bit");
    assert!(!dir.join("checkpoint.idx").exists());
    assert!(!dir.join(FLIPPED_SEGMENT.replace(".seg", ".idx")).exists());
}

fn in_flipped_frame(offset: u64) -> bool {
    (FLIPPED_FRAME.0..FLIPPED_FRAME.0 + FLIPPED_FRAME.1).contains(&offset)
}

#[test]
fn golden_flipped_bit_fails_open_naming_the_file_and_frame() {
    let t = copy_of("flipped-bit");
    let err = opts().open(t.path()).unwrap_err();
    match &err {
        Error::Corrupted { file, offset, .. } => {
            assert_eq!(file, &t.path().join(FLIPPED_SEGMENT), "{err}");
            assert!(in_flipped_frame(*offset), "{err}");
        }
        other => panic!("expected Error::Corrupted, got {other}"),
    }
    // The message tells the operator what to do.
    let msg = err.to_string();
    assert!(
        msg.contains(FLIPPED_SEGMENT) && msg.contains("evlog verify"),
        "{msg}"
    );
    // A read-only open fails the same way.
    let err = StoreOptions::new().open_read_only(t.path()).unwrap_err();
    assert!(
        matches!(err, Error::Corrupted { ref offset, .. } if in_flipped_frame(*offset)),
        "{err}"
    );
}

#[test]
fn golden_flipped_bit_is_reported_by_verify() {
    let dir = golden_dir("flipped-bit");
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(!rep.is_clean());
    let seg = dir.join(FLIPPED_SEGMENT);
    assert!(
        rep.problems
            .iter()
            .any(|p| p.file == seg && in_flipped_frame(p.offset)),
        "{rep:?}"
    );
    assert!(
        rep.problems.iter().all(|p| p.file == seg),
        "only the damaged segment has problems: {rep:?}"
    );
}

#[test]
fn golden_flipped_bit_repair_cuts_at_the_damaged_frame() {
    let t = copy_of("flipped-bit");
    let store = opts().repair(true).open(t.path()).unwrap();
    let all = read_all(&store);
    let kept = all.len() as u64;
    // Everything before the damaged frame is kept, nothing after it.
    let valid = fs::read(golden_dir("valid").join(FLIPPED_SEGMENT)).unwrap();
    let first = SegmentHeader::decode(&valid).unwrap().first_position;
    let frames_before = frames_of(&valid)
        .into_iter()
        .take_while(|(at, _)| *at < FLIPPED_FRAME.0)
        .count();
    assert!(
        kept >= first + frames_before as u64 && kept < EVENTS,
        "kept {kept}"
    );
    let want = expected_events();
    for (g, (stream, version, e)) in all.iter().zip(&want) {
        assert_eq!(
            (&*g.stream, g.version, g.id),
            (stream.as_str(), *version, e.id)
        );
    }
    let corrupt: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".corrupt"))
        .collect();
    assert!(
        corrupt
            .iter()
            .any(|n| n.starts_with(&format!("{FLIPPED_SEGMENT}.{}", FLIPPED_FRAME.0))),
        "{corrupt:?}"
    );
    drop(store);
    assert!(evlog::verify_dir(t.path()).unwrap().is_clean());
}

// ---------------------------------------------------------------------------------------------
// Index files and the checkpoint of valid/.

/// Checks an index (of a `.idx` file or a checkpoint) of the segment starting at `first` against
/// the segment bytes `seg` and the workload (event at position p has id `ID_BASE + p`).
fn check_index(idx: &[u8], seg: &[u8], first: u64, covered_len: u64) {
    let v = IndexView::new(idx).unwrap();
    check_index_body(idx, &v.header).unwrap();
    let h = v.header;
    assert_eq!(h.first_position, first);
    assert_eq!(u64::from(h.covered_len), covered_len);
    assert_eq!(h.covered_crc, crc32fast::hash(&seg[..covered_len as usize]));
    assert_eq!(h.bloom_blocks, bloom_blocks_for(h.event_count as usize));
    let frames: Vec<(u64, u64)> = frames_of(&seg[..covered_len as usize]);
    assert_eq!(h.frame_count as usize, frames.len());
    let want = expected_events();
    let mut events = 0;
    for (i, (at, _)) in frames.iter().enumerate() {
        let fh = FrameHeader::decode(&seg[*at as usize..]).unwrap();
        let f = v.frame(i);
        assert_eq!(
            (u64::from(f.rel_first), u64::from(f.offset)),
            (fh.first_position - first, *at)
        );
        events += fh.count;
    }
    assert_eq!(h.event_count, events);
    let mut prev = None;
    for i in 0..h.event_count as usize {
        let e = v.entry(i);
        let (stream, version, _) = &want[(first + u64::from(e.rel_pos)) as usize];
        assert_eq!(
            (e.hash, e.version),
            (evlog::wire::stream_hash(stream), *version)
        );
        let f = v.frame_for(e.rel_pos).unwrap();
        assert_eq!(e.frame_offset, f.offset);
        let key = (e.hash, e.version, e.rel_pos);
        assert!(
            prev < Some(key),
            "stream table sorted by (hash, version, rel_pos)"
        );
        prev = Some(key);
    }
    for p in first..first + u64::from(h.event_count) {
        let id = Uuid::from_u128(ID_BASE + u128::from(p));
        assert_eq!(v.find_id(id.as_bytes()), Some((p - first) as u32));
        assert!(v.may_contain_id(id.as_bytes()));
    }
    check_name_tables(&v, first);
}

/// The name tables (§ 8.4) of an index with them: every event type of the segment, sorted,
/// with exactly the positions of its events, and every stream id, sorted.
fn check_name_tables(v: &IndexView<'_>, first: u64) {
    if !v.has_names() {
        return;
    }
    let want = expected_events();
    let mut types: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut streams: BTreeSet<&str> = BTreeSet::new();
    for rel in 0..v.header.event_count {
        let (stream, _, data) = &want[(first + u64::from(rel)) as usize];
        types.entry(&data.event_type).or_default().push(rel);
        streams.insert(stream);
    }
    assert_eq!(v.type_count(), types.len());
    for (i, (name, rels)) in types.iter().enumerate() {
        assert_eq!(v.type_name(i), name.as_bytes());
        let got: Vec<u32> = v.type_events(i).map(|j| v.type_event(j).rel_pos).collect();
        assert_eq!(&got, rels, "{name}");
        for j in v.type_events(i) {
            let e = v.type_event(j);
            assert_eq!(
                Some(e.frame_offset),
                v.frame_for(e.rel_pos).map(|f| f.offset)
            );
        }
    }
    let got: Vec<&[u8]> = (0..v.stream_count()).map(|i| v.stream_name(i)).collect();
    let want: Vec<&[u8]> = streams.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(got, want);
}

#[test]
fn golden_valid_index_files_decode_as_specified() {
    let dir = golden_dir("valid");
    for (first, count) in SEGMENTS.iter().filter(|(_, n)| *n > 0) {
        let seg = fs::read(dir.join(format!("{first:020}.seg"))).unwrap();
        let idx = fs::read(dir.join(format!("{first:020}.idx"))).unwrap();
        let data_end = (seg.len() - FOOTER_BYTES) as u64;
        check_index(&idx, &seg, *first, data_end);
        assert!(
            IndexView::new(&idx).unwrap().has_names(),
            "a sealed segment's"
        );
        assert_eq!(
            u64::from(IndexView::new(&idx).unwrap().header.event_count),
            *count
        );
    }
}

#[test]
fn golden_valid_checkpoint_decodes_as_specified() {
    let dir = golden_dir("valid");
    let b = fs::read(dir.join("checkpoint.idx")).unwrap();
    let c = decode_checkpoint(&b).unwrap();
    assert_eq!(c.next_position, EVENTS);
    let mut streams: Vec<(&str, u64)> = c.streams.iter().collect();
    streams.sort();
    let want: Vec<(&str, u64)> = EVENTS_PER_STREAM.iter().map(|(s, n)| (*s, n - 1)).collect();
    assert_eq!(streams, want);
    // It covers the whole active segment, and names its last frame.
    let (first, _) = SEGMENTS[SEGMENTS.len() - 1];
    let seg = fs::read(dir.join(format!("{first:020}.seg"))).unwrap();
    check_index(c.index, &seg, first, ACTIVE_LEN);
    assert!(
        !IndexView::new(c.index).unwrap().has_names(),
        "the checkpoint's"
    );
    let t = &seg[seg.len() - 8..];
    assert_eq!(
        c.last_frame_header_crc,
        u32::from_le_bytes(t[4..8].try_into().unwrap())
    );
}

/// Rewrites every index of a store (`.idx` files and the checkpoint's) without the id Bloom
/// filter, as indexes were written before it existed (`format/FORMAT.md` § 19):
/// `bloom_blocks` = 0, no filter (the name tables that follow it, § 8.4, are kept).
fn strip_bloom_filters(dir: &Path) {
    fn strip(idx: &[u8]) -> Vec<u8> {
        let h = IndexView::new(idx).unwrap().header;
        let bloom_at = 64 + 8 * h.frame_count as usize + 44 * h.event_count as usize;
        let mut old = idx.to_vec();
        old.drain(bloom_at..bloom_at + 64 * h.bloom_blocks as usize);
        old[40..44].fill(0);
        let body_crc = crc32fast::hash(&old[64..]);
        old[36..40].copy_from_slice(&body_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&old[0..60]);
        old[60..64].copy_from_slice(&header_crc.to_le_bytes());
        old
    }
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "checkpoint.idx" {
            let b = fs::read(&p).unwrap();
            let c = decode_checkpoint(&b).unwrap();
            let nb = encode_checkpoint(
                c.next_position,
                c.last_frame_header_crc,
                c.streams.iter(),
                &strip(c.index),
                None,
            );
            fs::write(&p, nb).unwrap();
        } else if name.ends_with(".idx") {
            let b = fs::read(&p).unwrap();
            fs::write(&p, strip(&b)).unwrap();
        }
    }
}

#[test]
fn golden_valid_with_indexes_written_before_the_bloom_filter_opens_and_reads() {
    let t = copy_of("valid");
    strip_bloom_filters(t.path());
    for e in fs::read_dir(t.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "idx") && !p.ends_with("checkpoint.idx") {
            let b = fs::read(&p).unwrap();
            let h = IndexView::new(&b).unwrap().header;
            check_index_tables(&b, &h).unwrap();
        }
    }
    let store = opts().open(t.path()).unwrap();
    check_events(&read_all(&store));
    let paid = ReadFilter::all().event_types(["OrderPaid"]);
    assert_eq!(store.read_all(0, Direction::Forward, paid).count(), 12);
    // Re-sends are still recognised (the id lookup without a filter).
    let (stream, events) = workload().pop().unwrap();
    let r = store.append(stream, ExpectedVersion::Any, &events).unwrap();
    assert_eq!(r.last_position, EVENTS - 1);
    assert_eq!(store.head_position(), Some(EVENTS - 1));
}

// ---------------------------------------------------------------------------------------------
// Bugs found while writing the specification (see the test names and ignore reasons).

#[test]
fn damaged_index_body_is_rebuilt_not_fatal() {
    // Found while writing the spec (fixed since): a damaged .idx body made every read through it
    // fail. An index is a cache: reads rebuild it in memory, verify reports it, and a repairing
    // open rewrites it.
    let t = copy_of("valid");
    let idx = t.path().join("00000000000000000000.idx");
    let mut b = fs::read(&idx).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x01; // inside the stream or id table; the header still matches the footer
    fs::write(&idx, &b).unwrap();
    let store = opts().open(t.path()).unwrap();
    check_events(&read_all(&store));
    drop(store);
    let rep = evlog::verify_dir(t.path()).unwrap();
    assert!(rep.problems.iter().any(|p| p.file == idx), "{rep:?}");
    drop(opts().repair(true).open(t.path()).unwrap());
    assert!(evlog::verify_dir(t.path()).unwrap().is_clean());
    assert_eq!(
        fs::read(&idx).unwrap(),
        fs::read(golden_dir("valid").join("00000000000000000000.idx")).unwrap()
    );
}

/// Appends `frame` to the active segment of a copy of `valid/` and returns the copy and the
/// segment's path.
fn valid_with_frame_appended(frame: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let t = copy_of("valid");
    let active = t.path().join(active_name());
    let mut data = fs::read(&active).unwrap();
    data.extend_from_slice(frame);
    fs::write(&active, &data).unwrap();
    (t, active)
}

/// A whole frame of one event at position `EVENTS` (version 25 of "order-1").
fn next_frame() -> Vec<u8> {
    let mut frame = Vec::new();
    let start = begin_frame(&mut frame);
    let e = EventData::new("OrderCancelled", b"{}".to_vec())
        .with_id(Uuid::from_u128(ID_BASE + u128::from(EVENTS)));
    encode_record(&mut frame, "order-1", 25, 1_750_000_000_000_000, &e);
    finish_frame(&mut frame, start, EVENTS, 1, EVENTS);
    frame
}

#[test]
fn a_whole_frame_after_the_checkpoint_is_kept() {
    // The positive case of the next test: a complete v1 frame that the checkpoint does not
    // cover (written after the last close) is found by the scan and kept.
    let (t, _) = valid_with_frame_appended(&next_frame());
    let store = opts().open(t.path()).unwrap();
    assert_eq!(store.head_position(), Some(EVENTS));
    assert_eq!(store.stream_version("order-1"), Some(25));
}

#[test]
fn unknown_frame_version_at_the_tail_is_refused_not_cut() {
    let mut frame = next_frame();
    frame[4] = 4; // frame version 4 (1 and 3 are written by appends, 2 by compaction)
    let header_crc = crc32fast::hash(&frame[0..28]);
    frame[28..32].copy_from_slice(&header_crc.to_le_bytes());
    let n = frame.len();
    frame[n - 4..].copy_from_slice(&header_crc.to_le_bytes());
    let (t, active) = valid_with_frame_appended(&frame);
    let r = opts().open(t.path());
    let len = fs::metadata(&active).unwrap().len();
    assert_eq!(len, ACTIVE_LEN + n as u64, "the newer frame was cut");
    assert!(
        r.is_err(),
        "open accepted a store with a frame of an unknown version"
    );
}

#[test]
fn lost_earlier_unsynced_frame_is_recovered_as_a_torn_tail() {
    // Simulate: frames at positions EVENTS and EVENTS + 1 written, not fsynced; the page with
    // the middle of the first never reached the disk (zeros), the second did. No checkpoint
    // covers them (a checkpoint is written only after an fsync).
    let mut a = next_frame();
    let mut b = Vec::new();
    let start = begin_frame(&mut b);
    let e = EventData::new("OrderCancelled", b"{}".to_vec())
        .with_id(Uuid::from_u128(ID_BASE + u128::from(EVENTS) + 1));
    encode_record(&mut b, "order-1", 26, 1_750_000_000_000_000, &e);
    // Frame a was not yet durable when b was written.
    finish_frame(&mut b, start, EVENTS + 1, 1, EVENTS);
    let mid = a.len() / 2;
    a[mid..mid + 8].fill(0);
    a.extend_from_slice(&b);
    let (t, _) = valid_with_frame_appended(&a);
    let store = opts().open(t.path()).unwrap();
    assert_eq!(store.head_position(), Some(EVENTS - 1));
}

// ---------------------------------------------------------------------------------------------
// The generator.

#[test]
#[ignore = "writes format/golden/; run only for a deliberate format change"]
fn regenerate_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("format/golden");
    for d in ["valid", "torn-tail", "flipped-bit"] {
        let _ = fs::remove_dir_all(root.join(d));
    }
    let valid = root.join("valid");
    fs::create_dir_all(&valid).unwrap();
    {
        let store = opts().open(&valid).unwrap();
        for (stream, events) in workload() {
            store.append(stream, ExpectedVersion::Any, &events).unwrap();
        }
        store.close().unwrap();
    }
    // The lock file is not part of the format's data; open creates it.
    fs::remove_file(valid.join(evlog::store::LOCK_FILE_NAME)).unwrap();

    let copy = |to: &str| {
        let d = root.join(to);
        fs::create_dir_all(&d).unwrap();
        for e in fs::read_dir(&valid).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    };

    // torn-tail: the first half of one more frame at the end of the active segment.
    let torn = copy("torn-tail");
    let names = segment_names(&torn);
    let active = torn.join(names.last().unwrap());
    let store = StoreOptions::new().open_read_only(&valid).unwrap();
    let next = store.head_position().unwrap() + 1;
    let version = store.stream_version("order-1").unwrap() + 1;
    drop(store);
    let mut frame = Vec::new();
    let start = begin_frame(&mut frame);
    let e = EventData::new("OrderCancelled", br#"{"reason":"torn"}"#.to_vec())
        .with_id(Uuid::from_u128(ID_BASE + u128::from(next)));
    encode_record(&mut frame, "order-1", version, 1_750_000_000_000_000, &e);
    finish_frame(&mut frame, start, next, 1, next);
    let partial = &frame[..frame.len() / 2];
    let mut data = fs::read(&active).unwrap();
    let active_len = data.len();
    data.extend_from_slice(partial);
    fs::write(&active, &data).unwrap();

    // flipped-bit: one bit in the middle of the second segment (sealed); its index and the
    // checkpoint removed, so that open must read the damaged frame.
    let flipped = copy("flipped-bit");
    let seg_name = names[1].clone();
    let seg = flipped.join(&seg_name);
    let mut data = fs::read(&seg).unwrap();
    let offset = data.len() / 2;
    data[offset] ^= FLIPPED_BIT;
    fs::write(&seg, &data).unwrap();
    fs::remove_file(flipped.join(seg_name.replace(".seg", ".idx"))).unwrap();
    fs::remove_file(flipped.join("checkpoint.idx")).unwrap();
    let valid_seg = fs::read(valid.join(&seg_name)).unwrap();
    let frame = frames_of(&valid_seg)
        .into_iter()
        .find(|(at, len)| (*at..at + len).contains(&(offset as u64)))
        .unwrap();

    // What to hard-code above.
    let store = StoreOptions::new().open_read_only(&valid).unwrap();
    let all = read_all(&store);
    let mut per_stream: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    for e in &all {
        *per_stream.entry(e.stream.to_string()).or_default() += 1;
        *per_type.entry(e.event_type.to_string()).or_default() += 1;
    }
    println!("EVENTS = {}", all.len());
    println!("EVENTS_PER_STREAM = {per_stream:?}");
    println!("EVENTS_PER_TYPE = {per_type:?}");
    let mut frames = 0;
    for n in &names {
        let d = fs::read(valid.join(n)).unwrap();
        frames += frames_of(&d).len();
        let count = sealed_data_end(&d)
            .map(|_| {
                SegmentFooter::decode(&d[d.len() - FOOTER_BYTES..])
                    .unwrap()
                    .event_count
            })
            .unwrap_or(0);
        println!("segment {n}: {} bytes, sealed event count {count}", d.len());
    }
    println!("FRAMES = {frames}");
    println!("ACTIVE_LEN = {active_len}");
    println!("TORN_BYTES = {}", partial.len());
    println!("FLIPPED_SEGMENT = {seg_name}, FLIPPED_OFFSET = {offset}, FLIPPED_FRAME = {frame:?}");
    let total: u64 = ["valid", "torn-tail", "flipped-bit"]
        .iter()
        .flat_map(|d| fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!("total golden bytes = {total}");
    assert!(total < 100 << 10, "golden files must stay small");
}
