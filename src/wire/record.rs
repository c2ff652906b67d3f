//! Records: one event inside a frame body.
//!
//! ```text
//! record_len u32 (bytes after this field) | version u64 | timestamp_us u64 | id [16] | flags u8 |
//! [correlation id [16] if flags&1] | [causation id [16] if flags&2] |
//! stream_len u16 | stream | type_len u16 | type |
//! meta_count u16 | meta_count x (key_len u16 | key | value_len u32 | value) |
//! [meta_bytes_len u32 | meta_bytes if flags&8] | payload_len u32 | payload
//! ```

use std::sync::Arc;

use uuid::Uuid;

use super::bytes::{Cursor, DecodeError};
use super::limits::{
    MAX_EVENT_BYTES, MAX_EVENT_TYPE_BYTES, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES,
    MAX_STREAM_ID_BYTES,
};
use crate::event::{EventData, Extra, Metadata, RecordedEvent};

const FLAG_CORRELATION: u8 = 1;
const FLAG_CAUSATION: u8 = 2;
/// The record is a placeholder left by compaction for an event that retention or a deletion
/// dropped: it keeps the version, timestamp, id and stream (so positions, versions and the
/// idempotency window stay dense), with an empty type, no metadata and an empty payload.
pub const FLAG_DROPPED: u8 = 4;
/// The record carries opaque metadata bytes (JSON text, protobuf, ...) after its metadata
/// entries. Only frames of version 3 ([`super::frame::FRAME_VERSION_MULTI`]) hold such records,
/// so builds that do not know the flag refuse the frame as a newer format instead of calling
/// it damaged.
pub const FLAG_META_BYTES: u8 = 8;

/// Appends the placeholder of a dropped event to `out` (see [`FLAG_DROPPED`]).
pub fn encode_dropped_record(out: &mut Vec<u8>, r: &RecordView<'_>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&r.version.to_le_bytes());
    out.extend_from_slice(&r.timestamp_us.to_le_bytes());
    out.extend_from_slice(r.id.as_bytes());
    out.push(FLAG_DROPPED);
    out.extend_from_slice(&(r.stream.len() as u16).to_le_bytes());
    out.extend_from_slice(r.stream.as_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Bytes the metadata of `m` takes in a record (counted against [`MAX_EVENT_BYTES`]).
pub fn metadata_len(m: &Metadata) -> usize {
    2 + m
        .extra
        .iter()
        .map(|(k, v)| 2 + k.len() + 4 + v.len())
        .sum::<usize>()
        + if m.bytes.is_empty() {
            0
        } else {
            4 + m.bytes.len()
        }
}

/// Bytes of the event counted against [`MAX_EVENT_BYTES`]: payload plus encoded metadata.
pub fn event_len(e: &EventData) -> usize {
    e.payload.len() + metadata_len(&e.metadata)
}

/// Appends one encoded record to `out`. The caller has validated the event against the limits.
pub fn encode_record(
    out: &mut Vec<u8>,
    stream: &str,
    version: u64,
    timestamp_us: u64,
    e: &EventData,
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&timestamp_us.to_le_bytes());
    out.extend_from_slice(e.id.as_bytes());
    let m = &e.metadata;
    let flags = u8::from(m.correlation_id.is_some()) * FLAG_CORRELATION
        + u8::from(m.causation_id.is_some()) * FLAG_CAUSATION
        + u8::from(!m.bytes.is_empty()) * FLAG_META_BYTES;
    out.push(flags);
    if let Some(id) = m.correlation_id {
        out.extend_from_slice(id.as_bytes());
    }
    if let Some(id) = m.causation_id {
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(&(e.event_type.len() as u16).to_le_bytes());
    out.extend_from_slice(e.event_type.as_bytes());
    out.extend_from_slice(&(m.extra.len() as u16).to_le_bytes());
    for (k, v) in &m.extra {
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    if !m.bytes.is_empty() {
        out.extend_from_slice(&(m.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&m.bytes);
    }
    out.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&e.payload);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// A record decoded in place: strings and payload borrow the frame body.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Version in its stream.
    pub version: u64,
    /// Append time, microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Event id.
    pub id: Uuid,
    /// Correlation id.
    pub correlation_id: Option<Uuid>,
    /// Causation id.
    pub causation_id: Option<Uuid>,
    /// Stream id.
    pub stream: &'a str,
    /// Event type.
    pub event_type: &'a str,
    meta_count: u16,
    meta_raw: &'a [u8],
    /// `meta_raw` as text, when the record's strings were checked as one region (see
    /// `check_strings`): keys and values are then sliced from it, not checked again.
    meta_text: Option<&'a str>,
    /// Opaque metadata bytes (empty when the record has none: [`FLAG_META_BYTES`]).
    pub meta_bytes: &'a [u8],
    /// Payload bytes.
    pub payload: &'a [u8],
    /// A placeholder for an event compaction dropped: no type, metadata or payload. Readers
    /// skip it.
    pub dropped: bool,
}

impl<'a> RecordView<'a> {
    /// The metadata entries as they are encoded in the record (`meta_count` times key length
    /// u16, key, value length u32, value; checked by [`decode_record`]).
    pub fn meta_raw(&self) -> &'a [u8] {
        self.meta_raw
    }

    /// The metadata entries, borrowed, in the order the record holds them (key order, as
    /// writers write them), without allocating.
    pub fn meta_entries(&self) -> MetaEntries<'a> {
        MetaEntries {
            raw: self.meta_raw,
            text: self.meta_text,
            left: self.meta_count,
        }
    }

    /// The value of metadata key `key`, borrowed (the last one if a damaged or foreign record
    /// holds the key twice, as the owned decode keeps it).
    pub fn meta_value(&self, key: &str) -> Option<&'a str> {
        self.meta_entries()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }

    /// Decodes the user metadata (already checked by [`decode_record`]).
    pub fn extra(&self) -> Extra {
        let count = usize::from(self.meta_count);
        if let Some(m) = Extra::from_record_entries(self.meta_raw, count) {
            return m;
        }
        let mut c = Cursor::new(self.meta_raw, 0);
        let entries = (0..count).map(move |_| {
            let kl = c.u16("key").expect("checked") as usize;
            let k = c
                .str_with_limit(kl, MAX_METADATA_KEY_BYTES, "key")
                .expect("checked");
            let vl = c.u32("value").expect("checked") as usize;
            let v = c
                .str_with_limit(vl, MAX_EVENT_BYTES, "value")
                .expect("checked");
            (k, v)
        });
        // The raw bytes hold the strings plus 6 bytes of lengths per entry.
        Extra::from_sorted(
            entries,
            self.meta_raw.len().saturating_sub(6 * count),
            count,
        )
    }

    /// The metadata as an owned value.
    pub fn metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            extra: self.extra(),
            bytes: self.meta_bytes.to_vec(),
        }
    }

    /// An owned event, given its global position and its interned stream id and event type.
    pub fn to_recorded(
        &self,
        position: u64,
        stream: Arc<str>,
        event_type: Arc<str>,
    ) -> RecordedEvent {
        RecordedEvent {
            stream,
            version: self.version,
            position,
            timestamp_us: self.timestamp_us,
            id: self.id,
            event_type,
            payload: self.payload.to_vec(),
            metadata: self.metadata(),
        }
    }

    /// True when this record holds exactly `e`'s content (id, type, payload, metadata).
    pub fn same_content(&self, e: &EventData) -> bool {
        self.id == e.id
            && self.event_type == e.event_type
            && self.payload == e.payload.as_slice()
            && self.correlation_id == e.metadata.correlation_id
            && self.causation_id == e.metadata.causation_id
            && self.meta_bytes == e.metadata.bytes.as_slice()
            && self.extra() == e.metadata.extra
    }
}

/// The metadata entries of a record, borrowed: see [`RecordView::meta_entries`].
#[derive(Debug, Clone)]
pub struct MetaEntries<'a> {
    raw: &'a [u8],
    /// `raw` as text, when the decoder checked it as such.
    text: Option<&'a str>,
    left: u16,
}

impl<'a> MetaEntries<'a> {
    /// The string at `range` of `raw`: sliced from the checked text when there is one (where
    /// the range is at character boundaries, as every range of ASCII text is), else checked.
    fn str_at(&self, range: std::ops::Range<usize>) -> Option<&'a str> {
        if let Some(s) = self.text.and_then(|t| t.get(range.clone())) {
            return Some(s);
        }
        std::str::from_utf8(self.raw.get(range)?).ok()
    }
}

impl<'a> Iterator for MetaEntries<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The record decoder checked every length and that keys and values are UTF-8; a
        // shorter `raw` (never handed out) would end the entries instead of panicking.
        let kl = usize::from(u16::from_le_bytes(self.raw.get(..2)?.try_into().ok()?));
        let key = self.str_at(2..2 + kl)?;
        let at = 2 + kl;
        let vl = u32::from_le_bytes(self.raw.get(at..at + 4)?.try_into().ok()?) as usize;
        let end = at + 4 + vl;
        let value = self.str_at(at + 4..end)?;
        self.raw = &self.raw[end..];
        self.text = self.text.and_then(|t| t.get(end..));
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

fn uuid(c: &mut Cursor<'_>, what: &'static str) -> Result<Uuid, DecodeError> {
    let b = c.take(16, what)?;
    Ok(Uuid::from_bytes(b.try_into().expect("16 bytes")))
}

/// Decodes the record at the start of `buf`; `base` is `buf`'s offset in the frame body (for
/// errors). Returns the record and the bytes it took.
pub fn decode_record(buf: &[u8], base: usize) -> Result<(RecordView<'_>, usize), DecodeError> {
    let mut outer = Cursor::new(buf, base);
    let len = outer.u32("record length")? as usize;
    let max = MAX_EVENT_BYTES + MAX_STREAM_ID_BYTES + MAX_EVENT_TYPE_BYTES + 128;
    let body = outer.bytes_with_limit(len, max, "record length")?;
    let mut c = Cursor::new(body, base + 4);
    let version = c.u64("record version")?;
    let timestamp_us = c.u64("record timestamp")?;
    let id = uuid(&mut c, "record event id")?;
    let flags_at = c.offset();
    let flags = c.u8("record flags")?;
    if flags & !(FLAG_CORRELATION | FLAG_CAUSATION | FLAG_DROPPED | FLAG_META_BYTES) != 0
        || (flags & FLAG_DROPPED != 0 && flags != FLAG_DROPPED)
    {
        return Err(DecodeError::new(flags_at, "record flags", 15, flags.into()));
    }
    let dropped = flags == FLAG_DROPPED;
    let correlation_id = if flags & FLAG_CORRELATION != 0 {
        Some(uuid(&mut c, "record correlation id")?)
    } else {
        None
    };
    let causation_id = if flags & FLAG_CAUSATION != 0 {
        Some(uuid(&mut c, "record causation id")?)
    } else {
        None
    };
    // Strings are taken as bytes here and checked for UTF-8 once their lengths are known (see
    // `check_strings`).
    let strings_start = c.offset() - (base + 4);
    let sl = c.u16("stream id length")? as usize;
    let stream_at = c.offset();
    let stream = c.bytes_with_limit(sl, MAX_STREAM_ID_BYTES, "stream id")?;
    if stream.is_empty() {
        return Err(DecodeError::new(c.offset(), "empty stream id", 1, 0));
    }
    let tl = c.u16("event type length")? as usize;
    let type_at = c.offset();
    let event_type = c.bytes_with_limit(tl, MAX_EVENT_TYPE_BYTES, "event type")?;
    if event_type.is_empty() != dropped {
        return Err(DecodeError::new(
            c.offset(),
            if dropped {
                "dropped record with an event type"
            } else {
                "empty event type"
            },
            1,
            0,
        ));
    }
    let meta_at = c.offset();
    let meta_count = c.u16("metadata count")?;
    if meta_count as usize > MAX_METADATA_ENTRIES {
        return Err(DecodeError::new(
            meta_at,
            "metadata count",
            MAX_METADATA_ENTRIES as u64,
            meta_count.into(),
        ));
    }
    let raw_start = c.offset() - (base + 4);
    let mut meta_bytes = 2usize;
    for _ in 0..meta_count {
        let kl = c.u16("metadata key length")? as usize;
        c.bytes_with_limit(kl, MAX_METADATA_KEY_BYTES, "metadata key")?;
        let vl = c.u32("metadata value length")? as usize;
        c.bytes_with_limit(vl, MAX_EVENT_BYTES, "metadata value")?;
        meta_bytes += 6 + kl + vl;
    }
    let raw_end = c.offset() - (base + 4);
    let (stream, event_type, meta_text) = check_strings(
        &body[strings_start..raw_end],
        (stream, stream_at),
        (event_type, type_at),
        (&body[raw_start..raw_end], base + 4 + raw_start, meta_count),
    )?;
    let opaque = if flags & FLAG_META_BYTES != 0 {
        let at = c.offset();
        let bl = c.u32("metadata bytes length")? as usize;
        if bl == 0 {
            // Writers set the flag only for bytes, so that one encoding stands for "none".
            return Err(DecodeError::new(at, "metadata bytes length", 1, 0));
        }
        meta_bytes += 4 + bl;
        c.bytes_with_limit(bl, MAX_EVENT_BYTES, "metadata bytes")?
    } else {
        &[]
    };
    let pl = c.u32("payload length")? as usize;
    let payload = c.bytes_with_limit(pl, MAX_EVENT_BYTES, "payload")?;
    if pl + meta_bytes > MAX_EVENT_BYTES {
        return Err(DecodeError::new(
            c.offset(),
            "event size",
            MAX_EVENT_BYTES as u64,
            (pl + meta_bytes) as u64,
        ));
    }
    if dropped && (meta_count != 0 || pl != 0) {
        return Err(DecodeError::new(
            c.offset(),
            "dropped record with metadata or payload",
            0,
            (usize::from(meta_count) + pl) as u64,
        ));
    }
    if c.remaining() != 0 {
        return Err(DecodeError::new(
            c.offset(),
            "record length does not match its fields",
            len as u64,
            (len - c.remaining()) as u64,
        ));
    }
    Ok((
        RecordView {
            version,
            timestamp_us,
            id,
            correlation_id,
            causation_id,
            stream,
            event_type,
            meta_count,
            meta_raw: &body[raw_start..raw_end],
            meta_text,
            meta_bytes: opaque,
            payload,
            dropped,
        },
        4 + len,
    ))
}

/// Checks that a record's stream id, event type and metadata keys and values are UTF-8, and
/// returns the first two as strings. `region` runs from the stream id's length field to the end
/// of the metadata entries (which end it); each string comes with the offset of its first byte
/// (for errors); `meta` is the entries, their offset and count (lengths already checked). When
/// the whole region is UTF-8 and every string of it starts and ends at a character boundary (as
/// for most records: ASCII strings, whose every byte is a character), one check covers every
/// string (a slice of UTF-8 text between character boundaries is UTF-8), and the entries are
/// returned as text too, to be sliced by readers of metadata; otherwise each string is checked
/// on its own, in record order.
#[allow(clippy::type_complexity)]
fn check_strings<'a>(
    region: &'a [u8],
    (stream, stream_at): (&'a [u8], usize),
    (event_type, type_at): (&'a [u8], usize),
    (meta, meta_at, count): (&'a [u8], usize, u16),
) -> Result<(&'a str, &'a str, Option<&'a str>), DecodeError> {
    let utf8 = |b: &'a [u8], at: usize, what: &'static str| {
        std::str::from_utf8(b).map_err(|e| DecodeError::new(at, what, 0, e.valid_up_to() as u64))
    };
    if let Ok(text) = std::str::from_utf8(region) {
        // The stream id follows its 2-byte length, the type its own after that; the entries
        // end the region.
        let t = 2 + stream.len() + 2;
        if let (Some(s), Some(ty), Some(m)) = (
            text.get(2..2 + stream.len()),
            text.get(t..t + event_type.len()),
            text.get(region.len() - meta.len()..),
        ) && entries_at_boundaries(m, count)
        {
            debug_assert!(s.as_bytes() == stream && ty.as_bytes() == event_type);
            debug_assert!(m.as_bytes() == meta);
            return Ok((s, ty, Some(m)));
        }
    }
    let stream = utf8(stream, stream_at, "stream id")?;
    let event_type = utf8(event_type, type_at, "event type")?;
    let mut c = Cursor::new(meta, meta_at);
    for _ in 0..count {
        let kl = c.u16("metadata key length")? as usize;
        c.str_with_limit(kl, MAX_METADATA_KEY_BYTES, "metadata key")?;
        let vl = c.u32("metadata value length")? as usize;
        c.str_with_limit(vl, MAX_EVENT_BYTES, "metadata value")?;
    }
    Ok((stream, event_type, None))
}

/// True when every key and value of the `count` metadata entries `m` (their lengths checked)
/// starts and ends at a character boundary of `m`.
fn entries_at_boundaries(m: &str, count: u16) -> bool {
    let b = m.as_bytes();
    let mut at = 0;
    for _ in 0..count {
        let Some(kl) = b.get(at..at + 2) else {
            return false;
        };
        let key = at + 2;
        let key_end = key + usize::from(u16::from_le_bytes([kl[0], kl[1]]));
        let Some(vl) = b.get(key_end..key_end + 4) else {
            return false;
        };
        let value = key_end + 4;
        let value_end = value + u32::from_le_bytes([vl[0], vl[1], vl[2], vl[3]]) as usize;
        if ![key, key_end, value, value_end]
            .into_iter()
            .all(|i| m.is_char_boundary(i))
        {
            return false;
        }
        at = value_end;
    }
    true
}

/// The stream id and type bytes of the record at the start of `buf`, and the bytes the record
/// takes, read without checking the rest of it (for filters that skip most records: a record
/// that passes is then decoded and checked in full with [`decode_record`]). `None` when the
/// fields do not fit the record.
pub fn peek_record(buf: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let len = 4 + u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let rec = buf.get(..len)?;
    // len u32 | version u64 | timestamp u64 | id [16] | flags u8 at 36
    let flags = *rec.get(36)?;
    let mut at = 37
        + 16 * usize::from(flags & FLAG_CORRELATION != 0)
        + 16 * usize::from(flags & FLAG_CAUSATION != 0);
    let sl = u16::from_le_bytes(rec.get(at..at + 2)?.try_into().ok()?) as usize;
    let stream = rec.get(at + 2..at + 2 + sl)?;
    at += 2 + sl;
    let tl = u16::from_le_bytes(rec.get(at..at + 2)?.try_into().ok()?) as usize;
    let event_type = rec.get(at + 2..at + 2 + tl)?;
    Some((stream, event_type, len))
}

/// Iterates the records of a frame body, checking that there are exactly `count` of them.
pub struct Records<'a> {
    body: &'a [u8],
    at: usize,
    left: u32,
}

impl<'a> Records<'a> {
    /// Records of a frame body holding `count` records.
    pub fn new(body: &'a [u8], count: u32) -> Self {
        Records {
            body,
            at: 0,
            left: count,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(usize, RecordView<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.at != self.body.len() {
                let e = DecodeError::new(
                    self.at,
                    "bytes after the frame's last record",
                    self.body.len() as u64,
                    self.at as u64,
                );
                self.at = self.body.len();
                return Some(Err(e));
            }
            return None;
        }
        self.left -= 1;
        match decode_record(&self.body[self.at..], self.at) {
            Ok((r, n)) => {
                let at = self.at;
                self.at += n;
                Some(Ok((at, r)))
            }
            Err(e) => {
                self.left = 0;
                self.at = self.body.len();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Metadata;
    use proptest::prelude::*;

    proptest! {
        /// Records with any strings (ASCII or not, short or long enough that their lengths are
        /// not ASCII bytes) decode to what was encoded, whichever way their strings are checked.
        #[test]
        fn strings_decode_as_encoded(
            stream in "[a-z]{1,3}|[a-zé€]{1,200}",
            ty in "[A-Z]{1,3}|[A-Zü]{1,150}",
            meta in proptest::collection::vec(("[a-c]{1,3}|ключ", ".{0,140}"), 0..4),
        ) {
            let mut m = Metadata::new();
            for (k, v) in &meta {
                m = m.with(k.as_str(), v.as_str());
            }
            let e = EventData::new(ty.clone(), b"{}".to_vec()).with_metadata(m.clone());
            let mut buf = Vec::new();
            encode_record(&mut buf, &stream, 3, 4, &e);
            let (r, n) = decode_record(&buf, 0).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!((r.stream, r.event_type), (stream.as_str(), ty.as_str()));
            prop_assert_eq!(r.metadata(), m.clone());
            // The borrowed entries and values, sliced from the checked text (an ASCII record)
            // or checked one by one (any other), say the same.
            prop_assert!(r.meta_entries().eq(m.extra.iter()));
            for (k, v) in m.extra.iter() {
                prop_assert_eq!(r.meta_value(k), Some(v));
            }
            prop_assert_eq!(r.meta_value("absent"), None);
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_is_refused_where_it_is() {
        let e = EventData::new("T", b"{}".to_vec()).with_metadata(Metadata::new().with("k", "vv"));
        let mut buf = Vec::new();
        encode_record(&mut buf, "s", 0, 0, &e);
        // The value's first byte: record_len 4, version 8, timestamp 8, id 16, flags 1,
        // stream 2+1, type 2+1, count 2, key 2+1, value length 4.
        let at = 4 + 8 + 8 + 16 + 1 + 3 + 3 + 2 + 3 + 4;
        assert_eq!(&buf[at..at + 2], b"vv");
        buf[at] = 0xff;
        let err = decode_record(&buf, 0).unwrap_err();
        assert_eq!((err.at, err.what), (at, "metadata value"));
        let mut buf2 = Vec::new();
        encode_record(&mut buf2, "s", 0, 0, &e);
        buf2[4 + 8 + 8 + 16 + 1 + 2] = 0xc3;
        let err = decode_record(&buf2, 0).unwrap_err();
        assert_eq!(err.what, "stream id");
    }

    #[test]
    fn strings_that_are_not_utf8_alone_are_refused_even_when_the_record_reads_as_text() {
        // The stream id's last byte 0xC3 and the type's length (169: 0xA9 0x00) read as "é" in
        // the record, which is UTF-8 from the stream id's length on; the stream id alone is not.
        let ty = "T".repeat(169);
        let e = EventData::new(ty.as_str(), b"{}".to_vec());
        let mut buf = Vec::new();
        encode_record(&mut buf, "s", 0, 0, &e);
        let at = 4 + 8 + 8 + 16 + 1 + 2;
        assert_eq!(&buf[at..at + 3], &[b's', 0xa9, 0x00]);
        buf[at] = 0xc3;
        let err = decode_record(&buf, 0).unwrap_err();
        assert_eq!((err.at, err.what), (at, "stream id"));
        // The same with a metadata value: a key ending in 0xC3 before the value's length.
        let v = "v".repeat(169);
        let e = EventData::new("T", b"{}".to_vec()).with_metadata(Metadata::new().with("k", v));
        let mut buf = Vec::new();
        encode_record(&mut buf, "s", 0, 0, &e);
        let key = 4 + 8 + 8 + 16 + 1 + 3 + 3 + 2 + 2;
        assert_eq!(&buf[key..key + 3], &[b'k', 0xa9, 0x00]);
        buf[key] = 0xc3;
        let err = decode_record(&buf, 0).unwrap_err();
        assert_eq!((err.at, err.what), (key, "metadata key"));
    }
}
