//! Segment index files (`NNN.idx`): the frame table, the stream table and the id table of one
//! segment, in sorted fixed-width arrays that are searched in place through a memory map.
//!
//! ```text
//! header (64)  magic "EVLOGIDX" | version u16 | flags u16 | frame_count u32 |
//!              first_position u64 | event_count u32 | covered_len u32 | covered_crc u32 |
//!              body_crc u32 | bloom_blocks u32 | type_count u32 | typed_count u32 |
//!              stream_count u32 | names_len u32 | header_crc u32 (of bytes 0..60)
//! frames       frame_count x (rel_first u32 | offset u32)                      ascending
//! streams      event_count x (hash u64 | version u64 | rel_pos u32 | frame_offset u32)
//!                                                            ascending by (hash, version, rel_pos)
//! ids          event_count x (id [16] | rel_pos u32)                      ascending by id bytes
//! bloom        bloom_blocks x 64 bytes: a blocked Bloom filter of the ids (see `bloom_hashes`)
//! names        with flag `INDEX_FLAG_NAMES`: the event type and stream name tables
//!              (`wire::index_names`; their sizes are header bytes 44..60)
//! ```

use super::bytes::{DecodeError, HeaderChecks, check_fixed_header, u16_at, u32_at, u64_at};
use super::index_names::{INDEX_FLAG_NAMES, NamesBuilder, NamesHeader, check_names_tables};

/// Magic at byte 0 of an index file.
pub const INDEX_MAGIC: [u8; 8] = *b"EVLOGIDX";
/// Current index format version (2: name tables, `format/FORMAT.md` § 8.4). An index of
/// another version is rebuilt from its segment.
pub const INDEX_VERSION: u16 = 2;
/// Size of the index header.
pub const INDEX_HEADER_BYTES: usize = 64;
/// Size of one frame table entry.
pub const FRAME_ENTRY_BYTES: usize = 8;
/// Size of one stream table entry.
pub const STREAM_ENTRY_BYTES: usize = 24;
/// Size of one id table entry.
pub const ID_ENTRY_BYTES: usize = 20;
/// Size of one block of the ids' Bloom filter: one cache line, so a lookup touches one line.
pub const BLOOM_BLOCK_BYTES: usize = 64;
/// Bits of Bloom filter per id: with 6 bits set per id this gives about 1% false positives.
pub const BLOOM_BITS_PER_ID: usize = 10;
/// Bits set per id in its block.
pub const BLOOM_BITS_SET: u32 = 6;

/// Where a frame starts: its first position relative to the segment, and its byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FrameEntry {
    /// First position of the frame minus the segment's first position.
    pub rel_first: u32,
    /// Byte offset of the frame in the segment file.
    pub offset: u32,
}

/// One event of one stream: where to find the event with `version` of the stream with `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamEntry {
    /// [`stream_hash`](super::bytes::stream_hash) of the stream id.
    pub hash: u64,
    /// Version of the event in its stream.
    pub version: u64,
    /// Position of the event minus the segment's first position.
    pub rel_pos: u32,
    /// Byte offset of the frame holding the event.
    pub frame_offset: u32,
}

/// One event id and where its event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdEntry {
    /// The event id's 16 bytes.
    pub id: [u8; 16],
    /// Position of the event minus the segment's first position.
    pub rel_pos: u32,
}

/// The decoded header of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// Frames in the table.
    pub frame_count: u32,
    /// First position of the indexed segment.
    pub first_position: u64,
    /// Events indexed (entries in the stream table and in the id table).
    pub event_count: u32,
    /// Bytes of the segment file the index covers (from 0).
    pub covered_len: u32,
    /// CRC-32 of the covered segment bytes `[0, covered_len)`.
    pub covered_crc: u32,
    /// CRC-32 of everything after the header.
    pub body_crc: u32,
    /// Blocks of the ids' Bloom filter.
    pub bloom_blocks: u32,
    /// Flags (`INDEX_FLAG_NAMES`).
    pub flags: u16,
    /// Sizes of the name tables (all 0 without `INDEX_FLAG_NAMES`).
    pub names: NamesHeader,
}

impl IndexHeader {
    /// Total size of an index file with this header.
    pub fn file_len(&self) -> usize {
        INDEX_HEADER_BYTES
            + self.frame_count as usize * FRAME_ENTRY_BYTES
            + self.event_count as usize * (STREAM_ENTRY_BYTES + ID_ENTRY_BYTES)
            + self.bloom_blocks as usize * BLOOM_BLOCK_BYTES
            + self.names.tables_len()
    }

    /// Decodes and checks the header; checks that `buf` has exactly the length it announces.
    /// The body checksum is checked separately by [`check_index_body`].
    pub fn decode(buf: &[u8]) -> Result<IndexHeader, DecodeError> {
        check_fixed_header(
            buf,
            INDEX_HEADER_BYTES,
            &INDEX_MAGIC,
            60,
            &HeaderChecks {
                length: "index header length",
                magic: "index magic",
                checksum: "index header checksum",
            },
        )?;
        let version = u16_at(buf, 8);
        if version != INDEX_VERSION {
            return Err(DecodeError::unsupported(
                8,
                "index format version",
                INDEX_VERSION.into(),
                version.into(),
            ));
        }
        let h = IndexHeader {
            frame_count: u32_at(buf, 12),
            first_position: u64_at(buf, 16),
            event_count: u32_at(buf, 24),
            covered_len: u32_at(buf, 28),
            covered_crc: u32_at(buf, 32),
            body_crc: u32_at(buf, 36),
            bloom_blocks: u32_at(buf, 40),
            flags: u16_at(buf, 10),
            names: NamesHeader::read(buf),
        };
        if h.flags & !INDEX_FLAG_NAMES != 0 {
            return Err(DecodeError::new(
                10,
                "index flags",
                INDEX_FLAG_NAMES.into(),
                h.flags.into(),
            ));
        }
        if h.flags & INDEX_FLAG_NAMES == 0 && h.names != NamesHeader::default() {
            return Err(DecodeError::new(
                44,
                "index name table sizes without the name tables flag",
                0,
                h.names.type_count.into(),
            ));
        }
        h.names.check(h.event_count)?;
        if h.frame_count > h.event_count {
            return Err(DecodeError::new(
                12,
                "index frame count above event count",
                h.event_count.into(),
                h.frame_count.into(),
            ));
        }
        if h.file_len() != buf.len() {
            return Err(DecodeError::new(
                0,
                "index file length",
                h.file_len() as u64,
                buf.len() as u64,
            ));
        }
        Ok(h)
    }
}

/// Checks the body checksum of an index whose header decoded.
pub fn check_index_body(buf: &[u8], h: &IndexHeader) -> Result<(), DecodeError> {
    let crc = crc32fast::hash(&buf[INDEX_HEADER_BYTES..]);
    if crc != h.body_crc {
        return Err(DecodeError::new(
            36,
            "index body checksum",
            h.body_crc.into(),
            crc.into(),
        ));
    }
    Ok(())
}

/// Checks what an index's checksums cannot: the frame table starts at relative position 0 and
/// ascends in position and offset, every offset lies in the covered prefix after the segment
/// header, the stream and id tables are sorted, and every relative position is in range. A
/// checksum-valid index that fails this was written wrong; it is rebuilt or ignored like a
/// damaged one. Linear in the index size.
pub fn check_index_tables(buf: &[u8], h: &IndexHeader) -> Result<(), DecodeError> {
    let v = IndexView::with_header(buf, *h);
    let events = h.event_count;
    let covered = h.covered_len;
    let bad = |at: usize, what: &'static str, expected: u64, found: u64| {
        Err(DecodeError::new(at, what, expected, found))
    };
    let mut prev: Option<FrameEntry> = None;
    for i in 0..h.frame_count as usize {
        let f = v.frame(i);
        let at = INDEX_HEADER_BYTES + i * FRAME_ENTRY_BYTES;
        let ok_first = match prev {
            None => f.rel_first == 0,
            Some(p) => f.rel_first > p.rel_first && f.offset > p.offset,
        };
        if !ok_first || f.rel_first >= events {
            return bad(
                at,
                "index frame table out of order",
                u64::from(events),
                f.rel_first.into(),
            );
        }
        if f.offset < 64 || f.offset >= covered {
            return bad(
                at + 4,
                "index frame offset outside the segment",
                covered.into(),
                f.offset.into(),
            );
        }
        prev = Some(f);
    }
    let streams_at = INDEX_HEADER_BYTES + h.frame_count as usize * FRAME_ENTRY_BYTES;
    let mut prev: Option<StreamEntry> = None;
    for i in 0..events as usize {
        let e = v.entry(i);
        let at = streams_at + i * STREAM_ENTRY_BYTES;
        if prev.is_some_and(|p| p > e) || e.rel_pos >= events {
            return bad(
                at,
                "index stream table out of order",
                u64::from(events),
                e.rel_pos.into(),
            );
        }
        if e.frame_offset < 64 || e.frame_offset >= covered {
            return bad(
                at + 20,
                "index stream entry offset outside the segment",
                covered.into(),
                e.frame_offset.into(),
            );
        }
        prev = Some(e);
    }
    let ids_at = streams_at + events as usize * STREAM_ENTRY_BYTES;
    let mut prev: Option<IdEntry> = None;
    for i in 0..events as usize {
        let e = v.id_entry(i);
        if prev.is_some_and(|p| p > e) || e.rel_pos >= events {
            return bad(
                ids_at + i * ID_ENTRY_BYTES,
                "index id table out of order",
                u64::from(events),
                e.rel_pos.into(),
            );
        }
        prev = Some(e);
    }
    check_names_tables(buf, h)
}

/// Encodes an index. `frames` must be ascending, `entries` ascending by (hash, version, rel_pos)
/// and `ids` ascending; `entries` and `ids` have one element per event. With `names` (a sealed
/// segment's index), the name tables follow the Bloom filter.
pub fn encode_index(
    first_position: u64,
    covered_len: u32,
    covered_crc: u32,
    frames: &[FrameEntry],
    entries: &[StreamEntry],
    ids: &[IdEntry],
    names: Option<&NamesBuilder>,
) -> Vec<u8> {
    assert_eq!(
        entries.len(),
        ids.len(),
        "one stream entry and one id per event"
    );
    debug_assert!(frames.windows(2).all(|w| w[0] < w[1]));
    debug_assert!(entries.windows(2).all(|w| w[0] <= w[1]));
    debug_assert!(ids.windows(2).all(|w| w[0] <= w[1]));
    let bloom_blocks = bloom_blocks_for(ids.len());
    let mut b = Vec::with_capacity(
        INDEX_HEADER_BYTES
            + frames.len() * FRAME_ENTRY_BYTES
            + entries.len() * (STREAM_ENTRY_BYTES + ID_ENTRY_BYTES)
            + bloom_blocks as usize * BLOOM_BLOCK_BYTES,
    );
    b.resize(INDEX_HEADER_BYTES, 0);
    for f in frames {
        b.extend_from_slice(&f.rel_first.to_le_bytes());
        b.extend_from_slice(&f.offset.to_le_bytes());
    }
    for e in entries {
        b.extend_from_slice(&e.hash.to_le_bytes());
        b.extend_from_slice(&e.version.to_le_bytes());
        b.extend_from_slice(&e.rel_pos.to_le_bytes());
        b.extend_from_slice(&e.frame_offset.to_le_bytes());
    }
    for i in ids {
        b.extend_from_slice(&i.id);
        b.extend_from_slice(&i.rel_pos.to_le_bytes());
    }
    let bloom_at = b.len();
    b.resize(bloom_at + bloom_blocks as usize * BLOOM_BLOCK_BYTES, 0);
    for i in ids {
        let (block, bits) = bloom_bits(&i.id, bloom_blocks);
        for bit in bits {
            b[bloom_at + block + bit / 8] |= 1 << (bit % 8);
        }
    }
    let names = names.map(|n| n.encode(&mut b));
    let body_crc = crc32fast::hash(&b[INDEX_HEADER_BYTES..]);
    b[0..8].copy_from_slice(&INDEX_MAGIC);
    b[8..10].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    if let Some(n) = names {
        b[10..12].copy_from_slice(&INDEX_FLAG_NAMES.to_le_bytes());
        n.write(&mut b);
    }
    b[12..16].copy_from_slice(&(frames.len() as u32).to_le_bytes());
    b[16..24].copy_from_slice(&first_position.to_le_bytes());
    b[24..28].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    b[28..32].copy_from_slice(&covered_len.to_le_bytes());
    b[32..36].copy_from_slice(&covered_crc.to_le_bytes());
    b[36..40].copy_from_slice(&body_crc.to_le_bytes());
    b[40..44].copy_from_slice(&bloom_blocks.to_le_bytes());
    let crc = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Read access to an index held in a byte slice (typically a memory map).
#[derive(Clone, Copy)]
pub struct IndexView<'a> {
    buf: &'a [u8],
    /// The decoded header.
    pub header: IndexHeader,
}

impl<'a> IndexView<'a> {
    /// A view over an index whose header decodes and whose length matches.
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let header = IndexHeader::decode(buf)?;
        Ok(IndexView { buf, header })
    }

    /// A view over `buf` whose header `header` was decoded from `buf` before (by
    /// [`IndexHeader::decode`], which also checked the length): skips decoding it again.
    pub fn with_header(buf: &'a [u8], header: IndexHeader) -> Self {
        assert_eq!(
            buf.len(),
            header.file_len(),
            "header decoded from these bytes"
        );
        IndexView { buf, header }
    }

    /// The index's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    fn streams_at(&self) -> usize {
        INDEX_HEADER_BYTES + self.header.frame_count as usize * FRAME_ENTRY_BYTES
    }

    fn ids_at(&self) -> usize {
        self.streams_at() + self.header.event_count as usize * STREAM_ENTRY_BYTES
    }

    /// Frame table entry `i`.
    pub fn frame(&self, i: usize) -> FrameEntry {
        let o = INDEX_HEADER_BYTES + i * FRAME_ENTRY_BYTES;
        FrameEntry {
            rel_first: u32_at(self.buf, o),
            offset: u32_at(self.buf, o + 4),
        }
    }

    /// Stream table entry `i`.
    pub fn entry(&self, i: usize) -> StreamEntry {
        let o = self.streams_at() + i * STREAM_ENTRY_BYTES;
        StreamEntry {
            hash: u64_at(self.buf, o),
            version: u64_at(self.buf, o + 8),
            rel_pos: u32_at(self.buf, o + 16),
            frame_offset: u32_at(self.buf, o + 20),
        }
    }

    /// Id table entry `i`.
    pub fn id_entry(&self, i: usize) -> IdEntry {
        let o = self.ids_at() + i * ID_ENTRY_BYTES;
        IdEntry {
            id: self.buf[o..o + 16].try_into().expect("16 bytes"),
            rel_pos: u32_at(self.buf, o + 16),
        }
    }

    /// Index of the frame holding relative position `rel`: the last frame starting at or before it.
    pub fn frame_for(&self, rel: u32) -> Option<FrameEntry> {
        let n = self.header.frame_count as usize;
        let i = partition_point(n, |i| self.frame(i).rel_first <= rel);
        (i > 0).then(|| self.frame(i - 1))
    }

    /// The first stream entry not less than (hash, version).
    pub fn lower_bound(&self, hash: u64, version: u64) -> usize {
        let n = self.header.event_count as usize;
        partition_point(n, |i| {
            let e = self.entry(i);
            (e.hash, e.version) < (hash, version)
        })
    }

    /// Asks the processor to fetch stream entry `i` into its caches (a hint).
    pub fn prefetch_entry(&self, i: usize) {
        super::bytes::prefetch(self.buf, self.streams_at() + i * STREAM_ENTRY_BYTES);
    }

    /// The ids' Bloom filter: `bloom_blocks` blocks of [`BLOOM_BLOCK_BYTES`].
    pub fn bloom(&self) -> &'a [u8] {
        let at = self.ids_at() + self.header.event_count as usize * ID_ENTRY_BYTES;
        &self.buf[at..at + self.header.bloom_blocks as usize * BLOOM_BLOCK_BYTES]
    }

    /// False when the Bloom filter shows that `id` is not indexed here (true: it may be).
    pub fn may_contain_id(&self, id: &[u8; 16]) -> bool {
        bloom_may_contain(self.bloom(), id)
    }

    /// Relative position of the event with `id`, if indexed here.
    pub fn find_id(&self, id: &[u8; 16]) -> Option<u32> {
        if !self.may_contain_id(id) {
            return None;
        }
        let n = self.header.event_count as usize;
        let i = partition_point(n, |i| self.id_entry(i).id < *id);
        (i < n && self.id_entry(i).id == *id).then(|| self.id_entry(i).rel_pos)
    }
}

/// The first stream entry not less than (`hash`, `version`) in each of `views` (as
/// [`IndexView::lower_bound`] gives it): the binary searches run in step, and each round first
/// asks the processor for every view's probe, so that their cache misses overlap instead of
/// following one another.
pub fn lower_bounds(views: &[IndexView<'_>], hash: u64, version: u64) -> Vec<usize> {
    let mut lo = vec![0usize; views.len()];
    let mut len: Vec<usize> = views
        .iter()
        .map(|v| v.header.event_count as usize)
        .collect();
    while len.iter().any(|&n| n > 0) {
        // This round's probe, and both of the next round's candidates: each probe is asked
        // for a round before it is needed.
        for ((v, &l), &n) in views.iter().zip(&lo).zip(&len) {
            if n > 0 {
                let half = n / 2;
                v.prefetch_entry(l + half);
                v.prefetch_entry(l + half / 2);
                v.prefetch_entry(l + half + 1 + (n - half - 1) / 2);
            }
        }
        for ((v, l), n) in views.iter().zip(&mut lo).zip(&mut len) {
            if *n > 0 {
                let half = *n / 2;
                let e = v.entry(*l + half);
                if (e.hash, e.version) < (hash, version) {
                    *l += half + 1;
                    *n -= half + 1;
                } else {
                    *n = half;
                }
            }
        }
    }
    lo
}

/// False when the Bloom filter `blocks` (whole blocks of [`BLOOM_BLOCK_BYTES`], as an index
/// holds them) shows that `id` is not in it; true when it may be, and for an empty filter.
pub fn bloom_may_contain(blocks: &[u8], id: &[u8; 16]) -> bool {
    let n = (blocks.len() / BLOOM_BLOCK_BYTES) as u32;
    if n == 0 {
        return true;
    }
    let (block, bits) = bloom_bits(id, n);
    bits.into_iter()
        .all(|bit| blocks[block + bit / 8] & (1 << (bit % 8)) != 0)
}

/// Blocks of Bloom filter for `n` ids.
pub fn bloom_blocks_for(n: usize) -> u32 {
    let bits = n * BLOOM_BITS_PER_ID;
    bits.div_ceil(BLOOM_BLOCK_BYTES * 8).max(1) as u32
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Bloom filter position of `id` among `blocks` blocks: the byte offset of its block, and
/// the 6 bit numbers (0..512) set in that block. h1 = mix(lo ^ mix(hi)) picks the block
/// (h1 mod blocks); h2 = mix(h1 ^ 0x9e3779b97f4a7c15) gives the bits, 9 bits each from bit 0
/// up; `lo` and `hi` are the id's bytes 0..8 and 8..16 read little-endian, and `mix` is the
/// SplitMix64 finalizer.
pub fn bloom_bits(id: &[u8; 16], blocks: u32) -> (usize, [usize; BLOOM_BITS_SET as usize]) {
    let lo = u64_at(id, 0);
    let hi = u64_at(id, 8);
    let h1 = mix(lo ^ mix(hi));
    let h2 = mix(h1 ^ 0x9e37_79b9_7f4a_7c15);
    let block = (h1 % u64::from(blocks.max(1))) as usize * BLOOM_BLOCK_BYTES;
    let mut bits = [0usize; BLOOM_BITS_SET as usize];
    for (i, b) in bits.iter_mut().enumerate() {
        *b = ((h2 >> (i * 9)) & 511) as usize;
    }
    (block, bits)
}

/// The first index in `0..n` for which `pred` is false, given `pred` is true then false.
pub fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Rng;

    fn id(r: &mut Rng) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&r.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&r.next_u64().to_le_bytes());
        b
    }

    #[test]
    fn every_indexed_id_is_found_and_few_others_pass_the_bloom_filter() {
        let mut r = Rng::new(42);
        let mut ids: Vec<IdEntry> = (0..5000)
            .map(|i| IdEntry {
                id: id(&mut r),
                rel_pos: i,
            })
            .collect();
        let entries: Vec<StreamEntry> = (0..5000)
            .map(|i| StreamEntry {
                hash: 7,
                version: i,
                rel_pos: i as u32,
                frame_offset: 64,
            })
            .collect();
        let frames = [FrameEntry {
            rel_first: 0,
            offset: 64,
        }];
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let bytes = encode_index(100, 64, 0, &frames, &entries, &sorted, None);
        let v = IndexView::new(&bytes).unwrap();
        check_index_body(&bytes, &v.header).unwrap();
        for e in ids.drain(..) {
            assert_eq!(v.find_id(&e.id), Some(e.rel_pos));
        }
        let passed = (0..10_000)
            .filter(|_| v.may_contain_id(&id(&mut r)))
            .count();
        assert!(
            passed < 500,
            "{passed} of 10000 absent ids passed the filter"
        );
    }

    #[test]
    fn searches_in_step_find_the_first_entry_of_every_stream_and_version() {
        let mut r = Rng::new(9);
        for round in 0..40 {
            // Few distinct high halves, so that many hashes share a fence key; some streams
            // long enough to span several fence strides.
            let streams = 1 + r.below(300);
            let mut entries = Vec::new();
            for _ in 0..streams {
                let hash = (r.below(1 + round) << 32) | r.below(1 << 20);
                let long = r.below(10) == 0;
                for v in 0..1 + r.below(if long { 100 } else { 4 }) {
                    entries.push(StreamEntry {
                        hash,
                        version: v * (1 + r.below(3)),
                        rel_pos: 0,
                        frame_offset: 64,
                    });
                }
            }
            entries.sort_unstable_by_key(|e| (e.hash, e.version));
            entries.dedup_by_key(|e| (e.hash, e.version));
            let mut ids: Vec<IdEntry> = (0..entries.len() as u32)
                .map(|i| IdEntry {
                    id: id(&mut r),
                    rel_pos: i,
                })
                .collect();
            ids.sort_unstable();
            let bytes = encode_index(0, 64, 0, &[], &entries, &ids, None);
            let v = IndexView::new(&bytes).unwrap();
            let empty = encode_index(0, 64, 0, &[], &[], &[], None);
            let e = IndexView::new(&empty).unwrap();
            for _ in 0..500 {
                let probe = if r.below(2) == 0 {
                    entries[r.below(entries.len() as u64) as usize].hash
                } else {
                    (r.below(2 + round) << 32) | r.below(1 << 20)
                };
                let version = r.below(120);
                let want = entries
                    .iter()
                    .position(|e| (e.hash, e.version) >= (probe, version))
                    .unwrap_or(entries.len());
                assert_eq!(v.lower_bound(probe, version), want);
                assert_eq!(lower_bounds(&[v, e, v], probe, version), [want, 0, want]);
            }
        }
    }

    #[test]
    fn a_truncated_or_extended_index_is_rejected() {
        let bytes = encode_index(0, 64, 0, &[], &[], &[], None);
        assert!(IndexView::new(&bytes).is_ok());
        assert!(IndexView::new(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(IndexView::new(&longer).is_err());
    }
}
