//! Reads: iterators over one stream or over the whole log that read frames from disk as they go.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::event::{Direction, ReadFilter, RecordedEvent};
use crate::index::FastMap;
use crate::segment::{FrameReader, SealedSegment, SegRef, points_past_data};
use crate::store::Inner;
use crate::store::filtered::{Plan, plan, planned_frame, prefetch_planned};
use crate::store::read_ahead::ReadAhead;
use crate::store::state::StreamEntries;
use crate::wire::DecodeError;
use crate::wire::bytes::stream_hash;
use crate::wire::frame::{FRAME_HEADER_BYTES, FrameHeader, check_frame_with, frame_body};
use crate::wire::index_names::EventAt;
use crate::wire::record::{RecordView, Records, decode_record, peek_record};
use crate::wire::segment::SEGMENT_HEADER_BYTES;
use crate::wire::settings::StreamSettings;

/// Frames a forward read decodes from a sealed segment per refill.
const SEALED_BATCH_FRAMES: usize = 256;

/// Versions fetched from the indexes per refill of a stream read.
const STREAM_READ_BATCH: u64 = 1024;

/// The stream ids and event types of the events a read hands back, as shared strings: an event
/// type is allocated once per read (for the first `MAX_INTERNED_TYPES` types it meets) and
/// shared by the events of that type; a stream id is shared by consecutive events of the same
/// stream (every event of a stream read, runs of events in `read_all`).
#[derive(Default)]
pub(crate) struct Names {
    last_stream: Option<Arc<str>>,
    types: Vec<Arc<str>>,
}

/// Event types kept per read; a read that meets more allocates the others per event.
const MAX_INTERNED_TYPES: usize = 64;

impl Names {
    /// `name` as a shared string: the last stream's when it is the same.
    pub(crate) fn stream(&mut self, name: &str) -> Arc<str> {
        match &self.last_stream {
            Some(s) if **s == *name => s.clone(),
            _ => {
                let s: Arc<str> = Arc::from(name);
                self.last_stream = Some(s.clone());
                s
            }
        }
    }

    /// `name` as a shared string, allocated once per read.
    pub(crate) fn event_type(&mut self, name: &str) -> Arc<str> {
        if let Some(t) = self.types.iter().find(|t| ***t == *name) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(name);
        if self.types.len() < MAX_INTERNED_TYPES {
            self.types.push(t.clone());
        }
        t
    }

    /// The owned event of record `r` at position `p`.
    pub(crate) fn recorded(&mut self, p: u64, r: &RecordView<'_>) -> RecordedEvent {
        let stream = self.stream(r.stream);
        r.to_recorded(p, stream, self.event_type(r.event_type))
    }
}

/// The record at position `pos` of a checked frame (`None` when the frame does not hold it).
/// Records before it are skipped by their lengths, not decoded.
fn record_at<'a>(
    bytes: &'a [u8],
    h: &FrameHeader,
    pos: u64,
) -> Result<Option<RecordView<'a>>, DecodeError> {
    if pos < h.first_position || pos >= h.end_position() {
        return Ok(None);
    }
    let body = frame_body(bytes, h);
    let mut at = 0;
    for p in h.first_position..=pos {
        let (_, _, len) = peek_record(&body[at..]).ok_or_else(|| {
            DecodeError::new(
                at,
                "record does not fit the frame",
                body.len() as u64,
                at as u64,
            )
        })?;
        if p == pos {
            return decode_record(&body[at..at + len], at).map(|(r, _)| Some(r));
        }
        at += len;
    }
    Ok(None)
}

/// True when a stream's retention rules or deletion hide its event `version` (appended at
/// `timestamp_us`) at `now`. Only streams with settings are looked up further.
pub(crate) fn hidden_by_settings(
    inner: &Inner,
    settings: &FastMap<Arc<str>, StreamSettings>,
    stream: &str,
    version: u64,
    timestamp_us: u64,
    now: u64,
) -> bool {
    let Some(s) = settings.get(stream) else {
        return false;
    };
    let head = inner.head.load(Ordering::Acquire);
    let last = inner.state.read().last_version_before(stream, head);
    !s.visible(version, timestamp_us, last.unwrap_or(0), now)
}

/// The error for an index entry whose frame does not hold the entry's position.
pub(crate) fn frame_misses(file: &Path, offset: u64, pos: u64, h: &FrameHeader) -> Error {
    Error::Corrupted {
        file: file.to_path_buf(),
        offset,
        what: "index points at a frame that does not hold the wanted position",
        expected: pos,
        found: h.first_position,
    }
}

/// Calls `f(position, record)` for the records of a checked frame that may pass `filter`, until
/// it breaks. With a filter on types or streams, each record's stream and type are peeked at
/// first and only those that pass are decoded (the others are skipped by their lengths).
pub(crate) fn visit_records<'a>(
    seg: &SegRef,
    offset: u64,
    bytes: &'a [u8],
    h: &FrameHeader,
    filter: &ReadFilter,
    mut f: impl FnMut(u64, RecordView<'a>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let body = frame_body(bytes, h);
    let corrupted = |e| Error::corrupted(seg.path(), offset + FRAME_HEADER_BYTES as u64, e);
    if filter.is_all() {
        for (i, r) in Records::new(body, h.count).enumerate() {
            let (_, r) = r.map_err(corrupted)?;
            if f(h.first_position + i as u64, r).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        return Ok(ControlFlow::Continue(()));
    }
    let mut at = 0;
    for i in 0..u64::from(h.count) {
        let Some((stream, event_type, len)) = peek_record(&body[at..]) else {
            return Err(corrupted(DecodeError::new(
                at,
                "record does not fit the frame",
                body.len() as u64,
                at as u64,
            )));
        };
        if filter.matches_bytes(stream, event_type) {
            let (r, _) = decode_record(&body[at..at + len], at).map_err(corrupted)?;
            if f(h.first_position + i, r).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        at += len;
    }
    if at != body.len() {
        return Err(corrupted(DecodeError::new(
            at,
            "bytes after the frame's last record",
            body.len() as u64,
            at as u64,
        )));
    }
    Ok(ControlFlow::Continue(()))
}

/// What a forward read's batch through a sealed segment keeps: which events it hands out.
struct SealedBatch<'a> {
    inner: &'a Inner,
    filter: &'a ReadFilter,
    settings: Arc<FastMap<Arc<str>, StreamSettings>>,
    now: u64,
    /// Positions handed out: `next..head`.
    next: u64,
    head: u64,
}

impl<'a> SealedBatch<'a> {
    fn new(inner: &'a Inner, filter: &'a ReadFilter, next: u64, head: u64) -> Self {
        SealedBatch {
            inner,
            filter,
            settings: inner.state.read().settings.clone(),
            now: crate::store::now_us(),
            next,
            head,
        }
    }

    /// Queues on `out` the events of the checked frame `bytes` (at `offset` of `seg`) that
    /// are in the batch's positions, pass the filter and are visible (not dropped, not hidden
    /// by retention rules or deletions).
    fn queue(
        &self,
        (seg, offset, bytes, h): (&SegRef, u64, &[u8], &FrameHeader),
        names: &mut Names,
        out: &mut VecDeque<RecordedEvent>,
    ) -> Result<()> {
        let (filter, inner, settings, now) = (self.filter, self.inner, &self.settings, self.now);
        visit_records(seg, offset, bytes, h, filter, |p, r| {
            if r.dropped
                || p < self.next
                || p >= self.head
                || !filter.matches(r.stream, r.event_type)
            {
                return ControlFlow::Continue(());
            }
            if hidden_by_settings(inner, settings, r.stream, r.version, r.timestamp_us, now) {
                return ControlFlow::Continue(());
            }
            out.push_back(names.recorded(p, &r));
            ControlFlow::Continue(())
        })
        .map(|_| ())
    }
}

/// The events of one stream, in version order or reverse. Created by
/// [`Store::read_stream`](crate::Store::read_stream).
pub struct StreamEvents {
    inner: Arc<Inner>,
    stream: Arc<str>,
    hash: u64,
    /// Next version to return (forward: going up; backward: going down).
    next: Option<u64>,
    /// Backward: the head seen by the first batch, kept for the whole read. The index holds an
    /// append's events before they are visible; a later batch that took a newer head could
    /// show the lower versions of an append whose upper versions an earlier batch skipped.
    /// (Forward reads end at the first event past the head, so they need no such pin.)
    head: Option<u64>,
    direction: Direction,
    left: usize,
    /// Events decoded and not handed out yet. A batch is decoded whole when it is read, so that
    /// between calls the iterator holds no segment, map or image (a reader that keeps an
    /// iterator for long must not keep segments that compaction replaced).
    pending: VecDeque<RecordedEvent>,
    /// The error that ended the read, handed out after the events decoded before it.
    error: Option<Error>,
    names: Names,
}

impl StreamEvents {
    pub(crate) fn new(
        inner: Arc<Inner>,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Self {
        StreamEvents {
            inner,
            stream: Arc::from(stream),
            hash: stream_hash(stream),
            next: Some(from),
            head: None,
            direction,
            left: limit,
            pending: VecDeque::new(),
            error: None,
            names: Names::default(),
        }
    }

    fn refill(&mut self) -> Result<()> {
        let head = match (self.direction, self.head) {
            (Direction::Backward, Some(head)) => head,
            _ => self.inner.head.load(Ordering::Acquire),
        };
        self.head = Some(head);
        let (entries, settings) = {
            let st = self.inner.state.read();
            let Some(last) = st.streams.get(&self.stream) else {
                self.next = None;
                return Ok(());
            };
            let settings = st.settings.get(&*self.stream).copied();
            // Retention and deletions hide the versions below `first`, counted from the last
            // visible version.
            let first = settings.map_or(0, |s| {
                s.first_visible(st.last_version_before(&self.stream, head).unwrap_or(0))
            });
            let Some(next) = self.next else { return Ok(()) };
            if settings.is_some_and(|s| s.tombstone) {
                self.next = None;
                return Ok(());
            }
            let (lo, hi) = match self.direction {
                Direction::Forward => {
                    let next = next.max(first);
                    if next > last {
                        self.next = None;
                        return Ok(());
                    }
                    (next, next.saturating_add(STREAM_READ_BATCH - 1).min(last))
                }
                Direction::Backward => {
                    let hi = next.min(last);
                    if hi < first {
                        self.next = None;
                        return Ok(());
                    }
                    (hi.saturating_sub(STREAM_READ_BATCH - 1).max(first), hi)
                }
            };
            self.next = match self.direction {
                Direction::Forward => hi.checked_add(1),
                Direction::Backward => lo.checked_sub(1),
            };
            (st.stream_entries(self.hash, lo, hi)?, settings)
        };
        let max_age_us = settings.map_or(0, |s| s.max_age_us);
        let now = crate::store::now_us();
        // Entries are in version order, so the events come out in order.
        let forward = self.direction == Direction::Forward;
        let (stream, names, pending) = (&self.stream, &mut self.names, &mut self.pending);
        pending.reserve(entries.entries.len());
        // On an error, the events before the damage stay queued, to be handed out before it.
        let visit =
            visit_stream_entries(&entries, !forward, stream, head, max_age_us, now, |p, r| {
                pending.push_back(r.to_recorded(p, stream.clone(), names.event_type(r.event_type)));
                ControlFlow::Continue(())
            })?;
        if forward && visit.past_head {
            // Not visible yet; later versions are not either.
            self.next = None;
        }
        Ok(())
    }
}

/// How [`visit_stream_entries`] ended.
pub(crate) struct StreamVisit {
    /// `f` broke.
    pub stopped: bool,
    /// Some entries were at or past the head (not visible yet), and were skipped.
    pub past_head: bool,
}

/// Reads the record of each of `stream`'s index `entries` (from the last one back when
/// `backward`) and calls `f(position, record)` for the visible ones, until it breaks. Entries
/// of other streams that share the hash, placeholders of dropped events and events older than
/// `max_age_us` (when not 0) at `now` are skipped; so are entries at or past `head`. The frames
/// are fetched ahead (a stream's events are scattered through the log). An entry whose frame
/// does not hold its position is damage, never a silent skip.
pub(crate) fn visit_stream_entries(
    entries: &StreamEntries,
    backward: bool,
    stream: &str,
    head: u64,
    max_age_us: u64,
    now: u64,
    mut f: impl FnMut(u64, &RecordView<'_>) -> ControlFlow<()>,
) -> Result<StreamVisit> {
    let mut frames = FrameReader::new();
    frames.prefetch(
        entries
            .entries
            .iter()
            .map(|(s, e)| (&entries.segs[*s], u64::from(e.frame_offset))),
    );
    let mut visit = StreamVisit {
        stopped: false,
        past_head: false,
    };
    let n = entries.entries.len();
    for k in 0..n {
        let (seg, e) = entries.get(if backward { n - 1 - k } else { k });
        let pos = seg.first_position() + u64::from(e.rel_pos);
        if pos >= head {
            visit.past_head = true;
            continue;
        }
        let offset = u64::from(e.frame_offset);
        let flow = frames.with_frame(seg, offset, |bytes, h| {
            let Some(r) = record_at(bytes, h, pos)
                .map_err(|err| Error::corrupted(seg.path(), offset, err))?
            else {
                return Err(frame_misses(seg.path(), offset, pos, h));
            };
            if r.dropped
                || r.stream != stream
                || r.version != e.version
                || (max_age_us != 0 && r.timestamp_us.saturating_add(max_age_us) <= now)
            {
                return Ok(ControlFlow::Continue(()));
            }
            Ok(f(pos, &r))
        })??;
        if flow.is_break() {
            visit.stopped = true;
            break;
        }
    }
    Ok(visit)
}

impl Iterator for StreamEvents {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.left > 0 {
            if let Some(e) = self.pending.pop_front() {
                self.left -= 1;
                return Some(Ok(e));
            }
            if let Some(e) = self.error.take() {
                return Some(Err(e));
            }
            self.next?;
            if let Err(e) = self.refill() {
                // Handed out after the events of the batch before the damage; nothing after.
                self.error = Some(e);
                self.next = None;
            }
        }
        None
    }
}

/// Every event of the store that passes a filter, in position order or reverse. Created by
/// [`Store::read_all`](crate::Store::read_all).
pub struct AllEvents {
    inner: Arc<Inner>,
    filter: ReadFilter,
    direction: Direction,
    /// Forward: next position to read. Backward: the highest position still to read.
    next: Option<u64>,
    /// Forward reads walk frames in order: the segment and offset of the next frame.
    cursor: Option<(SegRef, u64)>,
    pending: VecDeque<RecordedEvent>,
    scratch: Vec<u8>,
    names: Names,
    ahead: ReadAhead,
    /// Frames of the last sealed batch (counted as handed out when the next is asked for).
    batch_frames: usize,
    /// The frames a filtered forward read visits in the sealed segment it is in.
    plan: Option<(Arc<SealedSegment>, Plan)>,
    failed: bool,
}

impl AllEvents {
    pub(crate) fn new(
        inner: Arc<Inner>,
        from: u64,
        direction: Direction,
        filter: ReadFilter,
    ) -> Self {
        AllEvents {
            ahead: ReadAhead::new(&filter),
            plan: None,
            inner,
            filter,
            direction,
            next: Some(from),
            cursor: None,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            names: Names::default(),
            batch_frames: 0,
            failed: false,
        }
    }

    /// Reads the next frame; returns false when there is nothing more to read now.
    fn refill(&mut self) -> Result<bool> {
        let head = self.inner.head.load(Ordering::Acquire);
        let Some(next) = self.next else {
            return Ok(false);
        };
        let (seg, offset) = match self.direction {
            Direction::Forward => {
                if next >= head {
                    return Ok(false);
                }
                match self.forward_cursor(next)? {
                    Some(c) => c,
                    None => return Err(self.unlocated(next)),
                }
            }
            Direction::Backward => {
                if head == 0 {
                    self.next = None;
                    return Ok(false);
                }
                let pos = next.min(head - 1);
                let located = self.inner.state.read().locate(pos)?;
                match located {
                    Some(c) => c,
                    None => return Err(self.unlocated(pos)),
                }
            }
        };
        if let (Direction::Forward, SegRef::Sealed(s)) = (self.direction, &seg) {
            let s = s.clone();
            if self.filter.is_all() {
                return self.refill_sealed_forward(s, offset, next, head);
            }
            let plan = match self.plan.take() {
                Some((p, plan)) if Arc::ptr_eq(&p, &s) => plan,
                _ => plan(&s, &self.filter)?,
            };
            let r = match &plan {
                Plan::Walk => self.refill_sealed_forward(s.clone(), offset, next, head),
                Plan::Frames(frames) => self.refill_sealed_planned(&s, frames, offset, next, head),
            };
            self.plan = Some((s, plan));
            return r;
        }
        self.plan = None;
        self.ahead.leave();
        let filter = &self.filter;
        let names = &mut self.names;
        let mut batch = Vec::new();
        let dir = self.direction;
        // Retention and deletions: checked per event only for streams that have rules.
        let settings = self.inner.state.read().settings.clone();
        let now = crate::store::now_us();
        let inner = &self.inner;
        let hidden = |stream: &str, version: u64, ts: u64| {
            hidden_by_settings(inner, &settings, stream, version, ts, now)
        };
        let (h, frame_len) = seg.with_frame(offset, &mut self.scratch, |bytes, h| {
            let r = visit_records(&seg, offset, bytes, h, filter, |p, r| {
                let wanted = match dir {
                    Direction::Forward => p >= next,
                    Direction::Backward => p <= next,
                };
                if wanted
                    && !r.dropped
                    && p < head
                    && filter.matches(r.stream, r.event_type)
                    && !hidden(r.stream, r.version, r.timestamp_us)
                {
                    batch.push(names.recorded(p, &r));
                }
                ControlFlow::Continue(())
            });
            r.map(|_| (*h, h.frame_len()))
        })??;
        // The frame found must hold the wanted position: an index that says otherwise would end
        // a read early or send it round in circles, so it is an error, never a silent stop.
        let wanted = match dir {
            Direction::Forward => next,
            Direction::Backward => next.min(head - 1),
        };
        if h.first_position > wanted || h.end_position() <= wanted {
            self.failed = true;
            return Err(frame_misses(seg.path(), offset, wanted, &h));
        }
        match dir {
            Direction::Forward => {
                self.next = Some(h.end_position());
                self.cursor = Some((seg, offset + frame_len as u64));
            }
            Direction::Backward => {
                batch.reverse();
                self.next = h.first_position.checked_sub(1);
            }
        }
        self.pending.extend(batch);
        Ok(true)
    }

    /// Forward through a sealed segment: decodes up to `SEALED_BATCH_FRAMES` frames from one
    /// borrow of the segment's bytes (a map, or a decompressed image), starting with the frame
    /// at `offset`, which must hold `next`.
    fn refill_sealed_forward(
        &mut self,
        s: Arc<SealedSegment>,
        offset: u64,
        next: u64,
        head: u64,
    ) -> Result<bool> {
        // The frames of the last batch were handed out: a read going on reads ahead.
        let handed_out = std::mem::take(&mut self.batch_frames);
        self.ahead.went_through(&self.inner, &s, head, handed_out);
        let held = self.ahead.bytes(&self.inner, &s, head)?;
        let check_sums = !held.checked_whole();
        let data: &[u8] = &held;
        let seg = SegRef::Sealed(s.clone());
        let sealed = SealedBatch::new(&self.inner, &self.filter, next, head);
        let mut at = offset as usize;
        let mut next_pos = next;
        let mut frames = 0;
        // The events go straight to `pending`, empty when a refill is asked for (its buffer
        // is reused from one refill to the next).
        let batch = &mut self.pending;
        while at < data.len() && next_pos < head && frames < SEALED_BATCH_FRAMES {
            // A damaged frame after good ones ends the batch; the next refill starts at it and
            // fails there, so the events before it are delivered first.
            let h = match check_frame_with(&data[at..], check_sums) {
                Ok(h) => h,
                Err(_) if frames > 0 => break,
                Err(e) => return Err(Error::corrupted(&s.path, at as u64, e)),
            };
            // The frame found must hold the wanted position: an index (or a frame) that says
            // otherwise would end a read early or send it round in circles.
            let holds = if frames == 0 {
                h.first_position <= next_pos && next_pos < h.end_position()
            } else {
                h.first_position == next_pos
            };
            if !holds && frames > 0 {
                break;
            }
            if !holds {
                self.failed = true;
                return Err(frame_misses(&s.path, at as u64, next_pos, &h));
            }
            let bytes = &data[at..at + h.frame_len()];
            let kept = batch.len();
            let frame = (&seg, at as u64, bytes, &h);
            let decoded = sealed.queue(frame, &mut self.names, batch);
            if let Err(e) = decoded {
                // The events of the frame decoded before the error are not handed out.
                batch.truncate(kept);
                if frames == 0 {
                    return Err(e);
                }
                break;
            }
            next_pos = h.end_position();
            at += h.frame_len();
            frames += 1;
        }
        if frames == 0 {
            self.failed = true;
            return Err(points_past_data(&s.path, offset, data.len()));
        }
        drop(held);
        self.batch_frames = frames;
        self.next = Some(next_pos);
        self.cursor = Some((seg, at as u64));
        Ok(true)
    }

    /// Forward through the planned `frames` of a sealed segment (see `store::filtered`): visits
    /// up to `SEALED_BATCH_FRAMES` of them from the one at `offset` on (the frame holding
    /// `next`, or after it), and moves past the segment once none is left.
    fn refill_sealed_planned(
        &mut self,
        s: &Arc<SealedSegment>,
        frames: &[EventAt],
        offset: u64,
        next: u64,
        head: u64,
    ) -> Result<bool> {
        let handed_out = std::mem::take(&mut self.batch_frames);
        self.ahead.went_through(&self.inner, s, head, handed_out);
        let from = frames.partition_point(|e| u64::from(e.frame_offset) < offset);
        let seg = SegRef::Sealed(s.clone());
        let first = s.header.first_position;
        let mut next_pos = next;
        let mut cursor = s.footer.data_end;
        let mut done = 0;
        if from < frames.len() {
            let data = self.ahead.bytes(&self.inner, s, head)?;
            let sealed = SealedBatch::new(&self.inner, &self.filter, next, head);
            let frames = &frames[from..];
            for (k, &e) in frames.iter().enumerate() {
                prefetch_planned(&data, frames, k);
                let offset = u64::from(e.frame_offset);
                if first + u64::from(e.rel_pos) >= head {
                    // Not visible yet: no match before the head is left.
                    next_pos = next_pos.max(head);
                    cursor = offset;
                    break;
                }
                if done == SEALED_BATCH_FRAMES {
                    cursor = offset;
                    break;
                }
                let kept = self.pending.len();
                let (names, pending) = (&mut self.names, &mut self.pending);
                let queued = planned_frame(s, &data, e).and_then(|(bytes, h)| {
                    sealed.queue((&seg, offset, bytes, &h), names, pending)?;
                    Ok(h)
                });
                match queued {
                    Ok(h) => next_pos = h.end_position(),
                    Err(err) => {
                        // The events of the frame decoded before the error are not handed
                        // out; those of the frames before it are, and the next refill fails
                        // here.
                        self.pending.truncate(kept);
                        if done == 0 {
                            return Err(err);
                        }
                        cursor = offset;
                        break;
                    }
                }
                done += 1;
            }
        }
        if cursor == s.footer.data_end {
            // No other frame of the segment holds a match.
            next_pos = s.footer.last_position() + 1;
        }
        self.batch_frames = done;
        self.next = Some(next_pos.max(next));
        self.cursor = Some((seg, cursor));
        Ok(true)
    }

    /// The error for a visible position that no index locates.
    fn unlocated(&mut self, position: u64) -> Error {
        self.failed = true;
        let st = self.inner.state.read();
        let file = st
            .segment_for(position)
            .map(|s| s.path().to_path_buf())
            .unwrap_or_else(|| self.inner.dir.clone());
        Error::Corrupted {
            file,
            offset: 0,
            what: "no index entry locates this visible position",
            expected: position,
            found: 0,
        }
    }

    /// Where the frame holding `next` is: after the previous frame in the same segment, or
    /// found through the indexes when crossing into another segment.
    fn forward_cursor(&mut self, next: u64) -> Result<Option<(SegRef, u64)>> {
        if let Some((seg, offset)) = self.cursor.take() {
            let still_here = match &seg {
                SegRef::Sealed(s) => next <= s.footer.last_position(),
                SegRef::Active(a) => {
                    // Still the active segment, or sealed since with `next` inside it.
                    let st = self.inner.state.read();
                    match &st.active {
                        Some(cur) if Arc::ptr_eq(cur, a) => true,
                        _ => st
                            .segment_for(next)
                            .is_some_and(|s| s.first_position() == a.header.first_position),
                    }
                }
            };
            if still_here && offset >= SEGMENT_HEADER_BYTES as u64 {
                return Ok(Some((seg, offset)));
            }
        }
        self.inner.state.read().locate(next)
    }
}

impl Iterator for AllEvents {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => {
                    self.ahead.leave();
                    return None;
                }
                Err(e) => {
                    // Nothing comes out after an error.
                    self.failed = true;
                    self.pending.clear();
                    self.ahead.leave();
                    return Some(Err(e));
                }
            }
        }
    }
}
