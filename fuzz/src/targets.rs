//! What each fuzz target does with its input. Shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and by `tests/fuzz_regressions.rs`, which replays every committed
//! crash input through the same functions, so `cargo test` runs them.
//!
//! Every function takes arbitrary bytes and must not panic, hang or allocate without bound;
//! decode errors are fine. The first input byte of most targets is a mode: bit 0 asks the
//! target to fix the checksums (and lengths) of the structure before decoding it, so that the
//! fuzzer gets past them and reaches the checks and lookups behind them.
//!
//! This file depends only on `evlog`, on `crc32fast`, `serde` and `zstd` (dependencies of
//! `evlog`) and on `tempfile` (a dev-dependency of `evlog`), so the test crate can include it
//! with `#[path]`.

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
use evlog::wire::archive::{
    ARCHIVE_MAGIC, MAX_ARCHIVE_PATH_BYTES, decode_archive_marker, encode_archive_marker,
};
use evlog::wire::bytes::{stream_hash, u16_at, u32_at, u64_at};
use evlog::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint, encode_checkpoint};
use evlog::wire::frame::{
    FRAME_HEADER_BYTES, FRAME_MAGIC, FRAME_OVERHEAD_BYTES, FRAME_VERSION_COMPACTED, FrameHeader,
    begin_frame, check_frame, finish_frame_version, frame_body,
};
use evlog::wire::index_file::{
    BLOOM_BLOCK_BYTES, FRAME_ENTRY_BYTES, ID_ENTRY_BYTES, INDEX_HEADER_BYTES, INDEX_MAGIC,
    INDEX_VERSION, IndexHeader, IndexView, STREAM_ENTRY_BYTES, check_index_body,
    check_index_tables,
};
use evlog::wire::index_names::{
    INDEX_FLAG_NAMES, STREAM_NAME_ENTRY_BYTES, TYPE_ENTRY_BYTES, TYPE_EVENT_ENTRY_BYTES,
};
use evlog::wire::limits::MAX_STREAM_ID_BYTES;
use evlog::wire::record::{RecordView, Records, decode_record, encode_dropped_record, peek_record};
use evlog::wire::segment::{
    FOOTER_BYTES, FOOTER_MAGIC, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SegmentFooter, SegmentHeader,
    index_file_name, parse_segment_file_name, segment_file_name,
};
use evlog::wire::settings::{
    SETTINGS_FILE_NAME, SETTINGS_HEADER_BYTES, SETTINGS_MAGIC, SETTINGS_VERSION, StreamSettings,
    decode_settings, encode_settings,
};
use evlog::wire::zseg::{
    ZSEG_BLOCK_ENTRY_BYTES, ZSEG_BLOCK_RAW_MAX, ZSEG_BLOCK_RAW_MIN, ZSEG_HEADER_BYTES, ZSEG_MAGIC,
    ZSEG_MAX_IMAGE_BYTES, ZSEG_PREFIX_BYTES, ZSEG_VERSION, ZsegLayout, compress_image, decode_zseg,
    decode_zseg_header, decompress_block, decompress_image, decompress_image_into, zseg_file_name,
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
    b[8..10].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    // The name tables flag or none; without it, no name table sizes.
    let flags = u16_at(b, 10) & INDEX_FLAG_NAMES;
    b[10..12].copy_from_slice(&flags.to_le_bytes());
    if flags == 0 {
        b[44..60].fill(0);
    }
    let frames = u32_at(b, 12) as u64;
    let events = u32_at(b, 24) as u64;
    let bloom = u32_at(b, 40) as u64;
    let names = u32_at(b, 44) as u64 * TYPE_ENTRY_BYTES as u64
        + u32_at(b, 48) as u64 * TYPE_EVENT_ENTRY_BYTES as u64
        + u32_at(b, 52) as u64 * STREAM_NAME_ENTRY_BYTES as u64
        + u32_at(b, 56) as u64;
    let len = INDEX_HEADER_BYTES as u64
        + frames * FRAME_ENTRY_BYTES as u64
        + events * (STREAM_ENTRY_BYTES + ID_ENTRY_BYTES) as u64
        + bloom * BLOOM_BLOCK_BYTES as u64
        + names;
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

/// Fixes a compressed segment (`.zseg`): magic, format version, the block size and image length
/// (each clamped into the range readers accept), the block count (to what they give), then, if
/// the block table fits in the file, the blocks' lengths (each clipped to the bytes left, at
/// least one; the last one to the end of the file), each block's CRC and the table CRC; last the
/// header CRC. With `copies`, also the copies of the segment header and footer (at 64 and 128)
/// to the image's first and last 64 bytes, when the blocks that hold them decompress, so that a
/// mutated image can decompress whole.
pub fn fix_zseg(b: &mut [u8], copies: bool) {
    if b.len() < ZSEG_HEADER_BYTES {
        return;
    }
    b[0..8].copy_from_slice(&ZSEG_MAGIC);
    put_u16(b, 8, ZSEG_VERSION);
    let block_raw = u32_at(b, 12).clamp(ZSEG_BLOCK_RAW_MIN, ZSEG_BLOCK_RAW_MAX);
    put_u32(b, 12, block_raw);
    let min_image = (SEGMENT_HEADER_BYTES + FOOTER_BYTES) as u64;
    let image_len = u64_at(b, 16).clamp(min_image, ZSEG_MAX_IMAGE_BYTES);
    put_u64(b, 16, image_len);
    // At most 2^32 / 2^12 = 2^20 blocks.
    let count = image_len.div_ceil(u64::from(block_raw)) as usize;
    put_u32(b, 24, count as u32);
    let table_end = ZSEG_PREFIX_BYTES + count * ZSEG_BLOCK_ENTRY_BYTES;
    if table_end <= b.len() {
        let mut at = table_end;
        for i in 0..count {
            let left = (b.len() - at).min(u32::MAX as usize);
            if left == 0 {
                break;
            }
            let e = ZSEG_PREFIX_BYTES + i * ZSEG_BLOCK_ENTRY_BYTES;
            let len = if i + 1 == count {
                left
            } else {
                (u32_at(b, e) as usize).clamp(1, left)
            };
            put_u32(b, e, len as u32);
            let c = crc(&b[at..at + len]);
            put_u32(b, e + 4, c);
            at += len;
        }
        let table_crc = crc(&b[ZSEG_PREFIX_BYTES..table_end]);
        put_u32(b, 28, table_crc);
    }
    let c = crc(&b[0..60]);
    put_u32(b, 60, c);
    if copies && let Ok(layout) = decode_zseg(b) {
        let len = layout.image_len;
        let head = zseg_image_range(b, &layout, 0, SEGMENT_HEADER_BYTES as u64);
        let foot = zseg_image_range(b, &layout, len - FOOTER_BYTES as u64, len);
        if let Some(head) = head {
            b[ZSEG_HEADER_BYTES..ZSEG_HEADER_BYTES + SEGMENT_HEADER_BYTES].copy_from_slice(&head);
        }
        if let Some(foot) = foot {
            b[ZSEG_HEADER_BYTES + SEGMENT_HEADER_BYTES..ZSEG_PREFIX_BYTES].copy_from_slice(&foot);
        }
    }
}

/// The image bytes `[from, to)` of a compressed segment, decompressing only the blocks that
/// hold them (each at most `ZSEG_BLOCK_RAW_MAX` bytes); `None` if one of them does not.
fn zseg_image_range(buf: &[u8], layout: &ZsegLayout, from: u64, to: u64) -> Option<Vec<u8>> {
    let mut dec = zstd::bulk::Decompressor::new().ok()?;
    let mut out = Vec::with_capacity((to - from) as usize);
    for blk in &layout.blocks {
        let end = blk.image_offset + u64::from(blk.raw_len);
        if end <= from || blk.image_offset >= to {
            continue;
        }
        let mut raw = vec![0u8; blk.raw_len as usize];
        decompress_block(buf, blk, &mut raw, &mut dec).ok()?;
        let lo = from.max(blk.image_offset) - blk.image_offset;
        let hi = to.min(end) - blk.image_offset;
        out.extend_from_slice(&raw[lo as usize..hi as usize]);
    }
    (out.len() as u64 == to - from).then_some(out)
}

/// Fixes an archive marker (`archive.path`): magic, the path length (clipped to the bytes there
/// and to `MAX_ARCHIVE_PATH_BYTES`; the file is cut after the CRC) and the CRC. (Not the
/// version, whose check comes after the CRC's.)
pub fn fix_archive_marker(b: &mut Vec<u8>) {
    if b.len() < 16 {
        return;
    }
    b[0..8].copy_from_slice(&ARCHIVE_MAGIC);
    let len = usize::from(u16_at(b, 10))
        .min(b.len() - 16)
        .min(MAX_ARCHIVE_PATH_BYTES);
    put_u16(b, 10, len as u16);
    b.truncate(16 + len);
    let c = crc(&b[..12 + len]);
    put_u32(b, 12 + len, c);
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
                let _ = rec.to_recorded(
                    h.first_position + u64::from(n),
                    Arc::from(rec.stream),
                    Arc::from(rec.event_type),
                );
            }
            Err(_) => break,
        }
    }
    assert!(n <= h.count, "more records than the frame's count");
}

/// Record decoder: `decode_record`, the record's metadata and owned form, `peek_record` (which
/// must agree with `decode_record` wherever that decodes), the placeholder compaction would
/// leave for the record (`encode_dropped_record`, in a version-2 frame), and `Records` over the
/// same bytes. Input: a count byte (for `Records`), then record bytes.
pub fn record(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let _ = peek_record(data);
    let peeked = peek_record(rest);
    if let Some((_, _, len)) = peeked {
        assert!(len <= rest.len(), "peek_record: a record past its bytes");
    }
    if let Ok((rec, used)) = decode_record(rest, 0) {
        assert!(used <= rest.len(), "record longer than its bytes");
        assert_eq!(
            peeked,
            Some((rec.stream.as_bytes(), rec.event_type.as_bytes(), used)),
            "peek_record disagrees with decode_record"
        );
        let m = rec.metadata();
        // The borrowed metadata says what the owned decode says.
        for (k, v) in m.extra.iter() {
            assert_eq!(
                rec.meta_value(k),
                Some(v),
                "borrowed metadata value of {k:?}"
            );
        }
        let keys: std::collections::BTreeSet<&str> = rec.meta_entries().map(|(k, _)| k).collect();
        assert!(
            keys.iter().copied().eq(m.extra.keys()),
            "borrowed metadata keys"
        );
        // Writers write keys in strictly increasing order; then the borrowed entries are the
        // owned ones (a foreign or damaged record's are handed out in its own order).
        let in_order = rec
            .meta_entries()
            .zip(rec.meta_entries().skip(1))
            .all(|((a, _), (b, _))| a < b);
        if in_order {
            assert!(
                rec.meta_entries().eq(m.extra.iter()),
                "borrowed metadata entries"
            );
        }
        assert_eq!(
            rec.meta_bytes,
            m.bytes.as_slice(),
            "borrowed metadata bytes"
        );
        let owned = rec.to_recorded(7, Arc::from(rec.stream), Arc::from(rec.event_type));
        assert_eq!(owned.payload, rec.payload);
        assert_eq!(owned.metadata, m);
        let e = EventData::new(rec.event_type, rec.payload.to_vec())
            .with_id(rec.id)
            .with_metadata(m);
        assert!(
            rec.same_content(&e),
            "a record differs from its own content"
        );
        if rec.dropped {
            assert!(
                rec.event_type.is_empty()
                    && rec.payload.is_empty()
                    && rec.correlation_id.is_none()
                    && rec.causation_id.is_none()
                    && rec.extra().is_empty(),
                "a placeholder with content"
            );
        }
        dropped_round_trip(&rec);
    }
    let mut at_prev = None;
    for r in Records::new(rest, u32::from(count)) {
        match r {
            Ok((at, rec)) => {
                assert!(at_prev.is_none_or(|p| at > p), "records go backward");
                at_prev = Some(at);
                let p = peek_record(&rest[at..]);
                assert!(
                    p.is_some_and(
                        |(s, t, _)| (s, t) == (rec.stream.as_bytes(), rec.event_type.as_bytes())
                    ),
                    "peek_record disagrees with Records"
                );
            }
            Err(_) => break,
        }
    }
}

/// The placeholder of `rec` (`encode_dropped_record`, written after other bytes): it decodes as
/// a dropped record with `rec`'s version, timestamp, id and stream and nothing else, `peek_record`
/// reads it, its own placeholder is itself, and a version-2 frame of it and `rec` checks.
fn dropped_round_trip(rec: &RecordView<'_>) {
    let mut out = vec![0xa5; 3];
    encode_dropped_record(&mut out, rec);
    let placeholder = &out[3..];
    let (d, n) = decode_record(placeholder, 3).expect("a placeholder decodes");
    assert_eq!(n, placeholder.len(), "placeholder length");
    assert!(d.dropped, "a placeholder decodes as dropped");
    assert_eq!(
        (d.version, d.timestamp_us, d.id, d.stream),
        (rec.version, rec.timestamp_us, rec.id, rec.stream),
        "a placeholder keeps version, timestamp, id and stream"
    );
    assert!(
        d.event_type.is_empty()
            && d.payload.is_empty()
            && d.correlation_id.is_none()
            && d.causation_id.is_none()
            && d.extra().is_empty(),
        "a placeholder with content"
    );
    assert_eq!(
        peek_record(placeholder),
        Some((rec.stream.as_bytes(), &b""[..], n)),
        "peek_record of a placeholder"
    );
    let mut again = Vec::new();
    encode_dropped_record(&mut again, &d);
    assert_eq!(again, placeholder, "the placeholder of a placeholder");
    // A compacted frame: the placeholder, then the record itself (re-encoded from the view).
    let mut frame = Vec::new();
    let start = begin_frame(&mut frame);
    frame.extend_from_slice(placeholder);
    let e = EventData::new(rec.event_type, rec.payload.to_vec())
        .with_id(rec.id)
        .with_metadata(rec.metadata());
    if rec.dropped {
        frame.extend_from_slice(placeholder);
    } else {
        evlog::wire::record::encode_record(
            &mut frame,
            rec.stream,
            rec.version,
            rec.timestamp_us,
            &e,
        );
    }
    if frame.len() - FRAME_HEADER_BYTES > evlog::wire::limits::MAX_BATCH_BYTES {
        return;
    }
    finish_frame_version(&mut frame, start, 9, 2, 11, FRAME_VERSION_COMPACTED);
    let h = check_frame(&frame).expect("a compacted frame checks");
    let recs: Vec<_> = Records::new(frame_body(&frame, &h), h.count)
        .collect::<Result<_, _>>()
        .expect("the records of a compacted frame decode");
    assert!(recs[0].1.dropped);
    assert_eq!(recs[1].1.dropped, rec.dropped);
    assert!(
        rec.dropped || recs[1].1.same_content(&e),
        "re-encoded record"
    );
}

/// Segment header and footer, and the frame scan recovery and index rebuilds run over a
/// segment: `SegmentHeader::decode`, `SegmentFooter::decode` (of the last 64 bytes),
/// `scan_frames`, `durable_frame_after`, `build_index`. Input: mode byte, then a segment file.
/// With mode bit 1, the file is a compressed segment (`.zseg`) instead: see [`zseg`] (bit 0
/// then fixes it with [`fix_zseg`], and bit 2 its copies of the segment header and footer too).
pub fn segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 2 != 0 {
        if mode & 1 != 0 {
            fix_zseg(&mut b, mode & 4 != 0);
        }
        zseg(&b);
        return;
    }
    if mode & 1 != 0 {
        fix_segment(&mut b);
    }
    segment_file(&b);
}

/// Largest image the fuzz targets let `decompress_image` decompress (a target-level guard, not
/// a limit of evlog). `decompress_image` allocates the header's `image_len` (up to
/// `ZSEG_MAX_IMAGE_BYTES`, 4 GiB) before it decompresses anything, and a file of a few KB with
/// valid checksums can claim that much (2^20 blocks of 4 MiB, each at least one byte); that
/// is by design (a real segment is that large), but over libFuzzer's `-rss_limit_mb=2048` it
/// stops the run with an out-of-memory report. 64 MiB leaves room under the limit (with
/// AddressSanitizer) and is more than any fuzz input decompresses to in practice.
pub const MAX_FUZZ_IMAGE_BYTES: u64 = 64 << 20;

/// A compressed segment file: `decode_zseg_header`, `decode_zseg` (whose blocks must tile the
/// image and the file), `decompress_image` (for images up to [`MAX_FUZZ_IMAGE_BYTES`]), whose
/// image must have the header's length and copies, and compress back (`compress_image`) to a
/// file that decompresses to the same image; then every check of [`segment_file`] over the
/// image.
fn zseg(b: &[u8]) {
    let header = decode_zseg_header(b);
    let layout = decode_zseg(b);
    let Ok((image_len, block_raw, count, _)) = header else {
        assert!(
            layout.is_err(),
            "decode_zseg accepts a header that does not decode"
        );
        return;
    };
    if let Ok(l) = &layout {
        assert_eq!(
            (l.image_len, l.block_raw_bytes, l.blocks.len()),
            (image_len, block_raw, count as usize),
            "layout against the header"
        );
        let mut image_at = 0u64;
        let mut file_at = (ZSEG_PREFIX_BYTES + l.blocks.len() * ZSEG_BLOCK_ENTRY_BYTES) as u64;
        for blk in &l.blocks {
            assert_eq!(blk.image_offset, image_at, "blocks tile the image");
            assert_eq!(blk.offset, file_at, "blocks follow each other in the file");
            assert!(blk.raw_len >= 1 && blk.raw_len <= block_raw, "block length");
            assert!(blk.compressed_len >= 1);
            image_at += u64::from(blk.raw_len);
            file_at += u64::from(blk.compressed_len);
        }
        assert_eq!(image_at, image_len, "the blocks hold the whole image");
        assert_eq!(
            file_at,
            b.len() as u64,
            "the blocks end at the end of the file"
        );
    }
    // See MAX_FUZZ_IMAGE_BYTES: a guard of the target against a huge (valid) allocation.
    if image_len > MAX_FUZZ_IMAGE_BYTES {
        return;
    }
    // The readers' path (into a buffer, on two threads, with the data's CRC) agrees with it.
    let into = layout.as_ref().ok().and_then(|l| {
        let mut out = vec![0; l.image_len as usize];
        let crc = decompress_image_into(b, l, &mut out, 2).ok()?;
        Some((out, crc))
    });
    let Ok(image) = decompress_image(b) else {
        assert!(
            into.is_none(),
            "decompress_image_into accepts what decompress_image refuses"
        );
        return;
    };
    let (out, crc) = into.expect("decompress_image_into refuses what decompress_image accepts");
    assert!(out == image, "decompress_image_into's image");
    assert_eq!(
        crc,
        crc32fast::hash(&image[..image.len() - FOOTER_BYTES]),
        "decompress_image_into's data CRC"
    );
    assert!(
        layout.is_ok(),
        "decompress_image accepts a layout decode_zseg refuses"
    );
    assert!(
        image.len() as u64 <= ZSEG_MAX_IMAGE_BYTES,
        "image over the limit"
    );
    assert_eq!(
        image.len() as u64,
        image_len,
        "image length against the header"
    );
    assert_eq!(
        &image[..SEGMENT_HEADER_BYTES],
        ZsegLayout::segment_header(b),
        "segment header copy"
    );
    assert_eq!(
        &image[image.len() - FOOTER_BYTES..],
        ZsegLayout::segment_footer(b),
        "segment footer copy"
    );
    let z = compress_image(&image).expect("a decompressed image compresses");
    let again = decompress_image(&z).expect("a compressed image decompresses");
    assert!(again == image, "compress_image round trip");
    segment_file(&image);
}

/// The checks of the `segment` target over the bytes of a `.seg` file.
fn segment_file(b: &[u8]) {
    if let Ok(s) = std::str::from_utf8(&b[..b.len().min(40)])
        && let Some(p) = parse_segment_file_name(s)
    {
        assert_eq!(segment_file_name(p), s, "segment file names round-trip");
    }
    let Ok(h) = SegmentHeader::decode(b) else {
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
        // The in-step searches probe exactly as the single one does, sorted table or not.
        assert_eq!(
            evlog::wire::index_file::lower_bounds(&[*v, *v], e.hash, e.version),
            [lb, lb]
        );
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
    name_lookups(v);
}

/// The name tables' lookups, on any bytes; on tables that pass `check_index_tables`, each
/// name is found where it is.
fn name_lookups(v: &IndexView<'_>) {
    if !v.has_names() {
        return;
    }
    let h = v.header;
    let checked = check_index_tables(v.bytes(), &h).is_ok();
    let step = |n: usize| (n / 256).max(1);
    for i in (0..v.type_count()).step_by(step(v.type_count())) {
        let name = v.type_name(i);
        let run = v.type_events(i);
        assert!(
            run.end <= h.names.typed_count as usize,
            "a type's run stays in its table"
        );
        for j in run.step_by(step(h.names.typed_count as usize)) {
            let _ = v.type_event(j);
        }
        let found = v.find_type(name);
        if checked {
            assert_eq!(found, Some(i), "a checked type table finds its own names");
        }
    }
    let _ = v.find_type(b"");
    let _ = v.find_type(&[0xff; 3]);
    for i in (0..v.stream_count()).step_by(step(v.stream_count())) {
        let name = v.stream_name(i);
        let with = v.streams_with_prefix(name);
        assert!(with.end <= v.stream_count());
        if checked {
            assert!(
                with.contains(&i),
                "a checked stream table finds its own names"
            );
        }
        let _ = v.streams_with_prefix(&name[..name.len() / 2]);
    }
    assert_eq!(v.streams_with_prefix(b"").len(), v.stream_count());
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
    let _ = check_index_tables(&b, &v.header);
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
    // A table without an id twice (an older list may hold one twice) finds every stream it
    // lists, and re-encodes to one that decodes to the same streams.
    let mut listed: Vec<(&str, u64)> = c.streams.iter().collect();
    listed.sort_unstable();
    let unique = listed.windows(2).all(|w| w[0].0 != w[1].0);
    for &(s, v) in &listed {
        let _ = stream_hash(s);
        if unique {
            assert_eq!(c.streams.get(s), Some(v), "{s}");
        }
        assert!(c.streams.max_version() >= Some(v));
    }
    // Version 3 holds only ids of 1 or more bytes.
    if unique && listed.iter().all(|(s, _)| !s.is_empty()) {
        let again = encode_checkpoint(
            c.next_position,
            c.last_frame_header_crc,
            listed.iter().copied(),
            c.index,
            c.id_filter,
        );
        let d = decode_checkpoint(&again).expect("a re-encoded checkpoint decodes");
        let mut relisted: Vec<(&str, u64)> = d.streams.iter().collect();
        relisted.sort_unstable();
        assert_eq!(relisted, listed);
        for &(s, v) in &listed {
            assert_eq!(d.streams.get(s), Some(v), "{s}");
        }
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

/// Flag of a segment file's kind byte (kind 0): the file is a compressed segment `<pos>.zseg`,
/// and its bytes are the `.zseg` file's (mode bit 0 fixes them with [`fix_zseg`], copies too).
pub const KIND_FLAG_ZSEG: u8 = 4;
/// Flag of a segment file's kind byte (kind 0), over [`KIND_FLAG_ZSEG`]: the bytes are a `.seg`
/// file's (mode bit 0 fixes them with [`fix_segment`]), which the target compresses with
/// `compress_image` into `<pos>.zseg` (bytes too short to be an image are written as they are).
pub const KIND_FLAG_COMPRESS: u8 = 8;

/// Splits a `store` input into files: after the mode byte, a sequence of
/// `kind u8 | first position u64 | length u32 | bytes` (a length past the end takes the rest).
/// Kind (the kind byte modulo 4) 0 is a segment `<pos>.seg`, 1 its index `<pos>.idx`, 2 the
/// checkpoint, 3 a stray `<pos>.seg.tmp` (open deletes temp files). A segment's kind byte may
/// make it a compressed segment `<pos>.zseg` ([`KIND_FLAG_ZSEG`], [`KIND_FLAG_COMPRESS`]; flags
/// of the kind byte rather than mode bits, because the committed regressions use every mode
/// bit, 0xff, and no kind byte with these bits on a segment). Mode bits 0, 3 and 4 fix the
/// checksums of the segments (`.seg` and `.zseg`), the `.idx` files and the checkpoint (see
/// [`fix_segment`], [`fix_zseg`], [`fix_index`], [`fix_checkpoint`]).
///
/// A `.zseg` whose header (checksum right) claims an image over [`MAX_FUZZ_IMAGE_BYTES`] is
/// left out: reading it would allocate its whole image (up to 4 GiB) before decompressing, past
/// the fuzzer's memory limit (a guard of the target, not a limit of evlog).
fn decode_store_input(data: &[u8]) -> (u8, Vec<(String, Vec<u8>)>) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut files = Vec::new();
    while rest.len() >= 13 && files.len() < MAX_FILES {
        let kind_byte = rest[0];
        let kind = kind_byte % 4;
        let pos = u64_at(rest, 1);
        let len = (u32_at(rest, 9) as usize).min(rest.len() - 13);
        let mut bytes = rest[13..13 + len].to_vec();
        rest = &rest[13 + len..];
        let zseg = kind == KIND_SEGMENT && kind_byte & (KIND_FLAG_ZSEG | KIND_FLAG_COMPRESS) != 0;
        let name = match kind {
            KIND_SEGMENT if zseg => zseg_file_name(pos),
            KIND_SEGMENT => segment_file_name(pos),
            KIND_INDEX => index_file_name(pos),
            KIND_CHECKPOINT => CHECKPOINT_FILE_NAME.to_owned(),
            _ => format!("{}.tmp", segment_file_name(pos)),
        };
        match kind {
            KIND_SEGMENT if kind_byte & KIND_FLAG_COMPRESS != 0 => {
                if mode & 1 != 0 {
                    fix_segment(&mut bytes);
                }
                if bytes.len() >= SEGMENT_HEADER_BYTES + FOOTER_BYTES {
                    bytes = compress_image(&bytes).expect("compress a segment image");
                }
            }
            KIND_SEGMENT if zseg && mode & 1 != 0 => fix_zseg(&mut bytes, true),
            KIND_SEGMENT if mode & 1 != 0 => fix_segment(&mut bytes),
            KIND_INDEX if mode & 8 != 0 => fix_index(&mut bytes),
            KIND_CHECKPOINT if mode & 16 != 0 => fix_checkpoint(&mut bytes),
            _ => {}
        }
        if zseg && decode_zseg_header(&bytes).is_ok_and(|(n, ..)| n > MAX_FUZZ_IMAGE_BYTES) {
            continue;
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

/// A store directory made of the input's files (see [`decode_store_input`]; segments may be
/// compressed `.zseg` files, damaged or not): `verify_dir`, a
/// read-only open and every read, a writable open (with repair when mode bit 1 is set) and
/// every read, an append (mode bit 2), close, and a second writable open. Any error is fine; a
/// panic, hang or huge allocation is a bug. Where both succeed, the opens must agree: a
/// read-only and a writable open (without repair) of the same files show the same events, and
/// the reopen shows what the writer left. An append lands right after the head, and right
/// after the events read when no segment holds a compaction placeholder (reads skip those).
pub fn store(data: &[u8]) {
    let root = temp_dir();
    let dir = root.path();
    let (mode, files) = decode_store_input(data);
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).expect("write an input file");
    }
    let placeholders = holds_placeholders(&files);
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
            let head = s.head_position();
            let e = EventData::new("A", b"fuzz".to_vec());
            if let Ok(r) = s.append("fuzz", ExpectedVersion::Any, &[e]) {
                assert_eq!(
                    r.first_position,
                    head.map_or(0, |h| h + 1),
                    "position of a new append against the head"
                );
                if let Some(rw) = &seen {
                    if placeholders {
                        assert!(
                            rw.last().is_none_or(|e| e.position < r.first_position),
                            "a new append before an event read"
                        );
                    } else {
                        assert_eq!(
                            r.first_position,
                            rw.len() as u64,
                            "position of a new append"
                        );
                    }
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

/// True when a frame of a segment file among `files` (a `.seg` file, or the image of a `.zseg`
/// file) holds a compaction placeholder (reads skip it, so positions are not the number of
/// events read). Frames are walked from the segment header to the first that does not check.
fn holds_placeholders(files: &[(String, Vec<u8>)]) -> bool {
    files.iter().any(|(name, bytes)| {
        let image;
        let b: &[u8] = if name.ends_with(".zseg") {
            // Left out of the input when it claims over MAX_FUZZ_IMAGE_BYTES.
            match decompress_image(bytes) {
                Ok(i) => {
                    image = i;
                    &image
                }
                Err(_) => return false,
            }
        } else if name.ends_with(".seg") {
            bytes
        } else {
            return false;
        };
        let mut at = SEGMENT_HEADER_BYTES;
        while at < b.len() {
            let Ok(h) = check_frame(&b[at..]) else {
                break;
            };
            let body = frame_body(&b[at..], &h);
            if Records::new(body, h.count).any(|r| r.is_ok_and(|(_, r)| r.dropped)) {
                return true;
            }
            at += h.frame_len();
        }
        false
    })
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
        self.last_type = e.event_type.to_string();
        *self.by_type.entry(e.event_type.to_string()).or_default() += 1;
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
///
/// The same bytes are also decoded as the archive marker `archive.path` (fixed by
/// [`fix_archive_marker`] when bit 0 is set): see [`archive_marker`].
pub fn settings(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut marker = rest.to_vec();
    if mode & 1 != 0 {
        fix_archive_marker(&mut marker);
    }
    archive_marker(&marker);
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

/// The archive marker: `decode_archive_marker`, whose path must encode back to the same bytes
/// (`encode_archive_marker`), and a round trip of a marker naming a path made of the input (its
/// longest UTF-8 prefix, up to `MAX_ARCHIVE_PATH_BYTES`). (Not in a store: a store follows its
/// marker to the archive directory and removes segment files there that it also holds, so a
/// fuzzed path could name a real directory.)
fn archive_marker(b: &[u8]) {
    if let Ok(path) = decode_archive_marker(b) {
        assert!(path.len() <= MAX_ARCHIVE_PATH_BYTES, "archive path length");
        assert_eq!(
            encode_archive_marker(path),
            b,
            "an archive marker encodes back to its bytes"
        );
    }
    let head = &b[..b.len().min(MAX_ARCHIVE_PATH_BYTES)];
    let path = match std::str::from_utf8(head) {
        Ok(p) => p,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).expect("a valid UTF-8 prefix"),
    };
    let enc = encode_archive_marker(path);
    assert_eq!(
        decode_archive_marker(&enc),
        Ok(path),
        "archive marker round trip"
    );
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
