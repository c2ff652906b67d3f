//! The byte layout of a snapshot file (`format/FORMAT.md` § 20): pure functions over byte
//! slices. A file is a 64-byte header, the stream id, then the state compressed as one zstd
//! frame. Decoders check every length against a named limit before allocating and never panic.

use crate::error::{Error, Result};
use crate::wire::bytes::{u16_at, u32_at, u64_at};
use crate::wire::limits::MAX_STREAM_ID_BYTES;
use crate::wire::stream_hash;

use super::reason::IgnoredReason;

/// Bytes 0..8 of every snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"EVLOGSNP";

/// The snapshot file format version this build writes and reads.
pub const SNAPSHOT_VERSION: u16 = 1;

/// Size of the snapshot header; the stream id starts here.
pub const SNAPSHOT_HEADER_BYTES: usize = 64;

/// Largest decompressed state, in bytes. A state past 64 MiB means the aggregate should be split
/// (or not snapshotted); the limit bounds what a reader allocates for one snapshot, whatever the
/// header says. Stored in a `u32`.
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Largest compressed state, in bytes: zstd's worst-case bound for [`MAX_SNAPSHOT_BYTES`]
/// (`n + n/256 + 128 KiB` is above `ZSTD_COMPRESSBOUND(n)` for every `n`), so every state the
/// writer accepts fits.
pub const MAX_SNAPSHOT_COMPRESSED_BYTES: usize =
    MAX_SNAPSHOT_BYTES + (MAX_SNAPSHOT_BYTES >> 8) + (128 << 10);

/// Largest snapshot file: header, longest stream id, largest compressed state. A longer file is
/// ignored without being read.
pub const MAX_SNAPSHOT_FILE_BYTES: usize =
    SNAPSHOT_HEADER_BYTES + MAX_STREAM_ID_BYTES + MAX_SNAPSHOT_COMPRESSED_BYTES;

/// The zstd level states are compressed at (zstd's default: fast, and most of the gain).
pub const SNAPSHOT_ZSTD_LEVEL: i32 = 3;

/// Header field offsets (`format/FORMAT.md` § 20.2).
pub mod offsets {
    /// `u16` format version.
    pub const VERSION: usize = 8;
    /// `u16` length of the stream id.
    pub const STREAM_LEN: usize = 10;
    /// `u32` schema version of the state.
    pub const SCHEMA_VERSION: usize = 12;
    /// `u64` version of the stream's last event the state includes.
    pub const STREAM_VERSION: usize = 16;
    /// `u64` creation time, microseconds since the Unix epoch.
    pub const CREATED_US: usize = 24;
    /// `u64` FNV-1a 64 hash of the stream id.
    pub const STREAM_HASH: usize = 32;
    /// `u32` length of the compressed state.
    pub const COMPRESSED_LEN: usize = 40;
    /// `u32` length of the decompressed state.
    pub const STATE_LEN: usize = 44;
    /// `u32` CRC-32 of the stream id bytes.
    pub const STREAM_CRC: usize = 48;
    /// `u32` CRC-32 of the compressed state.
    pub const BODY_CRC: usize = 52;
    /// 4 reserved bytes, zero.
    pub const RESERVED: usize = 56;
    /// `u32` CRC-32 of header bytes 0..60.
    pub const HEADER_CRC: usize = 60;
}

/// The decoded header of a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Format version (1).
    pub format_version: u16,
    /// Length of the stream id that follows the header.
    pub stream_len: u16,
    /// Schema version of the state (the aggregate's `SCHEMA_VERSION`).
    pub schema_version: u32,
    /// Version of the stream's last event the state includes.
    pub stream_version: u64,
    /// When the snapshot was written, microseconds since the Unix epoch.
    pub created_us: u64,
    /// FNV-1a 64 hash of the stream id (`wire::stream_hash`).
    pub stream_hash: u64,
    /// Length of the compressed state.
    pub compressed_len: u32,
    /// Length of the decompressed state.
    pub state_len: u32,
    /// CRC-32 of the stream id bytes.
    pub stream_crc: u32,
    /// CRC-32 of the compressed state.
    pub body_crc: u32,
}

impl SnapshotHeader {
    /// Offset of the compressed state in the file.
    pub fn body_offset(&self) -> usize {
        SNAPSHOT_HEADER_BYTES + usize::from(self.stream_len)
    }

    /// Length of the whole file the header describes.
    pub fn file_len(&self) -> usize {
        self.body_offset() + self.compressed_len as usize
    }
}

/// Encodes a snapshot file: compresses `state`, checksums it, and lays out header, stream id
/// and body.
///
/// Errors: [`Error::InvalidArgument`] for an empty or oversize stream id or a state larger than
/// [`MAX_SNAPSHOT_BYTES`].
pub fn encode_snapshot(
    stream: &str,
    stream_version: u64,
    schema_version: u32,
    created_us: u64,
    state: &[u8],
) -> Result<Vec<u8>> {
    if stream.is_empty() || stream.len() > MAX_STREAM_ID_BYTES {
        return Err(Error::InvalidArgument(format!(
            "snapshot stream id must be 1 to {MAX_STREAM_ID_BYTES} bytes, got {}",
            stream.len()
        )));
    }
    if state.len() > MAX_SNAPSHOT_BYTES {
        return Err(Error::InvalidArgument(format!(
            "snapshot state of {} bytes is over MAX_SNAPSHOT_BYTES ({MAX_SNAPSHOT_BYTES}); \
             split the aggregate or do not snapshot it",
            state.len()
        )));
    }
    let body = zstd::bulk::compress(state, SNAPSHOT_ZSTD_LEVEL)
        .map_err(|e| Error::InvalidArgument(format!("snapshot state does not compress: {e}")))?;
    assert!(
        body.len() <= MAX_SNAPSHOT_COMPRESSED_BYTES,
        "zstd output of {} bytes is over its bound",
        body.len()
    );
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + stream.len() + body.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    out.extend_from_slice(&schema_version.to_le_bytes());
    out.extend_from_slice(&stream_version.to_le_bytes());
    out.extend_from_slice(&created_us.to_le_bytes());
    out.extend_from_slice(&stream_hash(stream).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&(state.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(stream.as_bytes()).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let crc = crc32fast::hash(&out[..offsets::HEADER_CRC]);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), SNAPSHOT_HEADER_BYTES);
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes and checks the header at the start of `head` (at least its first 64 bytes) of a file
/// of `file_len` bytes: magic, header checksum, version, length limits, and that the file is
/// exactly as long as the header says.
pub fn decode_header(head: &[u8], file_len: u64) -> Result<SnapshotHeader, IgnoredReason> {
    if head.len() < SNAPSHOT_HEADER_BYTES {
        return Err(IgnoredReason::Truncated);
    }
    if &head[..8] != SNAPSHOT_MAGIC {
        return Err(IgnoredReason::BadMagic);
    }
    if crc32fast::hash(&head[..offsets::HEADER_CRC]) != u32_at(head, offsets::HEADER_CRC) {
        return Err(IgnoredReason::HeaderChecksum);
    }
    let h = SnapshotHeader {
        format_version: u16_at(head, offsets::VERSION),
        stream_len: u16_at(head, offsets::STREAM_LEN),
        schema_version: u32_at(head, offsets::SCHEMA_VERSION),
        stream_version: u64_at(head, offsets::STREAM_VERSION),
        created_us: u64_at(head, offsets::CREATED_US),
        stream_hash: u64_at(head, offsets::STREAM_HASH),
        compressed_len: u32_at(head, offsets::COMPRESSED_LEN),
        state_len: u32_at(head, offsets::STATE_LEN),
        stream_crc: u32_at(head, offsets::STREAM_CRC),
        body_crc: u32_at(head, offsets::BODY_CRC),
    };
    if h.format_version != SNAPSHOT_VERSION {
        return Err(IgnoredReason::UnsupportedVersion);
    }
    if h.stream_len == 0
        || usize::from(h.stream_len) > MAX_STREAM_ID_BYTES
        || h.compressed_len == 0
        || h.compressed_len as usize > MAX_SNAPSHOT_COMPRESSED_BYTES
        || h.state_len as usize > MAX_SNAPSHOT_BYTES
    {
        return Err(IgnoredReason::LengthOverLimit);
    }
    let want = h.file_len() as u64;
    if file_len < want {
        return Err(IgnoredReason::Truncated);
    }
    if file_len > want {
        return Err(IgnoredReason::TrailingBytes);
    }
    Ok(h)
}

/// Checks and returns the stream id stored after the header; `head` holds at least the header
/// and the stream id.
pub fn decode_stream<'a>(h: &SnapshotHeader, head: &'a [u8]) -> Result<&'a str, IgnoredReason> {
    let bytes = head
        .get(SNAPSHOT_HEADER_BYTES..h.body_offset())
        .ok_or(IgnoredReason::Truncated)?;
    if crc32fast::hash(bytes) != h.stream_crc {
        return Err(IgnoredReason::StreamIdDamaged);
    }
    let stream = std::str::from_utf8(bytes).map_err(|_| IgnoredReason::StreamIdDamaged)?;
    if stream_hash(stream) != h.stream_hash {
        return Err(IgnoredReason::StreamIdDamaged);
    }
    Ok(stream)
}

/// Checks the compressed state's checksum, then decompresses it into exactly `state_len` bytes
/// (allocated only after [`decode_header`] checked it against [`MAX_SNAPSHOT_BYTES`]).
pub fn decode_body(h: &SnapshotHeader, body: &[u8]) -> Result<Vec<u8>, IgnoredReason> {
    if body.len() != h.compressed_len as usize {
        return Err(IgnoredReason::Truncated);
    }
    if crc32fast::hash(body) != h.body_crc {
        return Err(IgnoredReason::BodyChecksum);
    }
    let want = h.state_len as usize;
    debug_assert!(want <= MAX_SNAPSHOT_BYTES);
    let state = zstd::bulk::decompress(body, want).map_err(|_| IgnoredReason::Decompress)?;
    if state.len() != want {
        return Err(IgnoredReason::Decompress);
    }
    Ok(state)
}

/// Decodes a whole snapshot file: header, stream id and state.
pub fn decode_snapshot(file: &[u8]) -> Result<(SnapshotHeader, &str, Vec<u8>), IgnoredReason> {
    let h = decode_header(file, file.len() as u64)?;
    let stream = decode_stream(&h, file)?;
    let state = decode_body(&h, &file[h.body_offset()..])?;
    Ok((h, stream, state))
}
