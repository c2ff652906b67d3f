//! The checkpoint file (`checkpoint.idx`): the stream table (latest version of every stream) and
//! the index of the active segment's prefix, so that open does not rescan the log.
//!
//! ```text
//! header (64)  magic "EVLOGCKP" | version u16 | reserved u16 | stream_count u32 |
//!              next_position u64 | last_frame_header_crc u32 | id_filter_blocks u32 |
//!              body_len u64 | body_crc u32 | id_filter_segment u64 | names_len u64 |
//!              header_crc u32 (of bytes 0..60)
//! body         version 3: stream_count x 24-byte entries (hash u64 | last_version u64 |
//!              name_offset u32 | name_len u16 | reserved u16), sorted by (hash, stream id),
//!              then names_len bytes of stream ids (in entry order); versions 1 and 2:
//!              stream_count x (len u16 | stream id | last_version u64) in no order. Then
//!              id_filter_blocks x 64 bytes (from version 2: a copy of the last sealed
//!              segment's id Bloom filter), then an index file (see index_file) of the active
//!              segment's covered prefix
//! ```
//!
//! Version 3's table is searched where it lies (a binary search on the hash): open does not
//! build a map of every stream.

use std::cmp::Ordering;

use super::bytes::{
    Cursor, DecodeError, HeaderChecks, check_fixed_header, stream_hash, u16_at, u32_at, u64_at,
};
use super::index_file::BLOOM_BLOCK_BYTES;
use super::limits::{MAX_CHECKPOINT_BYTES, MAX_STREAM_ID_BYTES};

/// Magic at byte 0 of the checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"EVLOGCKP";
/// Current checkpoint format version: 3 makes the stream table a sorted, searchable table.
pub const CHECKPOINT_VERSION: u16 = 3;
/// Checkpoint version 2 (the copy of the last sealed segment's id filter), still read.
pub const CHECKPOINT_VERSION_2: u16 = 2;
/// The first checkpoint format version (no id filter), still read.
pub const CHECKPOINT_VERSION_1: u16 = 1;
/// Size of the checkpoint header.
pub const CHECKPOINT_HEADER_BYTES: usize = 64;
/// Size of one entry of a version-3 stream table.
pub const CHECKPOINT_STREAM_ENTRY_BYTES: usize = 24;
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
    pub streams: CheckpointStreams<'a>,
    /// The index file bytes of the active segment's covered prefix.
    pub index: &'a [u8],
    /// A copy of the id Bloom filter of the last sealed segment (version 2), so that the first
    /// append after an open can tell that its ids are not in that segment without reading and
    /// checking the segment's whole index.
    pub id_filter: Option<IdFilter<'a>>,
}

/// The stream table of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStreams<'a> {
    /// Versions 1 and 2: the entries, in no order.
    List(Vec<(&'a str, u64)>),
    /// Version 3: a table sorted by stream hash, searched in place.
    Table(StreamTableView<'a>),
}

impl<'a> CheckpointStreams<'a> {
    /// Number of streams.
    pub fn len(&self) -> usize {
        match self {
            CheckpointStreams::List(v) => v.len(),
            CheckpointStreams::Table(t) => t.len(),
        }
    }

    /// True when the table holds no stream.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stream and its last version (in the table's order).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, u64)> + '_ {
        let (list, table) = match self {
            CheckpointStreams::List(v) => (Some(v.iter().copied()), None),
            CheckpointStreams::Table(t) => (None, Some(t.iter().map(|(_, s, v)| (s, v)))),
        };
        list.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
    }

    /// The highest last version of any stream (`None` for an empty table), read without
    /// decoding the stream ids.
    pub fn max_version(&self) -> Option<u64> {
        match self {
            CheckpointStreams::List(v) => v.iter().map(|p| p.1).max(),
            CheckpointStreams::Table(t) => (0..t.len())
                .map(|i| u64_at(t.entries, i * CHECKPOINT_STREAM_ENTRY_BYTES + 8))
                .max(),
        }
    }

    /// The last version of `stream`, if the table holds it.
    pub fn get(&self, stream: &str) -> Option<u64> {
        match self {
            CheckpointStreams::List(v) => v.iter().find(|(s, _)| *s == stream).map(|p| p.1),
            CheckpointStreams::Table(t) => t.get(stream),
        }
    }
}

/// A version-3 stream table: fixed-size entries sorted by (stream hash, stream id), and the
/// stream ids they point into. Built by [`decode_checkpoint`], which checks it whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTableView<'a> {
    entries: &'a [u8],
    names: &'a [u8],
}

impl<'a> StreamTableView<'a> {
    /// A view of a table that [`decode_checkpoint`] has already checked (the store keeps the
    /// checkpoint's bytes and makes a view per lookup).
    pub(crate) fn checked(entries: &'a [u8], names: &'a [u8]) -> Self {
        StreamTableView { entries, names }
    }

    /// The entries and names, as slices of the checkpoint it was decoded from.
    pub fn parts(&self) -> (&'a [u8], &'a [u8]) {
        (self.entries, self.names)
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.entries.len() / CHECKPOINT_STREAM_ENTRY_BYTES
    }

    /// True when the table holds no stream.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn hash_at(&self, i: usize) -> u64 {
        u64_at(self.entries, i * CHECKPOINT_STREAM_ENTRY_BYTES)
    }

    fn name_bytes(&self, i: usize) -> &'a [u8] {
        let e = i * CHECKPOINT_STREAM_ENTRY_BYTES;
        let at = u32_at(self.entries, e + 16) as usize;
        let len = usize::from(u16_at(self.entries, e + 20));
        &self.names[at..at + len]
    }

    /// Entry `i`: the stream's hash, id and last version.
    pub fn entry(&self, i: usize) -> (u64, &'a str, u64) {
        let name = std::str::from_utf8(self.name_bytes(i))
            .expect("decode_checkpoint checked every stream id");
        let e = i * CHECKPOINT_STREAM_ENTRY_BYTES;
        (self.hash_at(i), name, u64_at(self.entries, e + 8))
    }

    /// Every entry, in order: (hash, stream, last version).
    pub fn iter(self) -> impl Iterator<Item = (u64, &'a str, u64)> {
        (0..self.len()).map(move |i| self.entry(i))
    }

    /// The last version of `stream`: a binary search on its hash.
    pub fn get(&self, stream: &str) -> Option<u64> {
        let h = stream_hash(stream);
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.hash_at(mid) < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut i = lo;
        while i < self.len() && self.hash_at(i) == h {
            if self.name_bytes(i) == stream.as_bytes() {
                return Some(u64_at(self.entries, i * CHECKPOINT_STREAM_ENTRY_BYTES + 8));
            }
            i += 1;
        }
        None
    }
}

/// The id Bloom filter of a sealed segment (as its index holds it), copied into a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdFilter<'a> {
    /// First position of the segment whose filter it is.
    pub segment_first_position: u64,
    /// Whole blocks of `BLOOM_BLOCK_BYTES`.
    pub blocks: &'a [u8],
}

/// Orders stream table entries: by hash, then by stream id.
pub(crate) fn entry_order(a: &(u64, &str, u64), b: &(u64, &str, u64)) -> Ordering {
    (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes()))
}

/// Encodes a checkpoint (the current version). The streams may come in any order; the table is
/// written sorted.
pub fn encode_checkpoint<'s>(
    next_position: u64,
    last_frame_header_crc: u32,
    streams: impl IntoIterator<Item = (&'s str, u64)>,
    index: &[u8],
    id_filter: Option<IdFilter<'_>>,
) -> Vec<u8> {
    let mut entries: Vec<(u64, &str, u64)> = streams
        .into_iter()
        .map(|(s, v)| (stream_hash(s), s, v))
        .collect();
    entries.sort_unstable_by(entry_order);
    encode_checkpoint_sorted(
        next_position,
        last_frame_header_crc,
        &entries,
        index,
        id_filter,
    )
}

/// Encodes a checkpoint from entries already sorted by (hash, stream id), each hash being its
/// stream's [`stream_hash`] (the store keeps its table in that order).
pub fn encode_checkpoint_sorted(
    next_position: u64,
    last_frame_header_crc: u32,
    entries: &[(u64, &str, u64)],
    index: &[u8],
    id_filter: Option<IdFilter<'_>>,
) -> Vec<u8> {
    debug_assert!(
        entries
            .windows(2)
            .all(|w| entry_order(&w[0], &w[1]) == Ordering::Less)
    );
    let names_len: usize = entries.iter().map(|e| e.1.len()).sum();
    let mut b = Vec::with_capacity(
        CHECKPOINT_HEADER_BYTES
            + entries.len() * CHECKPOINT_STREAM_ENTRY_BYTES
            + names_len
            + index.len()
            + id_filter.map_or(0, |f| f.blocks.len()),
    );
    b.resize(CHECKPOINT_HEADER_BYTES, 0);
    let mut at = 0u32;
    for &(h, s, v) in entries {
        b.extend_from_slice(&h.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
        b.extend_from_slice(&at.to_le_bytes());
        b.extend_from_slice(&(s.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        at += s.len() as u32;
    }
    for &(_, s, _) in entries {
        b.extend_from_slice(s.as_bytes());
    }
    finish(
        b,
        CHECKPOINT_VERSION,
        entries.len(),
        names_len as u64,
        next_position,
        last_frame_header_crc,
        index,
        id_filter,
    )
}

/// Encodes a version-2 checkpoint (the stream table as a list in the given order), as builds
/// before version 3 wrote it: for tests of reading older stores.
pub fn encode_checkpoint_v2<'s>(
    next_position: u64,
    last_frame_header_crc: u32,
    streams: impl IntoIterator<Item = (&'s str, u64)>,
    index: &[u8],
    id_filter: Option<IdFilter<'_>>,
) -> Vec<u8> {
    let mut b = vec![0u8; CHECKPOINT_HEADER_BYTES];
    let mut count = 0;
    for (s, v) in streams {
        count += 1;
        b.extend_from_slice(&(s.len() as u16).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    finish(
        b,
        CHECKPOINT_VERSION_2,
        count,
        0,
        next_position,
        last_frame_header_crc,
        index,
        id_filter,
    )
}

/// Appends the id filter and the index to a header-and-table buffer and fills in the header.
#[allow(clippy::too_many_arguments)]
fn finish(
    mut b: Vec<u8>,
    version: u16,
    count: usize,
    names_len: u64,
    next_position: u64,
    last_frame_header_crc: u32,
    index: &[u8],
    id_filter: Option<IdFilter<'_>>,
) -> Vec<u8> {
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
    b[8..10].copy_from_slice(&version.to_le_bytes());
    b[12..16].copy_from_slice(&(count as u32).to_le_bytes());
    b[16..24].copy_from_slice(&next_position.to_le_bytes());
    b[24..28].copy_from_slice(&last_frame_header_crc.to_le_bytes());
    b[28..32].copy_from_slice(&filter_blocks.to_le_bytes());
    b[32..40].copy_from_slice(&body_len.to_le_bytes());
    b[40..44].copy_from_slice(&body_crc.to_le_bytes());
    b[44..52].copy_from_slice(&filter_segment.to_le_bytes());
    b[52..60].copy_from_slice(&names_len.to_le_bytes());
    let crc = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and fully checks a checkpoint (both checksums, every length against its limit, a
/// version-3 table's order and every stream id's UTF-8).
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
    if !matches!(
        version,
        CHECKPOINT_VERSION | CHECKPOINT_VERSION_2 | CHECKPOINT_VERSION_1
    ) {
        return Err(DecodeError::unsupported(
            8,
            "checkpoint format version",
            CHECKPOINT_VERSION.into(),
            version.into(),
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
    let mut c = Cursor::new(body, CHECKPOINT_HEADER_BYTES);
    let streams = if version == CHECKPOINT_VERSION {
        CheckpointStreams::Table(decode_table(buf, count, &mut c)?)
    } else {
        CheckpointStreams::List(decode_list(count, &mut c)?)
    };
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

/// Refuses a stream count the rest of the body cannot hold at `min_bytes` a stream.
fn check_count(count: usize, c: &Cursor<'_>, min_bytes: usize) -> Result<(), DecodeError> {
    let most = c.remaining() / min_bytes;
    if count > most {
        return Err(DecodeError::new(
            12,
            "checkpoint stream count",
            most as u64,
            count as u64,
        ));
    }
    Ok(())
}

/// Reads a version 1 or 2 stream list.
fn decode_list<'a>(count: usize, c: &mut Cursor<'a>) -> Result<Vec<(&'a str, u64)>, DecodeError> {
    // Each stream takes at least 11 bytes; reject counts the body cannot hold before allocating.
    check_count(count, c, 11)?;
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let len = c.u16("checkpoint stream id length")? as usize;
        let s = c.str_with_limit(len, MAX_STREAM_ID_BYTES, "checkpoint stream id")?;
        let v = c.u64("checkpoint stream version")?;
        streams.push((s, v));
    }
    Ok(streams)
}

/// Reads and checks a version-3 stream table: the entries lie within the table, each id's
/// bytes follow the one before (so the names fill their region exactly), every id is 1 to
/// `MAX_STREAM_ID_BYTES` bytes of UTF-8, each hash is its id's, the reserved bytes are zero and
/// the entries are strictly sorted by (hash, id).
fn decode_table<'a>(
    buf: &[u8],
    count: usize,
    c: &mut Cursor<'a>,
) -> Result<StreamTableView<'a>, DecodeError> {
    check_count(count, c, CHECKPOINT_STREAM_ENTRY_BYTES)?;
    let entries_at = c.offset();
    let entries = c.take(
        count * CHECKPOINT_STREAM_ENTRY_BYTES,
        "checkpoint stream table",
    )?;
    let names_len = u64_at(buf, 52);
    if names_len > c.remaining() as u64 {
        return Err(DecodeError::new(
            52,
            "checkpoint stream names length",
            c.remaining() as u64,
            names_len,
        ));
    }
    let names_at = c.offset();
    let names = c.take(names_len as usize, "checkpoint stream names")?;
    let text = std::str::from_utf8(names).map_err(|e| {
        DecodeError::new(
            names_at + e.valid_up_to(),
            "checkpoint stream id (UTF-8)",
            0,
            1,
        )
    })?;
    let mut next = 0usize;
    let mut prev: Option<(u64, &str, u64)> = None;
    for i in 0..count {
        let e = i * CHECKPOINT_STREAM_ENTRY_BYTES;
        let at = entries_at + e;
        let name_at = u32_at(entries, e + 16) as usize;
        let len = usize::from(u16_at(entries, e + 20));
        if name_at != next {
            return Err(DecodeError::new(
                at + 16,
                "checkpoint stream name offset",
                next as u64,
                name_at as u64,
            ));
        }
        if len == 0 || len > MAX_STREAM_ID_BYTES || name_at + len > names.len() {
            return Err(DecodeError::new(
                at + 20,
                "checkpoint stream id length",
                MAX_STREAM_ID_BYTES.min(names.len() - name_at) as u64,
                len as u64,
            ));
        }
        if !text.is_char_boundary(name_at) || !text.is_char_boundary(name_at + len) {
            return Err(DecodeError::new(
                names_at + name_at,
                "checkpoint stream id (UTF-8)",
                0,
                1,
            ));
        }
        let reserved = u16_at(entries, e + 22);
        if reserved != 0 {
            return Err(DecodeError::new(
                at + 22,
                "checkpoint stream entry reserved",
                0,
                reserved.into(),
            ));
        }
        let key = (
            u64_at(entries, e),
            &text[name_at..name_at + len],
            u64_at(entries, e + 8),
        );
        // A wrong hash would hide its stream from lookups (an append would start it again at
        // version 0): checksums catch damage, this catches a table written wrong.
        let hash = stream_hash(key.1);
        if key.0 != hash {
            return Err(DecodeError::new(at, "checkpoint stream hash", hash, key.0));
        }
        if let Some(p) = prev
            && entry_order(&p, &key) != Ordering::Less
        {
            return Err(DecodeError::new(
                at,
                "checkpoint stream table order",
                p.0,
                key.0,
            ));
        }
        prev = Some(key);
        next = name_at + len;
    }
    if next != names.len() {
        return Err(DecodeError::new(
            52,
            "checkpoint stream names length",
            next as u64,
            names.len() as u64,
        ));
    }
    Ok(StreamTableView::checked(entries, names))
}
