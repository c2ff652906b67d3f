//! What each fuzz target does with its input. Shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_regressions.rs`, which replays every committed
//! crash input through the same functions, so `cargo test` runs them.
//!
//! Every function takes arbitrary bytes and must not panic, hang or allocate without bound;
//! decode errors are fine. The first input byte of most targets is a mode: bit 0 asks the
//! target to fix the checksums (and lengths) of the structure before decoding it, so that the
//! fuzzer gets past them and reaches the checks and lookups behind them.
//!
//! This file depends only on `evlog`, on `crc32fast` and `serde` (dependencies of `evlog`) and
//! on `tempfile` (a dev-dependency of `evlog`), so the test crate can include it with `#[path]`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use evlog::snapshot::format::{
    decode_body, decode_header, decode_snapshot, decode_stream, encode_snapshot, offsets,
};
use evlog::snapshot::{
    Aggregate, SNAPSHOT_DIR_NAME, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
    SnapshotPolicy, SnapshotStore, decode_state, encode_state, snapshot_file_name,
};
use evlog::wire::bytes::{stream_hash, u16_at, u32_at, u64_at};
use evlog::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint};
use evlog::wire::frame::{
    FRAME_HEADER_BYTES, FRAME_MAGIC, FRAME_OVERHEAD_BYTES, FrameHeader, check_frame, frame_body,
};
use evlog::wire::index_file::{
    BLOOM_BLOCK_BYTES, FRAME_ENTRY_BYTES, ID_ENTRY_BYTES, INDEX_HEADER_BYTES, INDEX_MAGIC,
    IndexHeader, IndexView, STREAM_ENTRY_BYTES, check_index_body,
};
use evlog::wire::limits::MAX_STREAM_ID_BYTES;
use evlog::wire::record::{Records, decode_record};
use evlog::wire::segment::{
    FOOTER_BYTES, FOOTER_MAGIC, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SegmentFooter, SegmentHeader,
    index_file_name, parse_segment_file_name, segment_file_name,
};
use evlog::wire::settings::{
    SETTINGS_FILE_NAME, SETTINGS_HEADER_BYTES, SETTINGS_MAGIC, SETTINGS_VERSION, StreamSettings,
    decode_settings, encode_settings,
};
use evlog::{
    Direction, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store, StoreOptions,
};

/// What a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: the names of `fuzz/fuzz_targets/*.rs` and of the directories of
/// `fuzz/seeds/` and `fuzz/regressions/`.
pub const TARGETS: [(&str, Target); 8] = [
    ("frame", frame),
    ("record", record),
    ("segment", segment),
    ("index", index),
    ("checkpoint", checkpoint),
    ("store", store),
    ("snapshot", snapshot),
    ("settings", settings),
];

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// Checksum fixing: make a structure's magic, lengths and checksums consistent, leave the rest.

/// Fixes the frame at the start of `b` (magic, body length clipped to the bytes there, both
/// CRCs, the trailer). Returns the frame's length, or `None` if `b` cannot hold a frame.
pub fn fix_frame(b: &mut [u8]) -> Option<usize> {
    if b.len() < FRAME_OVERHEAD_BYTES {
        return None;
    }
    b[0..4].copy_from_slice(&FRAME_MAGIC);
    let body_len = (u32_at(b, 8) as usize).min(b.len() - FRAME_OVERHEAD_BYTES);
    put_u32(b, 8, body_len as u32);
    let body_crc = crc(&b[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len]);
    put_u32(b, 24, body_crc);
    let header_crc = crc(&b[0..28]);
    put_u32(b, 28, header_crc);
    let t = FRAME_HEADER_BYTES + body_len;
    put_u32(b, t, (FRAME_OVERHEAD_BYTES + body_len) as u32);
    put_u32(b, t + 4, header_crc);
    Some(FRAME_OVERHEAD_BYTES + body_len)
}

/// Fixes a segment file: header CRC, every frame that starts with the frame magic, and a footer
/// if the 64 bytes after the last frame start with the footer magic.
pub fn fix_segment(b: &mut [u8]) {
    if b.len() < SEGMENT_HEADER_BYTES {
        return;
    }
    b[0..8].copy_from_slice(&SEGMENT_MAGIC);
    let c = crc(&b[0..60]);
    put_u32(b, 60, c);
    let mut at = SEGMENT_HEADER_BYTES;
    while at + FRAME_OVERHEAD_BYTES <= b.len() && b[at..at + 4] == FRAME_MAGIC {
        match fix_frame(&mut b[at..]) {
            Some(n) => at += n,
            None => break,
        }
    }
    if b.len() - at == FOOTER_BYTES && b[at..at + 8] == FOOTER_MAGIC {
        let data_crc = crc(&b[..at]);
        let f = &mut b[at..];
        put_u64(f, 32, at as u64);
        put_u32(f, 40, data_crc);
        let c = crc(&f[0..60]);
        put_u32(f, 60, c);
    }
}

/// Fixes an index: magic, the length to what the header announces (when that is at most
/// 256 KiB: pads with zeros or cuts), the body CRC and the header CRC.
pub fn fix_index(b: &mut Vec<u8>) {
    if b.len() < INDEX_HEADER_BYTES {
        return;
    }
    b[0..8].copy_from_slice(&INDEX_MAGIC);
    let frames = u32_at(b, 12) as u64;
    let events = u32_at(b, 24) as u64;
    let bloom = u32_at(b, 40) as u64;
    let len = INDEX_HEADER_BYTES as u64
        + frames * FRAME_ENTRY_BYTES as u64
        + events * (STREAM_ENTRY_BYTES + ID_ENTRY_BYTES) as u64
        + bloom * BLOOM_BLOCK_BYTES as u64;
    if len <= 1 << 18 {
        b.resize(len as usize, 0);
    }
    let body_crc = crc(&b[INDEX_HEADER_BYTES..]);
    put_u32(b, 36, body_crc);
    let c = crc(&b[0..60]);
    put_u32(b, 60, c);
}

/// Fixes a checkpoint: its embedded index (as [`fix_index`] does) and `next_position` to match
/// it, then the body length, body CRC and header CRC. (Not `last_frame_header_crc`, which names
/// a frame in a segment.)
pub fn fix_checkpoint(b: &mut Vec<u8>) {
    if b.len() < 64 {
        return;
    }
    b[0..8].copy_from_slice(b"EVLOGCKP");
    // Walk the stream table to find the embedded index.
    let count = u32_at(b, 12).min(4096);
    let mut at = 64usize;
    for _ in 0..count {
        if at + 2 > b.len() {
            break;
        }
        at += 2 + usize::from(u16::from_le_bytes([b[at], b[at + 1]])) + 8;
    }
    if at + INDEX_HEADER_BYTES <= b.len() {
        let mut idx = b[at..].to_vec();
        fix_index(&mut idx);
        let next = u64_at(&idx, 16).checked_add(u64::from(u32_at(&idx, 24)));
        b.truncate(at);
        b.extend_from_slice(&idx);
        if let Some(next) = next {
            put_u64(b, 16, next);
        }
    }
    let body_len = (b.len() - 64) as u64;
    put_u64(b, 32, body_len);
    let body_crc = crc(&b[64..]);
    put_u32(b, 40, body_crc);
    let c = crc(&b[0..60]);
    put_u32(b, 60, c);
}

/// Fixes a snapshot file: magic, format version, the stream id length (clipped to the bytes
/// there), the compressed length (to the rest of the file), the stream id's CRC and hash (the
/// hash when the id is UTF-8), the body CRC and the header CRC. (Not the state length.)
pub fn fix_snapshot(b: &mut [u8]) {
    if b.len() < SNAPSHOT_HEADER_BYTES {
        return;
    }
    b[0..8].copy_from_slice(SNAPSHOT_MAGIC);
    put_u16(b, offsets::VERSION, SNAPSHOT_VERSION);
    let stream_len = usize::from(u16_at(b, offsets::STREAM_LEN))
        .min(b.len() - SNAPSHOT_HEADER_BYTES)
        .min(MAX_STREAM_ID_BYTES);
    put_u16(b, offsets::STREAM_LEN, stream_len as u16);
    let body_at = SNAPSHOT_HEADER_BYTES + stream_len;
    put_u32(b, offsets::COMPRESSED_LEN, (b.len() - body_at) as u32);
    let stream = &b[SNAPSHOT_HEADER_BYTES..body_at];
    let stream_crc = crc(stream);
    let hash = std::str::from_utf8(stream).ok().map(stream_hash);
    put_u32(b, offsets::STREAM_CRC, stream_crc);
    if let Some(hash) = hash {
        put_u64(b, offsets::STREAM_HASH, hash);
    }
    let body_crc = crc(&b[body_at..]);
    put_u32(b, offsets::BODY_CRC, body_crc);
    let c = crc(&b[..offsets::HEADER_CRC]);
    put_u32(b, offsets::HEADER_CRC, c);
}

/// Fixes a stream settings file: magic, format version, the entry count (to the number of whole
/// entries a walk of the body finds), the body length, the body CRC and the header CRC.
pub fn fix_settings(b: &mut [u8]) {
    if b.len() < SETTINGS_HEADER_BYTES {
        return;
    }
    b[0..8].copy_from_slice(&SETTINGS_MAGIC);
    put_u16(b, 8, SETTINGS_VERSION);
    let mut at = SETTINGS_HEADER_BYTES;
    let mut count = 0u32;
    // An entry: stream_len u16, the stream id, flags u8, three u64.
    while at + 2 <= b.len() {
        let next = at + 2 + usize::from(u16_at(b, at)) + 25;
        if next > b.len() {
            break;
        }
        at = next;
        count += 1;
    }
    put_u32(b, 12, count);
    put_u64(b, 16, (b.len() - SETTINGS_HEADER_BYTES) as u64);
    let body_crc = crc(&b[SETTINGS_HEADER_BYTES..]);
    put_u32(b, 24, body_crc);
    let c = crc(&b[0..60]);
    put_u32(b, 60, c);
}

// ---------------------------------------------------------------------------------------------
// Targets.

/// Frame decoder: `FrameHeader::decode`, `check_frame`, then the records of its body.
/// Input: mode byte, then the frame.
pub fn frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 != 0 {
        fix_frame(&mut b);
    }
    if let Ok(h) = FrameHeader::decode(&b) {
        let _ = (h.frame_len(), h.durable_before(), h.end_position());
    }
    let Ok(h) = check_frame(&b) else { return };
    assert!(
        h.frame_len() <= b.len(),
        "check_frame accepted a frame past the data"
    );
    let body = frame_body(&b, &h);
    let mut n = 0u32;
    for r in Records::new(body, h.count) {
        match r {
            Ok((at, rec)) => {
                assert!(at < body.len());
                n += 1;
                let _ = rec.to_recorded(h.first_position + u64::from(n), Arc::from(rec.stream));
            }
            Err(_) => break,
        }
    }
    assert!(n <= h.count, "more records than the frame's count");
}

/// Record decoder: `decode_record`, the record's metadata and owned form, and `Records` over
/// the same bytes. Input: a count byte (for `Records`), then record bytes.
pub fn record(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    if let Ok((rec, used)) = decode_record(rest, 0) {
        assert!(used <= rest.len(), "record longer than its bytes");
        let m = rec.metadata();
        let owned = rec.to_recorded(7, Arc::from(rec.stream));
        assert_eq!(owned.payload, rec.payload);
        assert_eq!(owned.metadata, m);
        let e = EventData::new(rec.event_type, rec.payload.to_vec())
            .with_id(rec.id)
            .with_metadata(m);
        assert!(
            rec.same_content(&e),
            "a record differs from its own content"
        );
    }
    let mut at_prev = None;
    for r in Records::new(rest, u32::from(count)) {
        match r {
            Ok((at, _)) => {
                assert!(at_prev.is_none_or(|p| at > p), "records go backward");
                at_prev = Some(at);
            }
            Err(_) => break,
        }
    }
}

/// Segment header and footer, and the frame scan recovery and index rebuilds run over a
/// segment: `SegmentHeader::decode`, `SegmentFooter::decode` (of the last 64 bytes),
/// `scan_frames`, `durable_frame_after`, `build_index`. Input: mode byte, then a segment file.
pub fn segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 != 0 {
        fix_segment(&mut b);
    }
    if let Ok(s) = std::str::from_utf8(&b[..b.len().min(40)])
        && let Some(p) = parse_segment_file_name(s)
    {
        assert_eq!(segment_file_name(p), s, "segment file names round-trip");
    }
    let Ok(h) = SegmentHeader::decode(&b) else {
        return;
    };
    assert_eq!(
        SegmentHeader::decode(&h.encode()),
        Ok(h),
        "header round-trip"
    );
    let mut end = b.len();
    if b.len() >= SEGMENT_HEADER_BYTES + FOOTER_BYTES
        && let Ok(f) = SegmentFooter::decode(&b[b.len() - FOOTER_BYTES..])
    {
        assert_eq!(
            SegmentFooter::decode(&f.encode()),
            Ok(f),
            "footer round-trip"
        );
        let _ = f.last_position();
        if f.data_end == (b.len() - FOOTER_BYTES) as u64 {
            end = f.data_end as usize;
        }
    }
    let data = &b[..end];
    let scan = evlog::segment::scan_frames(
        data,
        0,
        SEGMENT_HEADER_BYTES,
        h.first_position,
        |_, _, recs| {
            for (_, r) in recs {
                let _ = stream_hash(r.stream);
            }
            Ok(())
        },
    );
    assert!(scan.good_end as usize <= data.len());
    if scan.error.is_some() {
        let _ =
            evlog::segment::durable_frame_after(data, scan.good_end as usize, scan.next_position);
    }
    if let Ok((idx, next, frames)) = evlog::segment::build_index(data, h.first_position) {
        let v = IndexView::new(&idx).expect("a built index decodes");
        check_index_body(&idx, &v.header).expect("a built index checks");
        assert_eq!(v.header.frame_count, frames);
        assert_eq!(
            h.first_position + u64::from(v.header.event_count),
            next,
            "index event count"
        );
        index_lookups(&v);
    }
    let _ = index_file_name(h.first_position);
}

/// Every kind of lookup of an index view: read entries all over every table, find their ids
/// and stream entries, and a few that are not there. (At most about 256 entries per table, so
/// that a large index does not slow the fuzzer down; the entries read are spread over the
/// whole table.)
fn index_lookups(v: &IndexView<'_>) {
    let h = v.header;
    let step = |n: u32| (n as usize / 256).max(1);
    for i in (0..h.frame_count as usize).step_by(step(h.frame_count)) {
        let f = v.frame(i);
        let _ = v.frame_for(f.rel_first);
        let _ = v.frame_for(f.rel_first.wrapping_sub(1));
    }
    let _ = v.frame_for(0);
    let _ = v.frame_for(u32::MAX);
    for i in (0..h.event_count as usize).step_by(step(h.event_count)) {
        let e = v.entry(i);
        let lb = v.lower_bound(e.hash, e.version);
        assert!(lb <= h.event_count as usize);
        let _ = v.lower_bound(e.hash, u64::MAX);
        let _ = v.lower_bound(e.hash.wrapping_add(1), 0);
        let id = v.id_entry(i);
        let _ = v.may_contain_id(&id.id);
        let _ = v.find_id(&id.id);
        let mut other = id.id;
        other[15] ^= 1;
        let _ = v.find_id(&other);
    }
    let _ = v.lower_bound(0, 0);
    let _ = v.lower_bound(u64::MAX, u64::MAX);
    let _ = v.find_id(&[0; 16]);
    let _ = v.find_id(&[0xff; 16]);
}

/// Index files: `IndexView::new` (header, exact length), `check_index_body`, then every
/// lookup. Input: mode byte, then an index file.
pub fn index(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 != 0 {
        fix_index(&mut b);
    }
    let Ok(v) = IndexView::new(&b) else { return };
    assert_eq!(
        v.header.file_len(),
        b.len(),
        "IndexView::new checks the length"
    );
    let _ = IndexHeader::decode(&b);
    // Lookups work whether or not the body checksum matches (open checks it lazily).
    let _ = check_index_body(&b, &v.header);
    index_lookups(&v);
}

/// The checkpoint: `decode_checkpoint`, then its embedded index as open checks and uses it.
/// Input: mode byte, then a checkpoint file.
pub fn checkpoint(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 != 0 {
        fix_checkpoint(&mut b);
    }
    let Ok(c) = decode_checkpoint(&b) else { return };
    for (s, v) in &c.streams {
        let _ = (stream_hash(s), v);
    }
    let _ = (c.next_position, c.last_frame_header_crc);
    if let Ok(v) = IndexView::new(c.index) {
        let _ = check_index_body(c.index, &v.header);
        let _ = v
            .header
            .first_position
            .checked_add(u64::from(v.header.event_count));
        index_lookups(&v);
    }
}

// ---------------------------------------------------------------------------------------------
// Opening a store whose files are arbitrary bytes.

/// File kinds in a `store` input.
const KIND_SEGMENT: u8 = 0;
const KIND_INDEX: u8 = 1;
const KIND_CHECKPOINT: u8 = 2;
/// Most files in one input.
const MAX_FILES: usize = 12;

/// Encodes a store directory's files as a `store` input (the seed generator uses it).
/// `files` are (kind, first position, bytes); the mode byte comes first.
pub fn encode_store_input(mode: u8, files: &[(u8, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![mode];
    for (kind, pos, bytes) in files {
        out.push(*kind);
        out.extend_from_slice(&pos.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Splits a `store` input into files: after the mode byte, a sequence of
/// `kind u8 | first position u64 | length u32 | bytes` (a length past the end takes the rest).
/// Kind 0 is a segment `<pos>.seg`, 1 its index `<pos>.idx`, 2 the checkpoint, 3 a stray
/// `<pos>.seg.tmp` (open deletes temp files). Mode bits 0, 3 and 4 fix the checksums of the
/// segments, the `.idx` files and the checkpoint (see [`fix_segment`], [`fix_index`],
/// [`fix_checkpoint`]).
fn decode_store_input(data: &[u8]) -> (u8, Vec<(String, Vec<u8>)>) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut files = Vec::new();
    while rest.len() >= 13 && files.len() < MAX_FILES {
        let kind = rest[0] % 4;
        let pos = u64_at(rest, 1);
        let len = (u32_at(rest, 9) as usize).min(rest.len() - 13);
        let mut bytes = rest[13..13 + len].to_vec();
        rest = &rest[13 + len..];
        let name = match kind {
            KIND_SEGMENT => segment_file_name(pos),
            KIND_INDEX => index_file_name(pos),
            KIND_CHECKPOINT => CHECKPOINT_FILE_NAME.to_owned(),
            _ => format!("{}.tmp", segment_file_name(pos)),
        };
        match kind {
            KIND_SEGMENT if mode & 1 != 0 => fix_segment(&mut bytes),
            KIND_INDEX if mode & 8 != 0 => fix_index(&mut bytes),
            KIND_CHECKPOINT if mode & 16 != 0 => fix_checkpoint(&mut bytes),
            _ => {}
        }
        files.push((name, bytes));
    }
    (mode, files)
}

/// Reads everything `store` shows through every read path; errors end a read. Returns every
/// event in position order if the forward read of the whole log met no error.
fn read_everything(s: &Store) -> Option<Vec<RecordedEvent>> {
    let mut streams = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    let mut clean = true;
    for e in s.read_all(0, Direction::Forward, ReadFilter::all()) {
        match e {
            Ok(e) => {
                streams.insert(e.stream.to_string());
                all.push(e);
            }
            Err(_) => {
                clean = false;
                break;
            }
        }
    }
    let _ = s
        .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
        .take_while(Result::is_ok)
        .count();
    let _ = s
        .read_all(
            all.len() as u64 / 2,
            Direction::Forward,
            ReadFilter::all().event_types(["A"]),
        )
        .take_while(Result::is_ok)
        .count();
    for st in &streams {
        let _ = s.stream_version(st);
        let _ = s
            .read_stream(st, 0, Direction::Forward, usize::MAX)
            .take_while(Result::is_ok)
            .count();
        let _ = s
            .read_stream(st, u64::MAX, Direction::Backward, 3)
            .take_while(Result::is_ok)
            .count();
    }
    let _ = (s.head_position(), s.stream_count());
    clean.then_some(all)
}

/// A store directory made of the input's files (see [`decode_store_input`]): `verify_dir`, a
/// read-only open and every read, a writable open (with repair when mode bit 1 is set) and
/// every read, an append (mode bit 2), close, and a second writable open. Any error is fine; a
/// panic, hang or huge allocation is a bug. Where both succeed, the opens must agree: a read-only and a writable open (without
/// repair) of the same files show the same events, and the reopen shows what the writer left.
pub fn store(data: &[u8]) {
    let root = temp_dir();
    let dir = root.path();
    let mode = write_store_files(data, dir);
    let repair = mode & 2 != 0;
    let opts = StoreOptions::new().segment_bytes(4096).repair(repair);
    let _ = evlog::verify_dir(dir);
    let mut seen_read_only = None;
    if let Ok(s) = opts.open_read_only(dir) {
        seen_read_only = read_everything(&s);
        let _ = s.verify();
    }
    if let Ok(s) = opts.open(dir) {
        let seen = read_everything(&s);
        if let (Some(ro), Some(rw), false) = (&seen_read_only, &seen, repair) {
            assert!(
                ro == rw,
                "a read-only open shows {} events, a writable open of the same files {}",
                ro.len(),
                rw.len()
            );
        }
        let mut appended = None;
        if mode & 4 != 0 {
            let e = EventData::new("A", b"fuzz".to_vec());
            if let Ok(r) = s.append("fuzz", ExpectedVersion::Any, &[e]) {
                if let Some(rw) = &seen {
                    assert_eq!(
                        r.first_position,
                        rw.len() as u64,
                        "position of a new append"
                    );
                }
                appended = Some(r);
            }
        }
        let closed = s.close().is_ok();
        if let Ok(s) = opts.open(dir) {
            let again = read_everything(&s);
            if let (Some(rw), Some(again), true) = (&seen, &again, closed) {
                let n = rw.len() + usize::from(appended.is_some());
                assert!(
                    again.len() == n && again[..rw.len()] == rw[..],
                    "a reopen shows {} events, the writer left {n}",
                    again.len()
                );
            }
            let _ = s.close();
        }
    }
}

/// A temporary directory, in `/dev/shm` when there is one (the targets check logic, not disks).
fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir")
}

/// Writes the files of a `store` input into `dir` (as the `store` target does) and returns the
/// input's mode byte.
pub fn write_store_files(data: &[u8], dir: &Path) -> u8 {
    let (mode, files) = decode_store_input(data);
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).expect("write an input file");
    }
    mode
}

// ---------------------------------------------------------------------------------------------
// Snapshot files and the stream settings file.

/// The golden store `format/golden/valid/` (79 events in 4 segments of 4 KiB), built into the
/// targets that need a store around the file they fuzz.
const GOLDEN_VALID: [(&str, &[u8]); 8] = [
    (
        "00000000000000000000.idx",
        include_bytes!("../../format/golden/valid/00000000000000000000.idx"),
    ),
    (
        "00000000000000000000.seg",
        include_bytes!("../../format/golden/valid/00000000000000000000.seg"),
    ),
    (
        "00000000000000000021.idx",
        include_bytes!("../../format/golden/valid/00000000000000000021.idx"),
    ),
    (
        "00000000000000000021.seg",
        include_bytes!("../../format/golden/valid/00000000000000000021.seg"),
    ),
    (
        "00000000000000000045.idx",
        include_bytes!("../../format/golden/valid/00000000000000000045.idx"),
    ),
    (
        "00000000000000000045.seg",
        include_bytes!("../../format/golden/valid/00000000000000000045.seg"),
    ),
    (
        "00000000000000000067.seg",
        include_bytes!("../../format/golden/valid/00000000000000000067.seg"),
    ),
    (
        "checkpoint.idx",
        include_bytes!("../../format/golden/valid/checkpoint.idx"),
    ),
];

/// The streams of the golden store.
pub const GOLDEN_STREAMS: [&str; 4] = ["order-1", "order-2", "payment-7", "saga-ai-scoring-ü"];

/// Writes the golden store's files into `dir`.
pub fn write_golden_valid(dir: &Path) {
    for (name, bytes) in GOLDEN_VALID {
        std::fs::write(dir.join(name), bytes).expect("write a golden file");
    }
}

/// The aggregate whose state the `snapshot` target decodes snapshot states into: the kinds of
/// field real states have (numbers, strings, maps, nested vectors, options), so that arbitrary
/// state bytes reach bincode's length checks and limit.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FuzzState {
    /// Events applied.
    pub events: u64,
    /// Type of the last event.
    pub last_type: String,
    /// Events per type.
    pub by_type: BTreeMap<String, u64>,
    /// The first bytes of each payload.
    pub payload_heads: Vec<Vec<u8>>,
    /// Version and timestamp of every other event.
    pub marks: Vec<Option<(u32, i64)>>,
}

impl Aggregate for FuzzState {
    const SCHEMA_VERSION: u32 = 1;

    fn apply(&mut self, e: &RecordedEvent) {
        self.events += 1;
        self.last_type.clone_from(&e.event_type);
        *self.by_type.entry(e.event_type.clone()).or_default() += 1;
        self.payload_heads
            .push(e.payload[..e.payload.len().min(4)].to_vec());
        self.marks.push(
            e.version
                .is_multiple_of(2)
                .then_some((e.version as u32, e.timestamp_us as i64)),
        );
    }
}

/// Largest state the `snapshot` target decodes into a [`FuzzState`]. evlog bounds a state's
/// bytes (64 MiB); what they become in memory is the aggregate type's business: each byte of
/// state can be one empty 24-byte `Vec` in `FuzzState::payload_heads`, so a 64 MiB state could
/// take over 1.5 GB and stop the fuzzer at its memory limit without any bug in evlog.
const MAX_AGGREGATE_STATE_BYTES: usize = 1 << 20;

/// Snapshot files: `decode_header`, `decode_stream`, `decode_body`, `decode_snapshot`, the
/// state as an aggregate's (`decode_state`, states up to [`MAX_AGGREGATE_STATE_BYTES`]), and
/// round trips through `encode_state` and `encode_snapshot`. Mode bit 1 also puts the file into
/// a `snapshots/` directory (named after the stream hash and version of its header) and reads
/// it through `SnapshotStore`: `list`, `latest` (which must find it exactly when it decodes),
/// `prune` (which must keep it then); with bit 2 as well, next to the golden store, from which
/// `SnapshotStore::load` loads the file's stream. Input: mode byte, then a snapshot file.
pub fn snapshot(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 != 0 {
        fix_snapshot(&mut b);
    }
    let header = decode_header(&b, b.len() as u64);
    let head_ok = header.as_ref().is_ok_and(|h| decode_stream(h, &b).is_ok());
    let decoded = decode_snapshot(&b);
    match &decoded {
        Ok((h, stream, state)) => {
            assert_eq!(header.as_ref(), Ok(h), "decode_snapshot's header");
            assert_eq!(h.file_len(), b.len(), "the header gives the file length");
            assert_eq!(state.len(), h.state_len as usize, "state length");
            assert_eq!(stream_hash(stream), h.stream_hash, "stream hash");
            if state.len() <= MAX_AGGREGATE_STATE_BYTES
                && let Ok(s) = decode_state::<FuzzState>(state)
            {
                let again = encode_state(&s).expect("a decoded state encodes");
                assert_eq!(
                    decode_state::<FuzzState>(&again).as_ref(),
                    Ok(&s),
                    "state round trip"
                );
            }
            // Compressing a large state again is slow; small ones show the same code.
            if state.len() <= MAX_AGGREGATE_STATE_BYTES {
                let enc = encode_snapshot(
                    stream,
                    h.stream_version,
                    h.schema_version,
                    h.created_us,
                    state,
                )
                .expect("a decoded snapshot encodes");
                let (h2, stream2, state2) =
                    decode_snapshot(&enc).expect("an encoded snapshot decodes");
                assert_eq!(
                    (stream2, &state2, h2.stream_version, h2.schema_version),
                    (*stream, state, h.stream_version, h.schema_version),
                    "snapshot round trip"
                );
                assert_eq!(h2.created_us, h.created_us);
            }
        }
        Err(_) => {
            if let Ok(h) = &header
                && decode_stream(h, &b).is_ok()
            {
                assert!(
                    decode_body(h, &b[h.body_offset()..]).is_err(),
                    "decode_snapshot fails where each part decodes"
                );
            }
        }
    }
    if mode & 2 != 0 {
        snapshot_on_disk(&b, head_ok, decoded.ok(), mode & 4 != 0);
    }
}

/// The `snapshot` target's file in a snapshot directory, read through `SnapshotStore`.
fn snapshot_on_disk(
    b: &[u8],
    head_ok: bool,
    decoded: Option<(evlog::snapshot::SnapshotHeader, &str, Vec<u8>)>,
    with_store: bool,
) {
    let root = temp_dir();
    let dir = root.path();
    if with_store {
        write_golden_valid(dir);
    }
    let snaps = dir.join(SNAPSHOT_DIR_NAME);
    std::fs::create_dir(&snaps).expect("create the snapshot directory");
    let (hash, version) = if b.len() >= SNAPSHOT_HEADER_BYTES {
        (
            u64_at(b, offsets::STREAM_HASH),
            u64_at(b, offsets::STREAM_VERSION),
        )
    } else {
        (0, 0)
    };
    let path = snaps.join(snapshot_file_name(hash, version));
    std::fs::write(&path, b).expect("write the snapshot file");
    let policy = SnapshotPolicy {
        interval_versions: 0,
        retention: Duration::from_secs(1),
    };
    let ss = SnapshotStore::with_vfs(evlog::io::real_fs(), dir).with_policy(policy);
    let list = ss.list().expect("list a readable snapshot directory");
    assert_eq!(list.len(), 1, "one snapshot file listed");
    assert_eq!(
        list[0].info.is_ok(),
        head_ok,
        "list reads the header as decode_header and decode_stream do"
    );
    let stream = match &decoded {
        Some((h, stream, state)) => {
            let found = ss
                .latest(stream, h.schema_version, Some(h.stream_version))
                .expect("latest in a readable directory");
            let snap = found
                .snapshot
                .expect("latest finds a snapshot that decodes");
            assert_eq!(&snap.state, state, "the state latest reads");
            assert_eq!(snap.info.version, h.stream_version);
            *stream
        }
        None => {
            if let Ok(h) = decode_header(b, b.len() as u64)
                && let Ok(stream) = decode_stream(&h, b)
            {
                let found = ss
                    .latest(stream, h.schema_version, Some(u64::MAX))
                    .expect("latest in a readable directory");
                assert!(
                    found.snapshot.is_none(),
                    "latest uses a snapshot that does not decode"
                );
            }
            GOLDEN_STREAMS[0]
        }
    };
    let small = decoded
        .as_ref()
        .is_none_or(|d| d.2.len() <= MAX_AGGREGATE_STATE_BYTES);
    if with_store
        && small
        && let Ok(store) = StoreOptions::new().open_read_only(dir)
    {
        let current = store.stream_version(stream);
        if let Ok(l) = ss.load::<FuzzState>(&store, stream) {
            assert_eq!(l.version, current, "load ends at the stream's last version");
            if let Some(v) = l.snapshot_version {
                assert!(
                    current.is_some_and(|c| v <= c),
                    "a snapshot past the stream"
                );
                assert_eq!(l.events_applied, current.unwrap_or(0) - v);
            }
        }
    }
    let _ = ss.prune(SystemTime::now());
    if list[0].info.is_ok() {
        assert!(
            path.exists(),
            "prune deleted the only (so the latest) snapshot of its stream"
        );
    }
}

/// Streams of a settings file whose rules a `settings` input checks through a store, at most.
const MAX_CHECKED_STREAMS: usize = 16;

/// The stream settings file: `decode_settings`, a round trip through `encode_settings`, and the
/// visibility rules of each entry. Mode bit 1 also makes the file the `streams.settings` of the
/// golden store: `verify_dir` (which must report a file that does not decode), a read-only open
/// (which must refuse it), every read, which must hide what the settings hide (tombstoned
/// streams, versions below `truncate_before`, more than `max_count` events); with bit 2 as
/// well, a writable open, an append to the streams the file names (refused for tombstoned
/// ones), close and a reopen. Input: mode byte, then a settings file.
pub fn settings(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 != 0 {
        fix_settings(&mut b);
    }
    let decoded = decode_settings(&b);
    if let Ok(entries) = &decoded {
        assert_eq!(entries.len(), u32_at(&b, 12) as usize, "entry count");
        let again = encode_settings(entries.iter().copied());
        assert_eq!(
            again[SETTINGS_HEADER_BYTES..],
            b[SETTINGS_HEADER_BYTES..],
            "the body encodes back to itself"
        );
        assert_eq!(
            decode_settings(&again).as_ref(),
            Ok(entries),
            "settings round trip"
        );
        for (_, st) in entries {
            for last in [0, 1, 78, 1 << 40] {
                let first = st.first_visible(last);
                assert!(first >= st.truncate_before, "first_visible");
                for v in [0, first, last] {
                    let seen = st.visible(v, 1_700_000_000_000_000, last, 1_800_000_000_000_000);
                    assert!(!seen || (!st.tombstone && v >= first), "visible");
                }
            }
            let _ = st.is_default();
        }
    }
    if mode & 2 != 0 {
        settings_in_store(&b, decoded.as_deref().ok(), mode & 4 != 0);
    }
}

/// The `settings` target's file as the settings of the golden store.
fn settings_in_store(b: &[u8], entries: Option<&[(&str, StreamSettings)]>, write: bool) {
    let root = temp_dir();
    let dir = root.path();
    write_golden_valid(dir);
    std::fs::write(dir.join(SETTINGS_FILE_NAME), b).expect("write the settings file");
    if let Ok(rep) = evlog::verify_dir(dir) {
        assert_eq!(
            rep.is_clean(),
            entries.is_some(),
            "verify of the golden store with a settings file that decodes: {}",
            entries.is_some()
        );
    }
    // The rules of each stream named once (which of two entries of a stream wins is not
    // specified), at most MAX_CHECKED_STREAMS of them, and the golden streams.
    let mut rules: HashMap<&str, Option<StreamSettings>> = HashMap::new();
    for (s, st) in entries.unwrap_or(&[]) {
        rules
            .entry(s)
            .and_modify(|r| *r = None)
            .or_insert(Some(*st));
    }
    let mut streams: Vec<&str> = GOLDEN_STREAMS.to_vec();
    for (s, _) in entries.unwrap_or(&[]) {
        if streams.len() >= GOLDEN_STREAMS.len() + MAX_CHECKED_STREAMS {
            break;
        }
        if !streams.contains(s) {
            streams.push(s);
        }
    }
    let opts = StoreOptions::new().segment_bytes(4096);
    match opts.open_read_only(dir) {
        Ok(s) => {
            assert!(
                entries.is_some(),
                "open accepts a settings file that does not decode"
            );
            check_settings_hide(&s, &rules, &streams);
        }
        Err(_) => return,
    }
    if !write {
        return;
    }
    let Ok(s) = opts.open(dir) else { return };
    check_settings_hide(&s, &rules, &streams);
    for stream in &streams {
        let e = EventData::new("A", b"fuzz".to_vec());
        let r = s.append(stream, ExpectedVersion::Any, &[e]);
        if let Some(Some(st)) = rules.get(stream)
            && st.tombstone
        {
            assert!(
                r.is_err(),
                "an append to tombstoned stream {stream:?} succeeded"
            );
        }
    }
    check_settings_hide(&s, &rules, &streams);
    let _ = s.close();
    if let Ok(s) = opts.open(dir) {
        check_settings_hide(&s, &rules, &streams);
        let _ = s.close();
    }
}

/// Every read of `s` hides what `rules` hide.
fn check_settings_hide(s: &Store, rules: &HashMap<&str, Option<StreamSettings>>, streams: &[&str]) {
    let hidden = |stream: &str, version: u64| match rules.get(stream) {
        Some(Some(st)) => st.tombstone || version < st.truncate_before,
        _ => false,
    };
    for dir in [Direction::Forward, Direction::Backward] {
        let from = if dir == Direction::Forward {
            0
        } else {
            u64::MAX
        };
        for e in s.read_all(from, dir, ReadFilter::all()) {
            let Ok(e) = e else { break };
            assert!(
                !hidden(&e.stream, e.version),
                "read_all ({dir:?}) shows {:?} version {}, which the settings hide",
                e.stream,
                e.version
            );
        }
    }
    for stream in streams {
        let mut n = 0u64;
        for e in s.read_stream(stream, 0, Direction::Forward, usize::MAX) {
            let Ok(e) = e else { break };
            assert!(
                !hidden(stream, e.version),
                "read_stream shows {stream:?} version {}, which the settings hide",
                e.version
            );
            n += 1;
        }
        if let Some(Some(st)) = rules.get(stream)
            && st.max_count > 0
        {
            assert!(
                n <= st.max_count,
                "read_stream shows {n} events of {stream:?}, max_count {}",
                st.max_count
            );
        }
        let _ = s
            .read_stream(stream, u64::MAX, Direction::Backward, 3)
            .take_while(Result::is_ok)
            .count();
        let _ = (s.stream_version(stream), s.stream_settings(stream));
    }
}
