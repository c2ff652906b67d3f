//! What each fuzz target does with its input. Shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_regressions.rs`, which replays every committed
//! crash input through the same functions, so `cargo test` runs them.
//!
//! Every function takes arbitrary bytes and must not panic, hang or allocate without bound;
//! decode errors are fine. The first input byte of most targets is a mode: bit 0 asks the
//! target to fix the checksums (and lengths) of the structure before decoding it, so that the
//! fuzzer gets past them and reaches the checks and lookups behind them.
//!
//! This file depends only on `evlog` and `tempfile` (a dev-dependency of `evlog`), so the test
//! crate can include it with `#[path]`.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use evlog::wire::bytes::{stream_hash, u32_at, u64_at};
use evlog::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint};
use evlog::wire::frame::{
    FRAME_HEADER_BYTES, FRAME_MAGIC, FRAME_OVERHEAD_BYTES, FrameHeader, check_frame, frame_body,
};
use evlog::wire::index_file::{
    BLOOM_BLOCK_BYTES, FRAME_ENTRY_BYTES, ID_ENTRY_BYTES, INDEX_HEADER_BYTES, INDEX_MAGIC,
    IndexHeader, IndexView, STREAM_ENTRY_BYTES, check_index_body,
};
use evlog::wire::record::{Records, decode_record};
use evlog::wire::segment::{
    FOOTER_BYTES, FOOTER_MAGIC, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SegmentFooter, SegmentHeader,
    index_file_name, parse_segment_file_name, segment_file_name,
};
use evlog::{
    Direction, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store, StoreOptions,
};

/// What a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: the names of `fuzz/fuzz_targets/*.rs` and of the directories of
/// `fuzz/seeds/` and `fuzz/regressions/`.
pub const TARGETS: [(&str, Target); 6] = [
    ("frame", frame),
    ("record", record),
    ("segment", segment),
    ("index", index),
    ("checkpoint", checkpoint),
    ("store", store),
];

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
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
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
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

/// Writes the files of a `store` input into `dir` (as the `store` target does) and returns the
/// input's mode byte.
pub fn write_store_files(data: &[u8], dir: &Path) -> u8 {
    let (mode, files) = decode_store_input(data);
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).expect("write an input file");
    }
    mode
}
