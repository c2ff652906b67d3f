//! Batch frames: one append is one frame, checksummed as a whole.
//!
//! ```text
//! header (32 bytes)  magic "EVFR" | version u8 | flags u8 | unsynced_before u16 | body_len u32 |
//!                    count u32 | first_position u64 | body_crc u32 | header_crc u32
//! body (body_len)    `count` records
//! trailer (8 bytes)  frame_len u32 | header_crc u32
//! ```

use super::bytes::{DecodeError, HeaderChecks, check_fixed_header_with, u32_at, u64_at};
use super::limits::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};

/// Magic at the start of every frame. Not zero, so an all-zero region never decodes.
pub const FRAME_MAGIC: [u8; 4] = *b"EVFR";
/// Current frame version.
pub const FRAME_VERSION: u8 = 1;
/// Version of the frames compaction rewrites: like version 1, but records may be dropped
/// placeholders (record flag `FLAG_DROPPED`). Builds that only know version 1 refuse them.
pub const FRAME_VERSION_COMPACTED: u8 = 2;
/// Version of the frames that may hold records of several streams (one
/// `Store::append_multi`, each stream's records together and in version order) or records
/// with opaque metadata bytes (record flag `FLAG_META_BYTES`); compaction keeps the version,
/// and such frames may then also hold dropped placeholders. Appends that use neither are
/// written as version 1, so a store that never uses them stays readable by builds that only
/// know versions 1 and 2: they refuse version 3 as a newer format (`Error::UnsupportedFormat`).
pub const FRAME_VERSION_MULTI: u8 = 3;
/// Size of a frame header.
pub const FRAME_HEADER_BYTES: usize = 32;
/// Size of a frame trailer.
pub const FRAME_TRAILER_BYTES: usize = 8;
/// Header plus trailer: the bytes a frame adds around its records.
pub const FRAME_OVERHEAD_BYTES: usize = FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES;

/// A decoded and checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame version: [`FRAME_VERSION`], [`FRAME_VERSION_COMPACTED`] or
    /// [`FRAME_VERSION_MULTI`].
    pub version: u8,
    /// Length of the body in bytes.
    pub body_len: u32,
    /// Number of records in the body (at least 1).
    pub count: u32,
    /// Global position of the first record.
    pub first_position: u64,
    /// CRC-32 of the body.
    pub body_crc: u32,
    /// CRC-32 of header bytes 0..28.
    pub header_crc: u32,
    /// How many positions before this frame were not yet known durable when it was written
    /// (saturating at `u16::MAX`). Recovery uses it to tell power-loss damage to unsynced
    /// writes (cut as a torn tail) from damage to data that was durable (corruption).
    pub unsynced_before: u16,
}

impl FrameHeader {
    /// Total bytes of the frame: header, body and trailer.
    pub fn frame_len(&self) -> usize {
        FRAME_OVERHEAD_BYTES + self.body_len as usize
    }

    /// The first position that was not yet known durable when this frame was written: every
    /// earlier event was durable then. (An upper bound when `unsynced_before` saturated.)
    pub fn durable_before(&self) -> u64 {
        self.first_position - u64::from(self.unsynced_before).min(self.first_position)
    }

    /// Position after the frame's last record.
    pub fn end_position(&self) -> u64 {
        self.first_position + u64::from(self.count)
    }

    /// Decodes and checks a header: magic, header checksum, version, flags and limits. The body
    /// length is trusted only after the header checksum matched.
    pub fn decode(buf: &[u8]) -> Result<FrameHeader, DecodeError> {
        Self::decode_with(buf, true)
    }

    /// [`FrameHeader::decode`], checking the header checksum only when `check_crc` (for bytes
    /// checked as a whole already); every other check runs.
    pub fn decode_with(buf: &[u8], check_crc: bool) -> Result<FrameHeader, DecodeError> {
        check_fixed_header_with(
            buf,
            FRAME_HEADER_BYTES,
            &FRAME_MAGIC,
            28,
            &HeaderChecks {
                length: "frame header length",
                magic: "frame magic",
                checksum: "frame header checksum",
            },
            check_crc,
        )?;
        let header_crc = u32_at(buf, 28);
        if ![FRAME_VERSION, FRAME_VERSION_COMPACTED, FRAME_VERSION_MULTI].contains(&buf[4]) {
            return Err(DecodeError::unsupported(
                4,
                "frame version",
                FRAME_VERSION_MULTI.into(),
                buf[4].into(),
            ));
        }
        if buf[5] != 0 {
            return Err(DecodeError::new(5, "frame flags", 0, buf[5].into()));
        }
        let unsynced_before = u16::from_le_bytes([buf[6], buf[7]]);
        let body_len = u32_at(buf, 8);
        if body_len as usize > MAX_BATCH_BYTES {
            return Err(DecodeError::new(
                8,
                "frame body length",
                MAX_BATCH_BYTES as u64,
                body_len.into(),
            ));
        }
        let count = u32_at(buf, 12);
        if count == 0 || count as usize > MAX_BATCH_EVENTS {
            return Err(DecodeError::new(
                12,
                "frame event count",
                MAX_BATCH_EVENTS as u64,
                count.into(),
            ));
        }
        let first_position = u64_at(buf, 16);
        if first_position.checked_add(u64::from(count)).is_none() {
            return Err(DecodeError::new(
                16,
                "frame position range",
                u64::MAX,
                first_position,
            ));
        }
        Ok(FrameHeader {
            version: buf[4],
            body_len,
            count,
            first_position,
            body_crc: u32_at(buf, 24),
            header_crc,
            unsynced_before,
        })
    }
}

/// Starts a frame in `out`: reserves the header and returns where the frame starts.
/// Append the records, then call [`finish_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + FRAME_HEADER_BYTES, 0);
    start
}

/// Completes the frame begun at `start`: fills the header, checksums and appends the trailer.
/// `durable_next` is the first position not yet known durable when the frame is written.
pub fn finish_frame(
    out: &mut Vec<u8>,
    start: usize,
    first_position: u64,
    count: u32,
    durable_next: u64,
) {
    finish_frame_version(
        out,
        start,
        first_position,
        count,
        durable_next,
        FRAME_VERSION,
    );
}

/// [`finish_frame`] with an explicit frame version (compaction writes
/// [`FRAME_VERSION_COMPACTED`]).
pub fn finish_frame_version(
    out: &mut Vec<u8>,
    start: usize,
    first_position: u64,
    count: u32,
    durable_next: u64,
    version: u8,
) {
    let body_len = out.len() - start - FRAME_HEADER_BYTES;
    assert!(
        body_len <= MAX_BATCH_BYTES,
        "frame body over MAX_BATCH_BYTES"
    );
    assert!(count >= 1 && count as usize <= MAX_BATCH_EVENTS);
    let body_crc = crc32fast::hash(&out[start + FRAME_HEADER_BYTES..]);
    let h = &mut out[start..start + FRAME_HEADER_BYTES];
    h[0..4].copy_from_slice(&FRAME_MAGIC);
    h[4] = version;
    h[5] = 0;
    let unsynced = first_position
        .saturating_sub(durable_next)
        .min(u64::from(u16::MAX)) as u16;
    h[6..8].copy_from_slice(&unsynced.to_le_bytes());
    h[8..12].copy_from_slice(&(body_len as u32).to_le_bytes());
    h[12..16].copy_from_slice(&count.to_le_bytes());
    h[16..24].copy_from_slice(&first_position.to_le_bytes());
    h[24..28].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&header_crc.to_le_bytes());
    let frame_len = (FRAME_OVERHEAD_BYTES + body_len) as u32;
    out.extend_from_slice(&frame_len.to_le_bytes());
    out.extend_from_slice(&header_crc.to_le_bytes());
}

/// Checks a whole frame at the start of `buf`: header, that the frame fits, the body checksum
/// and the trailer. Returns the header; the body is `buf[32..32 + body_len]`.
pub fn check_frame(buf: &[u8]) -> Result<FrameHeader, DecodeError> {
    check_frame_with(buf, true)
}

/// [`check_frame`], checking the header and body checksums only when `check_sums`. Without
/// them every other check still runs (magic, version, lengths, the trailer and its copy of the
/// header checksum); it is for bytes whose checksum was checked as a whole already (a segment
/// image checked against its footer's `data_crc` when it was decompressed: that covers the
/// frame headers as well as their bodies).
pub fn check_frame_with(buf: &[u8], check_sums: bool) -> Result<FrameHeader, DecodeError> {
    let h = FrameHeader::decode_with(buf, check_sums)?;
    let len = h.frame_len();
    if buf.len() < len {
        return Err(DecodeError::new(
            0,
            "frame extends past end of data",
            len as u64,
            buf.len() as u64,
        ));
    }
    let body = &buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + h.body_len as usize];
    let crc = if check_sums {
        crc32fast::hash(body)
    } else {
        h.body_crc
    };
    if crc != h.body_crc {
        return Err(DecodeError::new(
            24,
            "frame body checksum",
            h.body_crc.into(),
            crc.into(),
        ));
    }
    let t = len - FRAME_TRAILER_BYTES;
    if u32_at(buf, t) as usize != len {
        return Err(DecodeError::new(
            t,
            "frame trailer length",
            len as u64,
            u32_at(buf, t).into(),
        ));
    }
    if u32_at(buf, t + 4) != h.header_crc {
        return Err(DecodeError::new(
            t + 4,
            "frame trailer checksum copy",
            h.header_crc.into(),
            u32_at(buf, t + 4).into(),
        ));
    }
    Ok(h)
}

/// The body slice of a frame that [`check_frame`] accepted.
pub fn frame_body<'a>(buf: &'a [u8], h: &FrameHeader) -> &'a [u8] {
    &buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + h.body_len as usize]
}
