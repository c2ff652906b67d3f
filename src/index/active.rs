//! The index of the active segment: a base loaded from the checkpoint (sorted tables searched in
//! place, so open does not rebuild them) plus the events appended since, in growable tables.
//! At a seal or a checkpoint both are merged into one index file.

use std::ops::Range;
use std::sync::Arc;

use crate::io::FileBytes;
use crate::wire::index_file::{
    FrameEntry, IdEntry, IndexHeader, IndexView, StreamEntry, encode_index, partition_point,
};
use crate::wire::index_names::NamesBuilder;

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
