//! The stream settings file (`streams.settings`): per-stream retention rules and deletions.
//! Unlike the indexes it is not a cache: it is the only record of those settings, so damage to
//! it is corruption.
//!
//! ```text
//! header (64)  magic "EVLOGSET" | version u16 | reserved u16 | count u32 | body_len u64 |
//!              body_crc u32 | reserved (36) | header_crc u32 (of bytes 0..60)
//! body         count x (stream_len u16 | stream | flags u8 | truncate_before u64 |
//!                       max_count u64 | max_age_us u64)
//!              flags: bit 0 = tombstone (hard-deleted); max_count and max_age_us: 0 = no limit
//! ```

use super::bytes::{Cursor, DecodeError, HeaderChecks, check_fixed_header, u16_at, u32_at, u64_at};
use super::limits::MAX_STREAM_ID_BYTES;

/// Magic at byte 0 of the settings file.
pub const SETTINGS_MAGIC: [u8; 8] = *b"EVLOGSET";
/// Current settings format version.
pub const SETTINGS_VERSION: u16 = 1;
/// Size of the settings header.
pub const SETTINGS_HEADER_BYTES: usize = 64;
/// File name of the settings file inside a store directory.
pub const SETTINGS_FILE_NAME: &str = "streams.settings";
/// Flag: the stream is hard-deleted and can never be written again.
pub const FLAG_TOMBSTONE: u8 = 1;

/// The settings of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSettings {
    /// Hard-deleted: hidden, and appends are refused for good.
    pub tombstone: bool,
    /// Events with a lower version are hidden (soft delete and `truncate_before`).
    pub truncate_before: u64,
    /// Only the last `max_count` events are visible (0: no limit).
    pub max_count: u64,
    /// Only events younger than this many microseconds are visible (0: no limit).
    pub max_age_us: u64,
}

/// Encodes the settings of every stream that has any.
pub fn encode_settings<'s>(
    entries: impl ExactSizeIterator<Item = (&'s str, StreamSettings)>,
) -> Vec<u8> {
    let mut b = vec![0u8; SETTINGS_HEADER_BYTES];
    let count = entries.len() as u32;
    for (s, st) in entries {
        b.extend_from_slice(&(s.len() as u16).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
        b.push(if st.tombstone { FLAG_TOMBSTONE } else { 0 });
        b.extend_from_slice(&st.truncate_before.to_le_bytes());
        b.extend_from_slice(&st.max_count.to_le_bytes());
        b.extend_from_slice(&st.max_age_us.to_le_bytes());
    }
    let body_len = (b.len() - SETTINGS_HEADER_BYTES) as u64;
    let body_crc = crc32fast::hash(&b[SETTINGS_HEADER_BYTES..]);
    b[0..8].copy_from_slice(&SETTINGS_MAGIC);
    b[8..10].copy_from_slice(&SETTINGS_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&count.to_le_bytes());
    b[16..24].copy_from_slice(&body_len.to_le_bytes());
    b[24..28].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and fully checks a settings file.
pub fn decode_settings(buf: &[u8]) -> Result<Vec<(&str, StreamSettings)>, DecodeError> {
    check_fixed_header(
        buf,
        SETTINGS_HEADER_BYTES,
        &SETTINGS_MAGIC,
        60,
        &HeaderChecks {
            length: "settings header length",
            magic: "settings magic",
            checksum: "settings header checksum",
        },
    )?;
    if u16_at(buf, 8) != SETTINGS_VERSION {
        return Err(DecodeError::unsupported(
            8,
            "settings format version",
            SETTINGS_VERSION.into(),
            u16_at(buf, 8).into(),
        ));
    }
    let count = u32_at(buf, 12) as usize;
    let body = &buf[SETTINGS_HEADER_BYTES..];
    if u64_at(buf, 16) != body.len() as u64 {
        return Err(DecodeError::new(
            16,
            "settings body length",
            body.len() as u64,
            u64_at(buf, 16),
        ));
    }
    let crc = crc32fast::hash(body);
    if crc != u32_at(buf, 24) {
        return Err(DecodeError::new(
            24,
            "settings body checksum",
            u32_at(buf, 24).into(),
            crc.into(),
        ));
    }
    // Each entry takes at least 28 bytes: reject counts the body cannot hold before allocating.
    if count > body.len() / 28 {
        return Err(DecodeError::new(
            12,
            "settings count",
            (body.len() / 28) as u64,
            count as u64,
        ));
    }
    let mut c = Cursor::new(body, SETTINGS_HEADER_BYTES);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = c.u16("settings stream id length")? as usize;
        let s = c.str_with_limit(len, MAX_STREAM_ID_BYTES, "settings stream id")?;
        let at = c.offset();
        let flags = c.u8("settings flags")?;
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(DecodeError::new(
                at,
                "settings flags",
                FLAG_TOMBSTONE.into(),
                flags.into(),
            ));
        }
        let st = StreamSettings {
            tombstone: flags & FLAG_TOMBSTONE != 0,
            truncate_before: c.u64("settings truncate_before")?,
            max_count: c.u64("settings max_count")?,
            max_age_us: c.u64("settings max_age_us")?,
        };
        out.push((s, st));
    }
    if c.remaining() != 0 {
        return Err(DecodeError::new(
            c.offset(),
            "bytes after the last settings entry",
            0,
            c.remaining() as u64,
        ));
    }
    Ok(out)
}

impl StreamSettings {
    /// True when nothing is hidden or refused.
    pub fn is_default(&self) -> bool {
        *self == StreamSettings::default()
    }

    /// The lowest visible version of a stream whose last version is `last`.
    pub fn first_visible(&self, last: u64) -> u64 {
        let by_count = if self.max_count == 0 {
            0
        } else {
            (last + 1).saturating_sub(self.max_count)
        };
        self.truncate_before.max(by_count)
    }

    /// True when the event with `version` and `timestamp_us` is visible at `now_us`, in a stream
    /// whose last version is `last`.
    pub fn visible(&self, version: u64, timestamp_us: u64, last: u64, now_us: u64) -> bool {
        !self.tombstone
            && version >= self.first_visible(last)
            && (self.max_age_us == 0 || timestamp_us.saturating_add(self.max_age_us) > now_us)
    }
}
