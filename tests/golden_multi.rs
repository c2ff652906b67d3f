//! Golden store of frame version 3 (`FRAME_VERSION_MULTI`, `format/FORMAT.md` § 5.4):
//! `format/golden/multi/`, generated once and committed, decoded by the current code. The stores
//! of `tests/golden.rs` hold only version-1 frames; this one holds `Store::append_multi` frames
//! over several streams and frames with opaque metadata bytes (`FLAG_META_BYTES`) next to
//! ordinary version-1 frames, so a change that breaks decoding version 3 on disk fails here.
//! Regenerate only with a deliberate format change and version bump:
//!
//! ```text
//! cargo test --release --all-features --test golden_multi -- --ignored --nocapture regenerate_golden_multi
//! ```
//!
//! Then update the constants below from what the generator prints.

mod golden_common;

use std::collections::BTreeMap;
use std::fs;
use std::ops::ControlFlow;
use std::path::Path;

use golden_common::{copy_of, golden_dir, read_all, sealed_data_end, segment_names};

use evlog::wire::checkpoint::decode_checkpoint;
use evlog::wire::frame::{
    FRAME_VERSION, FRAME_VERSION_MULTI, FrameHeader, check_frame, frame_body,
};
use evlog::wire::index_file::{IndexView, check_index_body};
use evlog::wire::record::Records;
use evlog::wire::segment::{FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader};
use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent,
    Store, StoreOptions, Uuid,
};

// ---------------------------------------------------------------------------------------------
// What the golden store holds. The workload is deterministic except for timestamps; the numbers
// below were printed by the generator and are hard-coded on purpose.

/// Segment size the store was written with.
const SEGMENT_BYTES: u64 = 4096;
/// Streams of the workload (one with a non-ASCII id).
const STREAMS: [&str; 5] = ["cart-3", "inventory-9", "shipment-5", "ledger-ü-€", "audit"];
/// Appends in the workload: each one `Store::append` or `Store::append_multi`, one frame.
const OPS: usize = 40;
/// Base of the event ids: event `k` of the workload (at position `k`) has id `ID_BASE + k`.
const ID_BASE: u128 = 0x6576_6c6f_6733_4000_8000_0000_0000_0000;

/// Events in the store.
const EVENTS: u64 = 151;
/// Events per stream.
const EVENTS_PER_STREAM: [(&str, u64); 5] = [
    ("audit", 28),
    ("cart-3", 32),
    ("inventory-9", 32),
    ("ledger-ü-€", 31),
    ("shipment-5", 28),
];
/// Events per type.
const EVENTS_PER_TYPE: [(&str, u64); 8] = [
    ("AuditNoted", 28),
    ("CartOpened", 13),
    ("CheckedOut", 8),
    ("ItemAdded", 11),
    ("LedgerPosted", 31),
    ("ShipmentBooked", 28),
    ("StockReleased", 16),
    ("StockReserved", 16),
];
/// Events with opaque metadata bytes.
const EVENTS_WITH_META_BYTES: u64 = 42;
/// Segment files: (first position, sealed event count (0 for the active segment), version-1
/// frames, version-3 frames).
const SEGMENTS: [(u64, u64, u64, u64); 7] = [
    (0, 24, 3, 4),
    (24, 25, 3, 4),
    (49, 24, 2, 4),
    (73, 22, 3, 3),
    (95, 22, 2, 3),
    (117, 25, 2, 5),
    (142, 0, 1, 1),
];
/// Frames of each version in the store.
const V1_FRAMES: u64 = 16;
const V3_FRAMES: u64 = 24;
/// End of the last frame of the active segment (what the checkpoint covers).
const ACTIVE_LEN: u64 = 1482;
/// Length of the active segment's file: its frames and the zeros ahead a close leaves.
const ACTIVE_FILE_LEN: u64 = 4096;

// ---------------------------------------------------------------------------------------------

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::Always)
}

/// Every file of a directory with its bytes.
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// One append of the workload: its parts (stream, events), one for `Store::append`, two to four
/// (distinct streams) for `Store::append_multi`.
type Op = Vec<(&'static str, Vec<EventData>)>;

fn event_type(stream: &str, k: u64) -> &'static str {
    match stream {
        "cart-3" => ["CartOpened", "ItemAdded", "CheckedOut"][(k % 3) as usize],
        "inventory-9" => ["StockReserved", "StockReleased"][(k % 2) as usize],
        "shipment-5" => "ShipmentBooked",
        "ledger-ü-€" => "LedgerPosted",
        _ => "AuditNoted",
    }
}

/// The opaque metadata bytes of event `k` (of an append that carries them): JSON text for some,
/// arbitrary binary (zeros, 0xff, not UTF-8) for the others, 1 to 40 bytes.
fn meta_bytes(k: u64) -> Vec<u8> {
    if k % 10 == 2 {
        return format!(r#"{{"schema":"v2","k":{k},"tag":"ü"}}"#).into_bytes();
    }
    let mut b = Vec::new();
    if k.is_multiple_of(3) {
        b.extend_from_slice(&[0x00, 0xff, 0xfe]);
    }
    b.extend((0..1 + k % 29).map(|j| {
        (k as u8)
            .wrapping_mul(37)
            .wrapping_add((j as u8).wrapping_mul(101))
    }));
    b
}

/// The appends of the golden workload. Op `i` by `i % 5`: 0 and 3 a single-stream append without
/// metadata bytes (version 1), 1 an `append_multi` without metadata bytes, 2 a single-stream
/// append with metadata bytes on some events, 4 an `append_multi` with metadata bytes on some
/// events (version 3).
fn workload() -> Vec<Op> {
    let mut out = Vec::new();
    let mut k: u64 = 0;
    for i in 0..OPS {
        let kind = i % 5;
        let streams: Vec<&'static str> = if kind == 1 || kind == 4 {
            let n = 2 + (i / 5) % 3;
            let start = (i * 3 + i / 7) % STREAMS.len();
            (0..n)
                .map(|j| STREAMS[(start + 2 * j) % STREAMS.len()])
                .collect()
        } else {
            vec![STREAMS[(i * 7 + i / 3) % STREAMS.len()]]
        };
        let with_bytes = kind == 2 || kind == 4;
        let mut op = Vec::new();
        for (j, stream) in streams.iter().enumerate() {
            let batch = 1 + (i + j) % 3;
            let mut events = Vec::new();
            for b in 0..batch {
                let payload = if k % 13 == 6 {
                    Vec::new()
                } else {
                    format!(
                        r#"{{"event":{k},"stream":"{stream}","pad":"{}"}}"#,
                        "y".repeat((k * 7 % 40) as usize)
                    )
                    .into_bytes()
                };
                let mut m = Metadata::new();
                if k.is_multiple_of(5) {
                    m = m.with_correlation_id(Uuid::from_u128(ID_BASE + 0x1_0000 + k as u128));
                }
                if k % 7 == 3 {
                    m = m.with_causation_id(Uuid::from_u128(ID_BASE + 0x2_0000 + k as u128));
                }
                if k % 4 == 1 {
                    m = m.with("user", "grace");
                }
                if k.is_multiple_of(6) {
                    m = m
                        .with("source", "golden-multi")
                        .with("trace", format!("t-{k}"));
                }
                if with_bytes && ((j == 0 && b == 0) || k.is_multiple_of(2)) {
                    m = m.with_bytes(meta_bytes(k));
                }
                events.push(
                    EventData::new(event_type(stream, k), payload)
                        .with_id(Uuid::from_u128(ID_BASE + k as u128))
                        .with_metadata(m),
                );
                k += 1;
            }
            op.push((*stream, events));
        }
        out.push(op);
    }
    out
}

/// The frame version an append of `op` writes (§ 5.4).
fn frame_version(op: &Op) -> u8 {
    let bytes = op
        .iter()
        .any(|(_, es)| es.iter().any(|e| !e.metadata.bytes.is_empty()));
    if op.len() > 1 || bytes {
        FRAME_VERSION_MULTI
    } else {
        FRAME_VERSION
    }
}

/// The frames the workload writes, in order: (version, first position, event count).
fn expected_frames() -> Vec<(u8, u64, u32)> {
    let mut at = 0;
    workload()
        .iter()
        .map(|op| {
            let n: usize = op.iter().map(|(_, es)| es.len()).sum();
            let f = (frame_version(op), at, n as u32);
            at += n as u64;
            f
        })
        .collect()
}

/// What reading the store must give, in position order (timestamps aside): (stream, version,
/// event).
fn expected_events() -> Vec<(String, u64, EventData)> {
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for op in workload() {
        for (stream, events) in op {
            for e in events {
                let v = versions.entry(stream).or_insert(0);
                out.push((stream.to_string(), *v, e));
                *v += 1;
            }
        }
    }
    out
}

fn check_events(got: &[RecordedEvent]) {
    let want = expected_events();
    assert_eq!(want.len() as u64, EVENTS, "the workload changed");
    assert_eq!(got.len() as u64, EVENTS);
    // 2024-01-01T00:00:00Z: the golden files are younger than that.
    let not_before = 1_704_067_200_000_000;
    let mut prev_ts = 0;
    for (i, (g, (stream, version, e))) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.position, i as u64);
        assert_eq!(&*g.stream, stream.as_str(), "position {i}");
        assert_eq!(g.version, *version, "position {i}");
        assert_eq!(g.id, e.id, "position {i}");
        assert_eq!(g.id, Uuid::from_u128(ID_BASE + i as u128), "position {i}");
        assert_eq!(*g.event_type, *e.event_type, "position {i}");
        assert_eq!(g.payload, e.payload, "position {i}");
        assert_eq!(g.metadata.bytes, e.metadata.bytes, "position {i}");
        assert_eq!(g.metadata, e.metadata, "position {i}");
        assert!(g.timestamp_us >= not_before, "position {i}");
        assert!(
            g.timestamp_us >= prev_ts,
            "timestamps of the generator run ascend"
        );
        prev_ts = g.timestamp_us;
    }
    let with_bytes = got.iter().filter(|e| !e.metadata.bytes.is_empty()).count();
    assert_eq!(with_bytes as u64, EVENTS_WITH_META_BYTES);
}

/// Reads the store every way there is and checks it against the workload: forward and backward
/// over the log, each stream, and borrowed (`replay`, `metadata_bytes`).
fn check_store(store: &Store) {
    assert_eq!(store.head_position(), Some(EVENTS - 1));
    assert_eq!(store.stream_count(), STREAMS.len());
    let all = read_all(store);
    check_events(&all);
    let back: Vec<_> = store
        .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap();
    assert_eq!(back.len() as u64, EVENTS);
    assert!(back.iter().rev().zip(&all).all(|(a, b)| a == b));
    for (stream, n) in EVENTS_PER_STREAM {
        assert_eq!(store.stream_version(stream), Some(n - 1), "{stream}");
        let events: Vec<_> = store
            .read_stream(stream, 0, Direction::Forward, usize::MAX)
            .collect::<evlog::Result<_>>()
            .unwrap();
        assert_eq!(events.len() as u64, n, "{stream}");
        assert!(
            events
                .iter()
                .enumerate()
                .all(|(i, e)| e.version == i as u64),
            "{stream}: versions dense"
        );
        let from_all: Vec<_> = all
            .iter()
            .filter(|e| &*e.stream == stream)
            .cloned()
            .collect();
        assert_eq!(events, from_all, "{stream}");
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
    // Borrowed: the metadata bytes straight from the frame.
    let want = expected_events();
    let mut seen = 0;
    store
        .replay(0, u64::MAX, &ReadFilter::all(), |e| {
            let (stream, version, data) = &want[e.position as usize];
            assert_eq!((e.stream, e.version), (stream.as_str(), *version));
            assert_eq!(e.id, data.id);
            assert_eq!(e.metadata_bytes(), data.metadata.bytes.as_slice());
            assert_eq!(e.correlation_id(), data.metadata.correlation_id);
            assert_eq!(e.causation_id(), data.metadata.causation_id);
            assert!(e.metadata_entries().eq(data.metadata.extra.iter()));
            seen += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, EVENTS);
}

/// Every frame of a segment file (walking frames from offset 64): offset, length and header.
/// The active segment of a cleanly closed store ends in zeros after its last frame (zeros
/// ahead, `format/FORMAT.md` § 4); anything else must be whole frames.
fn frames_of(data: &[u8]) -> Vec<(u64, u64, FrameHeader)> {
    let end = sealed_data_end(data).unwrap_or(data.len() as u64) as usize;
    let mut at = SEGMENT_HEADER_BYTES;
    let mut out = Vec::new();
    while at < end {
        if data[at..end].iter().all(|b| *b == 0) {
            break;
        }
        let h = check_frame(&data[at..end]).unwrap();
        out.push((at as u64, h.frame_len() as u64, h));
        at += h.frame_len();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The raw files.

#[test]
fn golden_multi_frames_carry_version_3_where_the_workload_says() {
    let dir = golden_dir("multi");
    let names = segment_names(&dir);
    let want_names: Vec<String> = SEGMENTS
        .iter()
        .map(|(p, ..)| format!("{p:020}.seg"))
        .collect();
    assert_eq!(names, want_names);
    let want_frames = expected_frames();
    let want_events = expected_events();
    let mut frames = Vec::new();
    for (seq, (first, count, v1, v3)) in SEGMENTS.iter().enumerate() {
        let data = fs::read(dir.join(format!("{first:020}.seg"))).unwrap();
        let h = SegmentHeader::decode(&data).unwrap();
        assert_eq!(h.seq, seq as u64);
        assert_eq!(h.first_position, *first);
        let seg_frames = frames_of(&data);
        let versions = |v: u8| seg_frames.iter().filter(|f| f.2.version == v).count() as u64;
        assert_eq!(
            (versions(FRAME_VERSION), versions(FRAME_VERSION_MULTI)),
            (*v1, *v3),
            "segment {seq}: frames of versions 1 and 3"
        );
        assert_eq!(seg_frames.len() as u64, v1 + v3, "only versions 1 and 3");
        for (at, len, fh) in &seg_frames {
            // Every record decodes from the raw frame: its stream (several in one version-3
            // frame), version, id and opaque metadata bytes byte for byte; one timestamp.
            let body = frame_body(&data[*at as usize..(at + len) as usize], fh);
            let mut ts = None;
            let mut streams = Vec::new();
            for (i, r) in Records::new(body, fh.count).enumerate() {
                let (_, r) = r.unwrap();
                let p = fh.first_position + i as u64;
                let (stream, version, e) = &want_events[p as usize];
                assert_eq!(
                    (r.stream, r.version, r.id),
                    (stream.as_str(), *version, e.id)
                );
                assert_eq!(r.meta_bytes, e.metadata.bytes.as_slice(), "position {p}");
                assert!(r.same_content(e), "position {p}");
                assert!(!r.dropped);
                assert_eq!(*ts.get_or_insert(r.timestamp_us), r.timestamp_us);
                if streams.last() != Some(&r.stream) {
                    streams.push(r.stream);
                }
            }
            let with_bytes = (fh.first_position..fh.end_position())
                .any(|p| !want_events[p as usize].2.metadata.bytes.is_empty());
            let multi = streams.len() > 1;
            assert_eq!(
                fh.version == FRAME_VERSION_MULTI,
                multi || with_bytes,
                "frame at {at} of segment {seq}"
            );
        }
        frames.extend(
            seg_frames
                .iter()
                .map(|(_, _, fh)| (fh.version, fh.first_position, fh.count)),
        );
        if *count == 0 {
            assert_eq!(data.len() as u64, ACTIVE_FILE_LEN);
            let (at, len, _) = seg_frames.last().unwrap();
            assert_eq!(at + len, ACTIVE_LEN);
            assert!(data[ACTIVE_LEN as usize..].iter().all(|b| *b == 0));
            assert_eq!(sealed_data_end(&data), None, "the last segment is active");
            continue;
        }
        let f = SegmentFooter::decode(&data[data.len() - FOOTER_BYTES..]).unwrap();
        assert_eq!(f.first_position, *first);
        assert_eq!(f.event_count, *count);
        assert_eq!(f.data_crc, crc32fast::hash(&data[..f.data_end as usize]));
        assert_eq!(f.frame_count, seg_frames.len() as u64);
    }
    assert_eq!(frames, want_frames);
    let v = |v: u8| frames.iter().filter(|f| f.0 == v).count() as u64;
    assert_eq!(
        (v(FRAME_VERSION), v(FRAME_VERSION_MULTI)),
        (V1_FRAMES, V3_FRAMES)
    );
    assert!(
        SEGMENTS.iter().filter(|s| s.1 > 0 && s.3 > 0).count() >= 2,
        "version-3 frames in several sealed segments"
    );
}

#[test]
fn golden_multi_index_files_and_checkpoint_decode() {
    let dir = golden_dir("multi");
    for (first, count, ..) in SEGMENTS.iter().filter(|s| s.1 > 0) {
        let idx = fs::read(dir.join(format!("{first:020}.idx"))).unwrap();
        let v = IndexView::new(&idx).unwrap();
        check_index_body(&idx, &v.header).unwrap();
        assert_eq!(v.header.first_position, *first);
        assert_eq!(u64::from(v.header.event_count), *count);
        for p in *first..first + count {
            let id = Uuid::from_u128(ID_BASE + u128::from(p));
            assert_eq!(v.find_id(id.as_bytes()), Some((p - first) as u32));
        }
    }
    let b = fs::read(dir.join("checkpoint.idx")).unwrap();
    let c = decode_checkpoint(&b).unwrap();
    assert_eq!(c.next_position, EVENTS);
    let mut streams: Vec<(&str, u64)> = c.streams.iter().collect();
    streams.sort();
    let want: Vec<(&str, u64)> = EVENTS_PER_STREAM.iter().map(|(s, n)| (*s, n - 1)).collect();
    assert_eq!(streams, want);
    let v = IndexView::new(c.index).unwrap();
    check_index_body(c.index, &v.header).unwrap();
    assert_eq!(u64::from(v.header.covered_len), ACTIVE_LEN);
    assert_eq!(v.header.first_position, SEGMENTS[SEGMENTS.len() - 1].0);
}

// ---------------------------------------------------------------------------------------------
// Opening and reading.

#[test]
fn golden_multi_opens_read_only_in_place_reads_every_event_and_verifies_clean() {
    let dir = golden_dir("multi");
    let before = files_of(&dir);
    let store = StoreOptions::new().open_read_only(&dir).unwrap();
    check_store(&store);
    assert!(store.verify().unwrap().is_clean());
    drop(store);
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    // The only note: the zeros a clean close leaves ahead of the active segment's frames.
    assert_eq!(rep.notes.len(), 1, "{rep:?}");
    assert!(
        rep.notes[0].contains("zeros after the last frame")
            && rep.notes[0].contains(&format!("byte {ACTIVE_LEN}")),
        "{rep:?}"
    );
    assert_eq!(rep.segments, SEGMENTS.len());
    assert_eq!(rep.events, EVENTS);
    assert_eq!(rep.frames, V1_FRAMES + V3_FRAMES);
    assert_eq!(rep.streams, STREAMS.len());
    assert_eq!(files_of(&dir), before, "a read-only open changes nothing");
}

#[test]
fn golden_multi_opens_read_write_on_a_copy_and_goes_on() {
    let t = copy_of("multi");
    let store = opts().open(t.path()).unwrap();
    check_store(&store);
    assert!(store.verify().unwrap().is_clean());
    // The store goes on: a single-stream append and an append_multi with metadata bytes
    // continue the streams and the positions.
    let r = store
        .append(
            "cart-3",
            ExpectedVersion::Exact(stream_len("cart-3") - 1),
            &[EventData::new("CartAbandoned", b"{}".to_vec())],
        )
        .unwrap();
    assert_eq!(r.first_position, EVENTS);
    let meta = Metadata::new().with_bytes(vec![0u8, 1, 2, 0xff]);
    let rs = store
        .append_multi(&[
            (
                "ledger-ü-€",
                ExpectedVersion::Exact(stream_len("ledger-ü-€") - 1),
                vec![EventData::new("LedgerPosted", b"{}".to_vec()).with_metadata(meta.clone())],
            ),
            (
                "new-stream",
                ExpectedVersion::NoStream,
                vec![EventData::new("Started", b"{}".to_vec())],
            ),
        ])
        .unwrap();
    assert_eq!(rs[0].first_position, EVENTS + 1);
    assert_eq!(rs[1].first_position, EVENTS + 2);
    store.close().unwrap();
    let store = opts().open(t.path()).unwrap();
    assert_eq!(store.head_position(), Some(EVENTS + 2));
    assert_eq!(
        store.stream_version("ledger-ü-€"),
        Some(stream_len("ledger-ü-€"))
    );
    assert_eq!(store.stream_version("new-stream"), Some(0));
    let all = read_all(&store);
    check_events(&all[..EVENTS as usize]);
    assert_eq!(all[EVENTS as usize + 1].metadata, meta);
    assert!(store.verify().unwrap().is_clean());
}

fn stream_len(stream: &str) -> u64 {
    EVENTS_PER_STREAM
        .iter()
        .find(|(s, _)| *s == stream)
        .unwrap()
        .1
}

#[test]
fn golden_multi_re_send_of_the_last_append_multi_returns_the_original_result() {
    let t = copy_of("multi");
    let store = opts().open(t.path()).unwrap();
    let ops = workload();
    let (i, op) = ops
        .iter()
        .enumerate()
        .rev()
        .find(|(_, op)| op.len() > 1)
        .unwrap();
    let batch: Vec<(&str, ExpectedVersion, Vec<EventData>)> = op
        .iter()
        .map(|(s, es)| (*s, ExpectedVersion::Any, es.clone()))
        .collect();
    let rs = store.append_multi(&batch).unwrap();
    let (_, first, count) = expected_frames()[i];
    assert_eq!(rs[0].first_position, first);
    assert_eq!(
        rs.last().unwrap().last_position,
        first + u64::from(count) - 1
    );
    assert_eq!(store.head_position(), Some(EVENTS - 1), "nothing written");
}

#[test]
fn golden_multi_stats() {
    let s = evlog::stats::stats_dir(&golden_dir("multi")).unwrap();
    assert_eq!(s.events, EVENTS);
    assert_eq!(s.streams, STREAMS.len() as u64);
    assert_eq!(s.segments_sealed, SEGMENTS.len() as u64 - 1);
    assert_eq!(s.segments_active, 1);
    let want: BTreeMap<String, u64> = EVENTS_PER_TYPE
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect();
    assert_eq!(s.event_types, want);
}

// ---------------------------------------------------------------------------------------------
// Damage to a version-3 frame.

/// A version-3 frame of a sealed segment holding an event with at least 8 bytes of opaque
/// metadata, and where in the segment file those bytes lie: (segment name, frame offset, frame
/// length, offset of the metadata bytes).
fn v3_frame_with_meta_bytes() -> (String, u64, u64, u64) {
    let want = expected_events();
    for (first, count, ..) in SEGMENTS.iter().skip(1).filter(|s| s.1 > 0) {
        let name = format!("{first:020}.seg");
        let data = fs::read(golden_dir("multi").join(&name)).unwrap();
        for (at, len, fh) in frames_of(&data) {
            if fh.version != FRAME_VERSION_MULTI {
                continue;
            }
            for p in fh.first_position..fh.end_position() {
                let bytes = &want[p as usize].2.metadata.bytes;
                if bytes.len() < 8 {
                    continue;
                }
                let frame = &data[at as usize..(at + len) as usize];
                let i = frame
                    .windows(bytes.len())
                    .position(|w| w == bytes.as_slice())
                    .unwrap();
                assert!(p < first + count);
                return (name, at, len, at + i as u64);
            }
        }
    }
    panic!("no version-3 frame with metadata bytes in a sealed segment");
}

#[test]
fn a_flipped_byte_in_a_version_3_frame_is_detected() {
    let (seg, at, len, meta_at) = v3_frame_with_meta_bytes();
    let in_frame = |offset: u64| (at..at + len).contains(&offset);
    let t = copy_of("multi");
    let path = t.path().join(&seg);
    let mut data = fs::read(&path).unwrap();
    let flip = meta_at as usize + 3;
    data[flip] ^= 0x04;
    fs::write(&path, &data).unwrap();

    // Verify finds it, in that frame, and nowhere else.
    let rep = evlog::verify_dir(t.path()).unwrap();
    assert!(!rep.is_clean());
    assert!(
        rep.problems
            .iter()
            .any(|p| p.file == path && in_frame(p.offset)),
        "{rep:?}"
    );
    assert!(rep.problems.iter().all(|p| p.file == path), "{rep:?}");

    // Without the segment's index and the checkpoint, open must read the frame, and fails
    // naming it; read-only too.
    fs::remove_file(t.path().join(seg.replace(".seg", ".idx"))).unwrap();
    fs::remove_file(t.path().join("checkpoint.idx")).unwrap();
    let err = opts().open(t.path()).unwrap_err();
    match &err {
        Error::Corrupted { file, offset, .. } => {
            assert_eq!(file, &path, "{err}");
            assert!(in_frame(*offset), "{err}");
        }
        other => panic!("expected Error::Corrupted, got {other}"),
    }
    let err = StoreOptions::new().open_read_only(t.path()).unwrap_err();
    assert!(
        matches!(err, Error::Corrupted { ref offset, .. } if in_frame(*offset)),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The generator.

#[test]
#[ignore = "writes format/golden/multi/; run only for a deliberate format change"]
fn regenerate_golden_multi() {
    let dir = golden_dir("multi");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    {
        let store = opts().open(&dir).unwrap();
        let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
        let mut expected = |stream: &'static str, n: usize| {
            let e = match versions.get(stream) {
                None => ExpectedVersion::NoStream,
                Some(v) => ExpectedVersion::Exact(*v - 1),
            };
            *versions.entry(stream).or_insert(0) += n as u64;
            e
        };
        for op in workload() {
            if let [(stream, events)] = op.as_slice() {
                let e = expected(stream, events.len());
                store.append(stream, e, events).unwrap();
            } else {
                let batch: Vec<(&str, ExpectedVersion, Vec<EventData>)> = op
                    .into_iter()
                    .map(|(s, es)| (s, expected(s, es.len()), es))
                    .collect();
                store.append_multi(&batch).unwrap();
            }
        }
        store.close().unwrap();
    }
    // The lock file is not part of the format's data; open creates it.
    fs::remove_file(dir.join(evlog::store::LOCK_FILE_NAME)).unwrap();

    // What to hard-code above.
    let store = StoreOptions::new().open_read_only(&dir).unwrap();
    let all = read_all(&store);
    drop(store);
    let mut per_stream: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    for e in &all {
        *per_stream.entry(e.stream.to_string()).or_default() += 1;
        *per_type.entry(e.event_type.to_string()).or_default() += 1;
    }
    println!("EVENTS = {}", all.len());
    println!("EVENTS_PER_STREAM = {per_stream:?}");
    println!("EVENTS_PER_TYPE = {per_type:?}");
    println!(
        "EVENTS_WITH_META_BYTES = {}",
        all.iter().filter(|e| !e.metadata.bytes.is_empty()).count()
    );
    let (mut v1, mut v3) = (0, 0);
    for n in segment_names(&dir) {
        let d = fs::read(dir.join(&n)).unwrap();
        let frames = frames_of(&d);
        let count = sealed_data_end(&d)
            .map(|_| {
                SegmentFooter::decode(&d[d.len() - FOOTER_BYTES..])
                    .unwrap()
                    .event_count
            })
            .unwrap_or(0);
        let s1 = frames
            .iter()
            .filter(|f| f.2.version == FRAME_VERSION)
            .count();
        let s3 = frames
            .iter()
            .filter(|f| f.2.version == FRAME_VERSION_MULTI)
            .count();
        v1 += s1;
        v3 += s3;
        println!(
            "segment {n}: {} bytes, SEGMENTS entry ({}, {count}, {s1}, {s3})",
            d.len(),
            SegmentHeader::decode(&d).unwrap().first_position
        );
        if count == 0 {
            let (at, len, _) = frames.last().unwrap();
            println!("ACTIVE_LEN = {}, ACTIVE_FILE_LEN = {}", at + len, d.len());
        }
    }
    println!("V1_FRAMES = {v1}, V3_FRAMES = {v3}");
    let total: u64 = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!("total golden bytes = {total}");
    assert!(total < 64 << 10, "golden files must stay small");
}
