//! The checkpoint file (`checkpoint.idx`): the stream table (latest version of every stream) and
//! the index of the active segment's prefix, so that open does not rescan the log.
//!
//! ```text
//! header (64)  magic "EVLOGCKP" | version u16 | reserved u16 | stream_count u32 |
//!              next_position u64 | last_frame_header_crc u32 | id_filter_blocks u32 |
//!              body_len u64 | body_crc u32 | id_filter_segment u64 | reserved (8) |
//!              header_crc u32 (of bytes 0..60)
//! body         stream_count x (len u16 | stream id | last_version u64), then
//!              id_filter_blocks x 64 bytes (version 2: a copy of the last sealed segment's id
//!              Bloom filter), then an index file (see index_file) of the active segment's
//!              covered prefix
//! ```

use super::bytes::{Cursor, DecodeError, HeaderChecks, check_fixed_header, u16_at, u32_at, u64_at};
use super::index_file::BLOOM_BLOCK_BYTES;
use super::limits::{MAX_CHECKPOINT_BYTES, MAX_STREAM_ID_BYTES};

/// Magic at byte 0 of the checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"EVLOGCKP";
/// Current checkpoint format version: 2 adds the copy of the last sealed segment's id filter.
pub const CHECKPOINT_VERSION: u16 = 2;
/// The first checkpoint format version (no id filter), still read.
pub const CHECKPOINT_VERSION_1: u16 = 1;
/// Size of the checkpoint header.
pub const CHECKPOINT_HEADER_BYTES: usize = 64;
/// File name of the checkpoint inside a store directory.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoint.idx";

/// A decoded checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    /// First position not covered.
    pub next_position: u64,
    /// Header checksum of the last covered frame (0 when the covered prefix has no frame), used
    /// to check that the log still holds that frame where the index says.
    pub last_frame_header_crc: u32,
    /// Every stream with the version of its last event.
    pub streams: Vec<(&'a str, u64)>,
    /// The index file bytes of the active segment's covered prefix.
    pub index: &'a [u8],
    /// A copy of the id Bloom filter of the last sealed segment (version 2), so that the first
    /// append after an open can tell that its ids are not in that segment without reading and
    /// checking the segment's whole index.
    pub id_filter: Option<IdFilter<'a>>,
}

/// The id Bloom filter of a sealed segment (as its index holds it), copied into a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdFilter<'a> {
    /// First position of the segment whose ids it holds.
    pub segment_first_position: u64,
    /// Whole blocks of `BLOOM_BLOCK_BYTES`.
    pub blocks: &'a [u8],
}

/// Encodes a checkpoint.
pub fn encode_checkpoint<'s>(
    next_position: u64,
    last_frame_header_crc: u32,
    streams: impl ExactSizeIterator<Item = (&'s str, u64)>,
    index: &[u8],
    id_filter: Option<IdFilter<'_>>,
) -> Vec<u8> {
    let mut b = vec![0u8; CHECKPOINT_HEADER_BYTES];
    let count = streams.len() as u32;
    for (s, v) in streams {
        b.extend_from_slice(&(s.len() as u16).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    let (filter_blocks, filter_segment) = match id_filter {
        Some(f) => {
            assert!(
                f.blocks.len().is_multiple_of(BLOOM_BLOCK_BYTES),
                "whole filter blocks"
            );
            b.extend_from_slice(f.blocks);
            (
                (f.blocks.len() / BLOOM_BLOCK_BYTES) as u32,
                f.segment_first_position,
            )
        }
        None => (0, 0),
    };
    b.extend_from_slice(index);
    let body_len = (b.len() - CHECKPOINT_HEADER_BYTES) as u64;
    let body_crc = crc32fast::hash(&b[CHECKPOINT_HEADER_BYTES..]);
    b[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
    b[8..10].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&count.to_le_bytes());
    b[16..24].copy_from_slice(&next_position.to_le_bytes());
    b[24..28].copy_from_slice(&last_frame_header_crc.to_le_bytes());
    b[28..32].copy_from_slice(&filter_blocks.to_le_bytes());
    b[32..40].copy_from_slice(&body_len.to_le_bytes());
    b[40..44].copy_from_slice(&body_crc.to_le_bytes());
    b[44..52].copy_from_slice(&filter_segment.to_le_bytes());
    let crc = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and fully checks a checkpoint (both checksums, every length against its limit).
pub fn decode_checkpoint(buf: &[u8]) -> Result<Checkpoint<'_>, DecodeError> {
    check_fixed_header(
        buf,
        CHECKPOINT_HEADER_BYTES,
        &CHECKPOINT_MAGIC,
        60,
        &HeaderChecks {
            length: "checkpoint header length",
            magic: "checkpoint magic",
            checksum: "checkpoint header checksum",
        },
    )?;
    let version = u16_at(buf, 8);
    if version != CHECKPOINT_VERSION && version != CHECKPOINT_VERSION_1 {
        return Err(DecodeError::unsupported(
            8,
            "checkpoint format version",
            CHECKPOINT_VERSION.into(),
            u16_at(buf, 8).into(),
        ));
    }
    let count = u32_at(buf, 12) as usize;
    let body_len = u64_at(buf, 32);
    if body_len > MAX_CHECKPOINT_BYTES || body_len != (buf.len() - CHECKPOINT_HEADER_BYTES) as u64 {
        return Err(DecodeError::new(
            32,
            "checkpoint body length",
            (buf.len() - CHECKPOINT_HEADER_BYTES) as u64,
            body_len,
        ));
    }
    let body = &buf[CHECKPOINT_HEADER_BYTES..];
    let body_crc = crc32fast::hash(body);
    if body_crc != u32_at(buf, 40) {
        return Err(DecodeError::new(
            40,
            "checkpoint body checksum",
            u32_at(buf, 40).into(),
            body_crc.into(),
        ));
    }
    // Each stream takes at least 11 bytes; reject counts the body cannot hold before allocating.
    if count > body.len() / 11 {
        return Err(DecodeError::new(
            12,
            "checkpoint stream count",
            (body.len() / 11) as u64,
            count as u64,
        ));
    }
    let mut c = Cursor::new(body, CHECKPOINT_HEADER_BYTES);
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let len = c.u16("checkpoint stream id length")? as usize;
        let s = c.str_with_limit(len, MAX_STREAM_ID_BYTES, "checkpoint stream id")?;
        let v = c.u64("checkpoint stream version")?;
        streams.push((s, v));
    }
    // Version 1 has no filter: its bytes 28..32 and 44..52 are reserved zeros.
    let filter_blocks = if version == CHECKPOINT_VERSION_1 {
        0
    } else {
        u32_at(buf, 28) as usize
    };
    let id_filter = if filter_blocks == 0 {
        None
    } else {
        if filter_blocks > c.remaining() / BLOOM_BLOCK_BYTES {
            return Err(DecodeError::new(
                28,
                "checkpoint id filter blocks",
                (c.remaining() / BLOOM_BLOCK_BYTES) as u64,
                filter_blocks as u64,
            ));
        }
        Some(IdFilter {
            segment_first_position: u64_at(buf, 44),
            blocks: c.take(filter_blocks * BLOOM_BLOCK_BYTES, "checkpoint id filter")?,
        })
    };
    let index = c.take(c.remaining(), "checkpoint index")?;
    Ok(Checkpoint {
        next_position: u64_at(buf, 16),
        last_frame_header_crc: u32_at(buf, 24),
        streams,
        index,
        id_filter,
    })
}
