//! Filtered forward reads of sealed segments through their index's name tables
//! (`format/FORMAT.md` § 8.4): a read of a few event types, or of the streams with a prefix,
//! visits only the frames that hold a match, in position order, and skips a segment that holds
//! none without reading (or decompressing) it. The frames visited go through the same record
//! checks and filters as a walk, so the tables only decide which frames are read.

use std::sync::Arc;

use crate::error::Result;
use crate::event::ReadFilter;
use crate::segment::{SealedSegment, SegBytes, prefetch_frame, sealed_frame};
use crate::store::read::frame_misses;
use crate::wire::bytes::stream_hash;
use crate::wire::frame::FrameHeader;
use crate::wire::index_file::IndexView;
use crate::wire::index_names::EventAt;

/// The tables are used when the events they select are at most one in `SKIP_RATIO` of the
/// segment's: above that, visiting them one by one would cost about what walking every frame
/// does (and gathering them would come on top), so the segment is walked.
const SKIP_RATIO: usize = 2;

/// Which frames of a sealed segment a forward read visits.
pub(crate) enum Plan {
    /// Every frame, in order: no filter, an index without name tables, or too many matches.
    Walk,
    /// Only these frames, in position order, each once, with the first selected position in
    /// it (empty: the segment holds no match).
    Frames(Vec<EventAt>),
}

/// The frames of `s` that a read with `filter` visits.
pub(crate) fn plan(s: &SealedSegment, filter: &ReadFilter) -> Result<Plan> {
    if filter.is_all() {
        return Ok(Plan::Walk);
    }
    let ix = s.index()?;
    let v = ix.view();
    if !v.has_names() {
        return Ok(Plan::Walk);
    }
    let limit = v.header.event_count as usize / SKIP_RATIO;
    let by_type = match &filter.event_types {
        Some(types) => of_types(&v, types, limit),
        None => None,
    };
    let by_stream = match &filter.stream_prefix {
        Some(prefix) => of_prefix(&v, prefix, limit),
        None => None,
    };
    let mut events = match (by_type, by_stream) {
        (None, None) => return Ok(Plan::Walk),
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) => intersect(&a, &b),
    };
    // One entry per frame: the first selected event of each.
    events.dedup_by_key(|e| e.frame_offset);
    Ok(Plan::Frames(events))
}

/// False when the name tables of `s` show that no event passes `filter` (checked per filter
/// part: a segment whose types and prefixes both match, but never in one event, says true).
pub(crate) fn may_match(s: &SealedSegment, filter: &ReadFilter) -> bool {
    if filter.is_all() {
        return true;
    }
    let Ok(ix) = s.index() else { return true };
    let v = ix.view();
    if !v.has_names() {
        return true;
    }
    let typed = filter
        .event_types
        .as_ref()
        .is_none_or(|types| types.iter().any(|t| v.find_type(t.as_bytes()).is_some()));
    typed
        && filter
            .stream_prefix
            .as_ref()
            .is_none_or(|p| !v.streams_with_prefix(p.as_bytes()).is_empty())
}

/// The events of `types`, in position order; `None` when they are more than `limit`.
fn of_types(v: &IndexView<'_>, types: &[String], limit: usize) -> Option<Vec<EventAt>> {
    let mut found: Vec<usize> = types
        .iter()
        .filter_map(|t| v.find_type(t.as_bytes()))
        .collect();
    found.sort_unstable();
    found.dedup();
    let total: usize = found.iter().map(|&i| v.type_events(i).len()).sum();
    if total > limit {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    for i in found {
        out.extend(v.type_events(i).map(|j| v.type_event(j)));
    }
    // Each type's run ascends: a stable sort merges the runs.
    out.sort();
    Some(out)
}

/// The events of the streams whose id starts with `prefix`, in position order; `None` when
/// every stream of the segment matches or they are more than `limit`.
fn of_prefix(v: &IndexView<'_>, prefix: &str, limit: usize) -> Option<Vec<EventAt>> {
    let names = v.streams_with_prefix(prefix.as_bytes());
    if names.len() == v.stream_count() {
        return None;
    }
    let mut hashes: Vec<u64> = names
        .filter_map(|i| std::str::from_utf8(v.stream_name(i)).ok())
        .map(stream_hash)
        .collect();
    // Streams sharing a hash share a run of the stream table: it is taken once.
    hashes.sort_unstable();
    hashes.dedup();
    let mut out = Vec::new();
    let n = v.header.event_count as usize;
    for hash in hashes {
        let mut i = v.lower_bound(hash, 0);
        while i < n {
            let e = v.entry(i);
            if e.hash != hash {
                break;
            }
            out.push(EventAt {
                rel_pos: e.rel_pos,
                frame_offset: e.frame_offset,
            });
            if out.len() > limit {
                return None;
            }
            i += 1;
        }
    }
    out.sort_unstable();
    Some(out)
}

/// The events in both `a` and `b` (each ascending by position).
fn intersect(a: &[EventAt], b: &[EventAt]) -> Vec<EventAt> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].rel_pos.cmp(&b[j].rel_pos) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Planned frames asked for ahead of the one being read: their cache misses overlap with the
/// reading of the frames before them (the frames of a plan are scattered through the
/// segment, so the hardware's sequential prefetching does not find them).
const PREFETCH_AHEAD: usize = 8;

/// Asks the processor for the frames of `frames` that the read of entry `k` goes ahead of
/// (the first ones too when `k` is 0). Only a hint.
pub(crate) fn prefetch_planned(data: &[u8], frames: &[EventAt], k: usize) {
    let ahead = if k == 0 {
        &frames[..frames.len().min(PREFETCH_AHEAD + 1)]
    } else {
        frames
            .get(k + PREFETCH_AHEAD..=k + PREFETCH_AHEAD)
            .unwrap_or(&[])
    };
    for e in ahead {
        prefetch_frame(data, u64::from(e.frame_offset));
    }
}

/// The planned frame `e` of `s` (whose bytes are `data`), checked, and its bytes: the frame
/// must hold the event's position (an index that says otherwise is damage, never a skip).
pub(crate) fn planned_frame<'d>(
    s: &Arc<SealedSegment>,
    data: &'d SegBytes,
    e: EventAt,
) -> Result<(&'d [u8], FrameHeader)> {
    let offset = u64::from(e.frame_offset);
    let pos = s.header.first_position + u64::from(e.rel_pos);
    let h = sealed_frame(&s.path, data, offset, |_, h| *h)?;
    let at = offset as usize;
    let bytes = &data[at..at + h.frame_len()];
    if h.first_position > pos || pos >= h.end_position() {
        return Err(frame_misses(&s.path, offset, pos, &h));
    }
    Ok((bytes, h))
}
