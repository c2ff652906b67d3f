//! Segment header (start of every segment file) and footer (end of a sealed segment).

use super::bytes::{DecodeError, HeaderChecks, check_fixed_header, u16_at, u32_at, u64_at};

/// Magic at byte 0 of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"EVLOGSEG";
/// Magic at byte 0 of a sealed segment's footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"EVLOGEND";
/// Current segment format version.
pub const SEGMENT_VERSION: u16 = 1;
/// Size of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Size of the footer of a sealed segment.
pub const FOOTER_BYTES: usize = 64;
/// Header flag: the segment has a predecessor (`prev_last_position` is meaningful).
pub const FLAG_HAS_PREV: u16 = 1;

/// The fixed header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// 0 for the first segment of a store, then +1 for each new segment.
    pub seq: u64,
    /// Global position of the first event the segment holds (also its file name).
    pub first_position: u64,
    /// Last position of the previous segment, if there is one.
    pub prev_last_position: Option<u64>,
    /// Creation time, microseconds since the Unix epoch.
    pub created_us: u64,
}

impl SegmentHeader {
    /// Encodes the header into its 64 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        let flags = if self.prev_last_position.is_some() {
            FLAG_HAS_PREV
        } else {
            0
        };
        b[10..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_position.to_le_bytes());
        b[32..40].copy_from_slice(&self.prev_last_position.unwrap_or(0).to_le_bytes());
        b[40..48].copy_from_slice(&self.created_us.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header from the first 64 bytes of `buf`.
    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, DecodeError> {
        check_fixed_header(
            buf,
            SEGMENT_HEADER_BYTES,
            &SEGMENT_MAGIC,
            60,
            &HeaderChecks {
                length: "segment header length",
                magic: "segment magic",
                checksum: "segment header checksum",
            },
        )?;
        let version = u16_at(buf, 8);
        if version != SEGMENT_VERSION {
            return Err(DecodeError::unsupported(
                8,
                "segment format version",
                SEGMENT_VERSION.into(),
                version.into(),
            ));
        }
        let flags = u16_at(buf, 10);
        if flags & !FLAG_HAS_PREV != 0 {
            return Err(DecodeError::new(
                10,
                "segment header flags",
                FLAG_HAS_PREV.into(),
                flags.into(),
            ));
        }
        Ok(SegmentHeader {
            seq: u64_at(buf, 16),
            first_position: u64_at(buf, 24),
            prev_last_position: (flags & FLAG_HAS_PREV != 0).then(|| u64_at(buf, 32)),
            created_us: u64_at(buf, 40),
        })
    }
}

/// The footer written when a segment is sealed. It makes the segment self-describing: its event
/// range, its frame count and a checksum of every byte before the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFooter {
    /// First position in the segment (equals the header's).
    pub first_position: u64,
    /// Number of events in the segment (at least 1).
    pub event_count: u64,
    /// Number of frames in the segment (at least 1).
    pub frame_count: u64,
    /// Offset where the footer starts: the end of the last frame.
    pub data_end: u64,
    /// CRC-32 of bytes `[0, data_end)`: the header and every frame.
    pub data_crc: u32,
}

impl SegmentFooter {
    /// Last position in the segment.
    pub fn last_position(&self) -> u64 {
        self.first_position + self.event_count - 1
    }

    /// Encodes the footer into its 64 bytes.
    pub fn encode(&self) -> [u8; FOOTER_BYTES] {
        let mut b = [0u8; FOOTER_BYTES];
        b[0..8].copy_from_slice(&FOOTER_MAGIC);
        b[8..16].copy_from_slice(&self.first_position.to_le_bytes());
        b[16..24].copy_from_slice(&self.event_count.to_le_bytes());
        b[24..32].copy_from_slice(&self.frame_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_end.to_le_bytes());
        b[40..44].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a footer from exactly its 64 bytes.
    pub fn decode(buf: &[u8]) -> Result<SegmentFooter, DecodeError> {
        if buf.len() != FOOTER_BYTES {
            return Err(DecodeError::new(
                0,
                "segment footer length",
                FOOTER_BYTES as u64,
                buf.len() as u64,
            ));
        }
        check_fixed_header(
            buf,
            FOOTER_BYTES,
            &FOOTER_MAGIC,
            60,
            &HeaderChecks {
                length: "segment footer length",
                magic: "segment footer magic",
                checksum: "segment footer checksum",
            },
        )?;
        let f = SegmentFooter {
            first_position: u64_at(buf, 8),
            event_count: u64_at(buf, 16),
            frame_count: u64_at(buf, 24),
            data_end: u64_at(buf, 32),
            data_crc: u32_at(buf, 40),
        };
        if f.event_count == 0 || f.frame_count == 0 || f.frame_count > f.event_count {
            return Err(DecodeError::new(
                16,
                "segment footer counts",
                f.event_count,
                f.frame_count,
            ));
        }
        if f.first_position.checked_add(f.event_count).is_none() {
            return Err(DecodeError::new(
                8,
                "segment footer position range",
                u64::MAX,
                f.first_position,
            ));
        }
        Ok(f)
    }
}

/// The file name of the segment whose first event is at `first_position`.
pub fn segment_file_name(first_position: u64) -> String {
    format!("{first_position:020}.seg")
}

/// The file name of the index of the segment whose first event is at `first_position`.
pub fn index_file_name(first_position: u64) -> String {
    format!("{first_position:020}.idx")
}

/// Parses a segment file name back into its first position.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}
