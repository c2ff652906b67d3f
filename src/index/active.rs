//! The index of the active segment: a base loaded from the checkpoint (sorted tables searched in
//! place, so open does not rebuild them) plus the events appended since, in growable tables.
//! At a seal or a checkpoint both are merged into one index file.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{FileBytes, Vfs};
use crate::segment::map_file;
use crate::wire::DecodeError;
use crate::wire::frame::{FRAME_HEADER_BYTES, FrameHeader, frame_body};
use crate::wire::index_file::{
    FrameEntry, IdEntry, IndexHeader, IndexView, StreamEntry, encode_index, partition_point,
};
use crate::wire::index_names::{EventAt, NamesBuilder};
use crate::wire::record::peek_record;

/// An index file held in memory or mapped, whose header and body checksum were checked.
#[derive(Clone)]
pub struct BaseIndex {
    bytes: Arc<FileBytes>,
    range: Range<usize>,
    header: IndexHeader,
}

impl BaseIndex {
    /// Wraps `bytes[range]`, an index whose header and body checksum the caller has checked.
    pub fn new(bytes: Arc<FileBytes>, range: Range<usize>) -> Option<Self> {
        let header = IndexHeader::decode(&bytes[range.clone()]).ok()?;
        Some(BaseIndex {
            bytes,
            range,
            header,
        })
    }

    /// A view for lookups.
    pub fn view(&self) -> IndexView<'_> {
        IndexView::with_header(&self.bytes[self.range.clone()], self.header)
    }
}

impl std::fmt::Debug for BaseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseIndex")
            .field("header", &self.header)
            .finish()
    }
}

/// Frame table and per-stream entries of the active segment.
#[derive(Debug, Default, Clone)]
pub struct ActiveIndex {
    /// First position of the active segment.
    pub first_position: u64,
    base: Option<BaseIndex>,
    base_frames: u32,
    base_events: u32,
    /// Frames added after the base, in order.
    frames: Vec<FrameEntry>,
    /// Entries added after the base, per stream hash, ascending by (version, rel_pos).
    by_stream: super::FastMap<u64, Vec<StreamEntry>>,
    /// Ids of events added after the base, by relative position minus the base's event count.
    ids: Vec<[u8; 16]>,
}

impl ActiveIndex {
    /// An empty index for a segment starting at `first_position`.
    pub fn new(first_position: u64) -> Self {
        ActiveIndex {
            first_position,
            ..Default::default()
        }
    }

    /// An index whose covered prefix is `base` (searched in place).
    pub fn with_base(base: BaseIndex) -> Self {
        let mut a = ActiveIndex::new(base.header.first_position);
        a.base_frames = base.header.frame_count;
        a.base_events = base.header.event_count;
        a.base = Some(base);
        a
    }

    /// Number of events indexed.
    pub fn event_count(&self) -> u32 {
        self.base_events + self.ids.len() as u32
    }

    /// Number of frames indexed.
    pub fn frame_count(&self) -> u32 {
        self.base_frames + self.frames.len() as u32
    }

    /// Records a frame.
    pub fn push_frame(&mut self, rel_first: u32, offset: u32) {
        self.frames.push(FrameEntry { rel_first, offset });
    }

    /// Records an event (after its frame's position is known).
    pub fn push_event(&mut self, e: StreamEntry, id: [u8; 16]) {
        debug_assert_eq!(e.rel_pos, self.event_count());
        self.ids.push(id);
        let list = self.by_stream.entry(e.hash).or_default();
        // Versions of one stream ascend; two streams sharing a hash may interleave.
        let at = partition_point(list.len(), |i| {
            (list[i].version, list[i].rel_pos) <= (e.version, e.rel_pos)
        });
        list.insert(at, e);
    }

    /// The frame holding relative position `rel`.
    pub fn frame_for(&self, rel: u32) -> Option<FrameEntry> {
        let i = self.frames.partition_point(|f| f.rel_first <= rel);
        if i > 0 {
            return Some(self.frames[i - 1]);
        }
        self.base.as_ref().and_then(|b| b.view().frame_for(rel))
    }

    /// The last version, up to `last` (the stream's last version in the writer's table), of
    /// the stream with `hash` whose event is before position `end`: `last` itself unless the
    /// events this index added since its base hold it at or past `end` (appended, not yet
    /// visible or durable; or in an append that failed), else the version before the first
    /// of them. `None` when the stream has no event before `end`. A stream's events are in
    /// position order with its versions; were two streams to share the 64-bit hash, the
    /// answer could be off by their events in flight.
    pub fn last_version_before(&self, hash: u64, last: u64, end: u64) -> Option<u64> {
        let Some(list) = self.by_stream.get(&hash) else {
            return Some(last);
        };
        let list = &list[..list.partition_point(|e| e.version <= last)];
        let before = list.partition_point(|e| self.first_position + u64::from(e.rel_pos) < end);
        if before == list.len() {
            return Some(last);
        }
        list[before].version.checked_sub(1)
    }

    /// Entries of stream `hash` with version in `lo..=hi`, ascending by version.
    pub fn entries_in(&self, hash: u64, lo: u64, hi: u64) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        if let Some(b) = &self.base {
            let v = b.view();
            let mut i = v.lower_bound(hash, lo);
            while i < v.header.event_count as usize {
                let e = v.entry(i);
                if e.hash != hash || e.version > hi {
                    break;
                }
                out.push(e);
                i += 1;
            }
        }
        if let Some(list) = self.by_stream.get(&hash) {
            let a = list.partition_point(|e| e.version < lo);
            let b = list.partition_point(|e| e.version <= hi);
            out.extend_from_slice(&list[a..b.max(a)]);
        }
        out
    }

    /// Relative position of the event with `id` if it is in the base (events added since are
    /// found through the writer's map).
    pub fn find_base_id(&self, id: &[u8; 16]) -> Option<u32> {
        self.base.as_ref().and_then(|b| b.view().find_id(id))
    }

    /// Ids of the events added after the base, with their relative positions.
    pub fn added_ids(&self) -> impl Iterator<Item = (u32, &[u8; 16])> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (self.base_events + i as u32, id))
    }

    /// Encodes the index as an index file covering `covered_len` bytes with CRC `covered_crc`,
    /// without name tables (as the checkpoint holds it).
    pub fn encode(&self, covered_len: u32, covered_crc: u32) -> Vec<u8> {
        self.encode_with_names(covered_len, covered_crc, None)
    }

    /// The index file of the segment at `path` when it is sealed with `data_end` bytes of
    /// frames (written and durable) whose CRC-32 is `data_crc`: this index with the name
    /// tables, whose names are read in place from the frames the frame table points at (each
    /// frame header is checked; the bodies were checked when they were written). The same
    /// bytes as an index rebuilt from the segment.
    pub fn encode_sealed(
        &self,
        vfs: &dyn Vfs,
        path: &Path,
        data_end: u64,
        data_crc: u32,
    ) -> Result<Vec<u8>> {
        let map = map_file(vfs, path)?;
        let data = map.get(..data_end as usize).unwrap_or(&map[..]);
        let names = self
            .names_of(data)
            .map_err(|e| Error::corrupted(path, 0, e))?;
        Ok(self.encode_with_names(data_end as u32, data_crc, Some(&names)))
    }

    /// The name tables of the indexed frames, read from the segment's bytes `data`.
    fn names_of(&self, data: &[u8]) -> Result<NamesBuilder, DecodeError> {
        let mut names = NamesBuilder::new();
        let base = self.base.as_ref().map(|b| b.view());
        let frames = (0..self.base_frames as usize)
            .filter_map(|i| base.map(|v| v.frame(i)))
            .chain(self.frames.iter().copied());
        for f in frames {
            let at = f.offset as usize;
            let frame = data.get(at..).unwrap_or(&[]);
            let h = FrameHeader::decode(frame).map_err(|e| DecodeError { at: e.at + at, ..e })?;
            let Some(bytes) = frame.get(..h.frame_len()) else {
                return Err(DecodeError::new(
                    at,
                    "frame extends past end of data",
                    data.len() as u64,
                    (at + h.frame_len()) as u64,
                ));
            };
            let body = frame_body(bytes, &h);
            let mut k = 0;
            for i in 0..h.count {
                let peeked = peek_record(&body[k..]).and_then(|(stream, event_type, len)| {
                    Some((
                        std::str::from_utf8(stream).ok()?,
                        std::str::from_utf8(event_type).ok()?,
                        len,
                    ))
                });
                let Some((stream, event_type, len)) = peeked else {
                    return Err(DecodeError::new(
                        at + FRAME_HEADER_BYTES + k,
                        "record does not fit the frame",
                        body.len() as u64,
                        k as u64,
                    ));
                };
                let event = EventAt {
                    rel_pos: f.rel_first + i,
                    frame_offset: f.offset,
                };
                names.push(stream, event_type, event);
                k += len;
            }
        }
        Ok(names)
    }

    /// [`ActiveIndex::encode`] with the name tables `names` (a sealed segment's index).
    pub fn encode_with_names(
        &self,
        covered_len: u32,
        covered_crc: u32,
        names: Option<&NamesBuilder>,
    ) -> Vec<u8> {
        let mut frames = Vec::with_capacity(self.frame_count() as usize);
        let mut entries = Vec::with_capacity(self.event_count() as usize);
        let mut ids = Vec::with_capacity(self.event_count() as usize);
        if let Some(b) = &self.base {
            let v = b.view();
            frames.extend((0..v.header.frame_count as usize).map(|i| v.frame(i)));
            entries.extend((0..v.header.event_count as usize).map(|i| v.entry(i)));
            ids.extend((0..v.header.event_count as usize).map(|i| v.id_entry(i)));
        }
        frames.extend_from_slice(&self.frames);
        entries.extend(self.by_stream.values().flatten().copied());
        entries.sort_unstable();
        ids.extend(
            self.added_ids()
                .map(|(rel_pos, id)| IdEntry { id: *id, rel_pos }),
        );
        ids.sort_unstable();
        encode_index(
            self.first_position,
            covered_len,
            covered_crc,
            &frames,
            &entries,
            &ids,
            names,
        )
    }
}
