//! What readers share with the writer: the segment list, the active index and the stream table.

use std::sync::Arc;

use crate::error::Result;
use crate::index::{ActiveIndex, FastMap};
use crate::segment::{ActiveFile, SealedSegment, SegRef};
use crate::store::streams::StreamTable;
use crate::wire::index_file::{StreamEntry, lower_bounds};
use crate::wire::settings::StreamSettings;

/// Sealed segments whose stream tables one stream lookup searches together.
const SEARCH_CHUNK_SEGMENTS: usize = 64;

/// The segments and indexes, behind the store's `RwLock`.
pub(crate) struct State {
    /// Sealed segments, ascending.
    pub sealed: Vec<Arc<SealedSegment>>,
    /// The active segment (`None` only for a read-only open of an empty directory).
    pub active: Option<Arc<ActiveFile>>,
    /// Index of the active segment.
    pub active_index: ActiveIndex,
    /// Version of every stream's last event.
    pub streams: StreamTable,
    /// Retention rules and deletions, for the streams that have any (replaced whole on change,
    /// so readers keep a cheap snapshot).
    pub settings: Arc<FastMap<Arc<str>, StreamSettings>>,
    /// A copy of the id Bloom filter of a sealed segment (the first position of the segment,
    /// the filter's blocks): the writer asks it before reading the last sealed segment's index
    /// for an id (idempotency), and writes it into every checkpoint, so that the first append
    /// after an open does not read and check that whole index.
    pub id_filter: Option<(u64, Arc<[u8]>)>,
}

impl State {
    /// The segment holding `position`, if any segment could.
    pub fn segment_for(&self, position: u64) -> Option<SegRef> {
        if let Some(a) = &self.active
            && position >= a.header.first_position
        {
            return Some(SegRef::Active(a.clone()));
        }
        let i = self
            .sealed
            .partition_point(|s| s.header.first_position <= position);
        (i > 0).then(|| SegRef::Sealed(self.sealed[i - 1].clone()))
    }

    /// The segment holding `position` and the offset of the frame holding it.
    pub fn locate(&self, position: u64) -> Result<Option<(SegRef, u64)>> {
        let Some(seg) = self.segment_for(position) else {
            return Ok(None);
        };
        let rel = position - seg.first_position();
        let Ok(rel) = u32::try_from(rel) else {
            return Ok(None);
        };
        let frame = match &seg {
            SegRef::Sealed(s) => {
                if position > s.footer.last_position() {
                    return Ok(None);
                }
                s.index()?.view().frame_for(rel)
            }
            SegRef::Active(_) => self.active_index.frame_for(rel),
        };
        Ok(frame.map(|f| (seg, u64::from(f.offset))))
    }

    /// The last version of `stream` whose event is before position `end` (the head: the last
    /// visible version; or the durable end: the last durable one), where
    /// `streams.get(stream)` counts every append the writer took, those in flight too. The
    /// versions that retention windows are counted from: an event must not be hidden for a
    /// newer one a reader cannot see, or that a crash (or a failed write) can take back.
    pub fn last_version_before(&self, stream: &str, end: u64) -> Option<u64> {
        let last = self.streams.get(stream)?;
        if self.active.is_none() {
            return Some(last);
        }
        self.active_index
            .last_version_before(crate::wire::bytes::stream_hash(stream), last, end)
    }

    /// Entries of stream `hash` with versions in `lo..=hi`, with their segments, ascending by
    /// position. Entries of other streams sharing the hash are included (callers check names).
    pub fn stream_entries(&self, hash: u64, lo: u64, hi: u64) -> Result<StreamEntries> {
        let mut out = StreamEntries {
            segs: Vec::new(),
            entries: Vec::new(),
        };
        // The segments' searches run in step (their cache misses overlap), a bounded number
        // of segments at a time: each holds its index's map while it is searched, and a store
        // of any number of segments must stay under the kernel's limit on maps.
        for chunk in self.sealed.chunks(SEARCH_CHUNK_SEGMENTS) {
            let ixs = chunk
                .iter()
                .map(|s| s.index())
                .collect::<Result<Vec<_>>>()?;
            let views: Vec<_> = ixs.iter().map(|ix| ix.view()).collect();
            let firsts = lower_bounds(&views, hash, lo);
            for ((s, v), mut i) in chunk.iter().zip(&views).zip(firsts) {
                let seg = out.segs.len();
                while i < v.header.event_count as usize {
                    let e = v.entry(i);
                    if e.hash != hash || e.version > hi {
                        break;
                    }
                    out.entries.push((seg, e));
                    i += 1;
                }
                if out.entries.last().is_some_and(|(k, _)| *k == seg) {
                    out.segs.push(SegRef::Sealed(s.clone()));
                }
            }
        }
        if let Some(a) = &self.active {
            let seg = out.segs.len();
            out.entries.extend(
                self.active_index
                    .entries_in(hash, lo, hi)
                    .into_iter()
                    .map(|e| (seg, e)),
            );
            if out.entries.last().is_some_and(|(k, _)| *k == seg) {
                out.segs.push(SegRef::Active(a.clone()));
            }
        }
        Ok(out)
    }
}

/// The index entries of a stream's versions (see [`State::stream_entries`]): each segment
/// that holds some once, and each entry with the number of its segment in `segs`.
pub(crate) struct StreamEntries {
    pub segs: Vec<SegRef>,
    pub entries: Vec<(usize, StreamEntry)>,
}

impl StreamEntries {
    /// Entry `i` and its segment.
    pub fn get(&self, i: usize) -> (&SegRef, &StreamEntry) {
        let (seg, e) = &self.entries[i];
        (&self.segs[*seg], e)
    }
}
