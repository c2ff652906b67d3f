//! The in-memory index of the active segment: what a sealed segment's `.idx` file holds, kept
//! in growable tables until the segment is sealed.

use std::collections::HashMap;

use crate::wire::index_file::{
    FrameEntry, IdEntry, IndexView, StreamEntry, encode_index, partition_point,
};

/// Frame table and per-stream entries of the active segment.
#[derive(Debug, Default, Clone)]
pub struct ActiveIndex {
    /// First position of the active segment.
    pub first_position: u64,
    /// Frames in order.
    pub frames: Vec<FrameEntry>,
    /// Entries per stream hash, ascending by (version, rel_pos).
    pub by_stream: HashMap<u64, Vec<StreamEntry>>,
    /// Id of every event, by relative position.
    pub ids: Vec<[u8; 16]>,
}

impl ActiveIndex {
    /// An empty index for a segment starting at `first_position`.
    pub fn new(first_position: u64) -> Self {
        ActiveIndex {
            first_position,
            ..Default::default()
        }
    }

    /// Loads the covered prefix stored in an index file.
    pub fn from_view(v: &IndexView<'_>) -> Self {
        let mut a = ActiveIndex::new(v.header.first_position);
        a.frames = (0..v.header.frame_count as usize)
            .map(|i| v.frame(i))
            .collect();
        let n = v.header.event_count as usize;
        a.ids = vec![[0; 16]; n];
        for i in 0..n {
            let e = v.entry(i);
            a.by_stream.entry(e.hash).or_default().push(e);
            let id = v.id_entry(i);
            if let Some(slot) = a.ids.get_mut(id.rel_pos as usize) {
                *slot = id.id;
            }
        }
        for list in a.by_stream.values_mut() {
            list.sort_unstable_by_key(|e| (e.version, e.rel_pos));
        }
        a
    }

    /// Number of events indexed.
    pub fn event_count(&self) -> u32 {
        self.ids.len() as u32
    }

    /// Records a frame.
    pub fn push_frame(&mut self, rel_first: u32, offset: u32) {
        self.frames.push(FrameEntry { rel_first, offset });
    }

    /// Records an event (after its frame's position is known).
    pub fn push_event(&mut self, e: StreamEntry, id: [u8; 16]) {
        debug_assert_eq!(e.rel_pos as usize, self.ids.len());
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
        (i > 0).then(|| self.frames[i - 1])
    }

    /// Entries of stream `hash` with version in `lo..=hi`, ascending.
    pub fn entries_in(&self, hash: u64, lo: u64, hi: u64) -> &[StreamEntry] {
        let Some(list) = self.by_stream.get(&hash) else {
            return &[];
        };
        let a = list.partition_point(|e| e.version < lo);
        let b = list.partition_point(|e| e.version <= hi);
        &list[a..b.max(a)]
    }

    /// Encodes the index as an index file covering `covered_len` bytes with CRC `covered_crc`.
    pub fn encode(&self, covered_len: u32, covered_crc: u32) -> Vec<u8> {
        let mut entries: Vec<StreamEntry> = self.by_stream.values().flatten().copied().collect();
        entries.sort_unstable();
        let mut ids: Vec<IdEntry> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| IdEntry {
                id: *id,
                rel_pos: i as u32,
            })
            .collect();
        ids.sort_unstable();
        encode_index(
            self.first_position,
            covered_len,
            covered_crc,
            &self.frames,
            &entries,
            &ids,
        )
    }
}
