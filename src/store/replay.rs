//! Replay without copies: [`Store::replay`] hands each event to a callback as an [`EventRef`]
//! that borrows the log's bytes (a sealed segment's map or decompressed image, or a chunk read
//! from the active segment), so replaying allocates nothing per event.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::event::ReadFilter;
use crate::segment::{SealedSegment, SegRef, points_past_data};
use crate::store::EventRef;
use crate::store::filtered::{Plan, plan, planned_frame, prefetch_planned};
use crate::store::read::{hidden_by_settings, visit_records, visit_stream_entries};
use crate::store::read_ahead::ReadAhead;
use crate::store::{Inner, Store, now_us};
use crate::wire::frame::{FRAME_HEADER_BYTES, FrameHeader, check_frame, check_frame_with};
use crate::wire::index_names::EventAt;
use crate::wire::record::RecordView;
use crate::wire::segment::SEGMENT_HEADER_BYTES;

/// Bytes read from the active segment at a time.
const ACTIVE_CHUNK: usize = 1 << 20;

/// Where a [`Store::replay`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEnd {
    /// Events handed to the callback.
    pub events: u64,
    /// The position after the last one examined: where to continue.
    pub next_position: u64,
    /// True when the callback stopped the replay.
    pub stopped: bool,
}

impl Store {
    /// Calls `f` for every visible event with a position in `from..to` (`to` is capped at the
    /// head) that passes `filter`, in position order, until `f` returns
    /// [`ControlFlow::Break`]. The events borrow the log's bytes, so nothing is allocated per
    /// event; use [`EventRef::to_owned_event`] to keep one. Retention rules and deletions are
    /// honoured as by [`Store::read_all`]. Disjoint ranges can be replayed by several threads
    /// at once.
    ///
    /// Errors: [`Error::Corrupted`] for damage met on the way (the events before it were
    /// handed out), [`Error::Io`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = evlog::Store::open(dir.path())?;
    /// # store.append("s", evlog::ExpectedVersion::Any,
    /// #     &[evlog::EventData::new("T", b"{}".to_vec())])?;
    /// let mut bytes = 0;
    /// let end = store.replay(0, u64::MAX, &evlog::ReadFilter::all(), |e| {
    ///     bytes += e.payload.len();
    ///     std::ops::ControlFlow::Continue(())
    /// })?;
    /// assert_eq!((end.events, bytes), (1, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replay<F>(&self, from: u64, to: u64, filter: &ReadFilter, f: F) -> Result<ReplayEnd>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        self.inner.replay(from, to, filter, f)
    }
}

struct Ctx<'f, F> {
    inner: &'f Inner,
    filter: &'f ReadFilter,
    settings: Arc<crate::index::FastMap<Arc<str>, crate::wire::settings::StreamSettings>>,
    now: u64,
    end: u64,
    next: u64,
    events: u64,
    f: F,
}

impl<F: FnMut(&EventRef<'_>) -> ControlFlow<()>> Ctx<'_, F> {
    /// Hands out the wanted events of one checked frame; `Break` when the callback stopped.
    /// With a filter, records are peeked at first and only those that pass are decoded.
    fn frame(
        &mut self,
        seg: &SegRef,
        offset: u64,
        bytes: &[u8],
        h: &FrameHeader,
    ) -> Result<ControlFlow<()>> {
        let filter: &ReadFilter = self.filter;
        let flow = visit_records(seg, offset, bytes, h, filter, |p, r| self.deliver(p, r))?;
        if flow.is_continue() {
            // Where to continue: after this frame, or at the end of the range inside it.
            self.next = h.end_position().min(self.end);
        }
        Ok(flow)
    }

    /// Hands out the event at position `p` if it is wanted and visible.
    fn deliver(&mut self, p: u64, r: RecordView<'_>) -> ControlFlow<()> {
        if p < self.next
            || p >= self.end
            || r.dropped
            || !self.filter.matches(r.stream, r.event_type)
        {
            return ControlFlow::Continue(());
        }
        if hidden_by_settings(
            self.inner,
            &self.settings,
            r.stream,
            r.version,
            r.timestamp_us,
            self.now,
        ) {
            return ControlFlow::Continue(());
        }
        self.events += 1;
        if (self.f)(&EventRef::new(p, r)).is_break() {
            self.next = p + 1;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Goes through the frames of sealed segment `s` from the one at `offset`, which holds
    /// `self.next`.
    fn walk_sealed(
        &mut self,
        s: &Arc<SealedSegment>,
        seg: &SegRef,
        offset: u64,
        ahead: &mut ReadAhead,
    ) -> Result<ControlFlow<()>> {
        let held = ahead.bytes(self.inner, s, self.end)?;
        let check_sums = !held.checked_whole();
        let data: &[u8] = &held;
        let mut at = offset as usize;
        let mut first = true;
        let mut flow = ControlFlow::Continue(());
        while at < data.len() && self.next < self.end && flow.is_continue() {
            let h = check_frame_with(&data[at..], check_sums)
                .map_err(|e| Error::corrupted(&s.path, at as u64, e))?;
            self.check_holds(seg, at as u64, &h, first)?;
            first = false;
            flow = self.frame(seg, at as u64, &data[at..at + h.frame_len()], &h)?;
            at += h.frame_len();
            if flow.is_continue() {
                ahead.went_through(self.inner, s, self.end, 1);
            }
        }
        if first {
            return Err(points_past_data(&s.path, offset, data.len()));
        }
        Ok(flow)
    }

    /// Visits the planned `frames` of sealed segment `s` from the one at `offset` on (the
    /// frame holding `self.next`): without reading the segment when none is left, then moves
    /// past the segment.
    fn planned(
        &mut self,
        s: &Arc<SealedSegment>,
        seg: &SegRef,
        frames: &[EventAt],
        offset: u64,
        ahead: &mut ReadAhead,
    ) -> Result<ControlFlow<()>> {
        let first = s.header.first_position;
        let from = frames.partition_point(|e| u64::from(e.frame_offset) < offset);
        let frames = &frames[from..];
        if !frames.is_empty() {
            let data = ahead.bytes(self.inner, s, self.end)?;
            for (k, &e) in frames.iter().enumerate() {
                prefetch_planned(&data, frames, k);
                if first + u64::from(e.rel_pos) >= self.end {
                    break;
                }
                let (bytes, h) = planned_frame(s, &data, e)?;
                if self
                    .frame(seg, u64::from(e.frame_offset), bytes, &h)?
                    .is_break()
                {
                    return Ok(ControlFlow::Break(()));
                }
                ahead.went_through(self.inner, s, self.end, 1);
            }
        }
        // No other frame of the segment holds a match.
        self.next = (s.footer.last_position() + 1).min(self.end);
        Ok(ControlFlow::Continue(()))
    }

    /// The frame at `at` must hold `self.next` (the first one) or start at it (the others).
    fn check_holds(&self, seg: &SegRef, at: u64, h: &FrameHeader, first: bool) -> Result<()> {
        let holds = if first {
            h.first_position <= self.next && self.next < h.end_position()
        } else {
            h.first_position == self.next
        };
        if holds {
            return Ok(());
        }
        Err(Error::Corrupted {
            file: seg.path().to_path_buf(),
            offset: at,
            what: "frame does not hold the next position of the log",
            expected: self.next,
            found: h.first_position,
        })
    }
}

impl Store {
    /// [`Store::replay`] with a read-ahead kept by the caller across calls: a reader that
    /// goes through the log in batches (a subscription) keeps the segments it read ahead,
    /// and the threads reading them, from one batch to the next, instead of waiting for
    /// them at the end of every batch (a failed replay keeps them too: the caller's next call
    /// starts where this one failed). `ahead` must have been made for the same `filter`.
    pub(crate) fn replay_reading_ahead<F>(
        &self,
        from: u64,
        to: u64,
        filter: &ReadFilter,
        ahead: &mut ReadAhead,
        f: F,
    ) -> Result<ReplayEnd>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        self.inner.replay_with(from, to, filter, ahead, f)
    }
}

impl Inner {
    fn replay<F>(&self, from: u64, to: u64, filter: &ReadFilter, f: F) -> Result<ReplayEnd>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        self.replay_with(from, to, filter, &mut ReadAhead::new(filter), f)
    }

    fn replay_with<F>(
        &self,
        from: u64,
        to: u64,
        filter: &ReadFilter,
        ahead: &mut ReadAhead,
        f: F,
    ) -> Result<ReplayEnd>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        let head = self.head.load(Ordering::Acquire);
        let mut cx = Ctx {
            inner: self,
            filter,
            settings: self.state.read().settings.clone(),
            now: now_us(),
            end: to.min(head),
            next: from,
            events: 0,
            f,
        };
        while cx.next < cx.end {
            // A sealed segment replayed from its first event starts at its first frame: its
            // index is not needed (and, cold, not read).
            let located = {
                let st = self.state.read();
                match st.segment_for(cx.next) {
                    Some(seg @ SegRef::Sealed(_)) if seg.first_position() == cx.next => {
                        Some((seg, SEGMENT_HEADER_BYTES as u64))
                    }
                    _ => st.locate(cx.next)?,
                }
            };
            let Some((seg, offset)) = located else {
                return Err(Error::Corrupted {
                    file: self.dir.clone(),
                    offset: 0,
                    what: "no index entry locates this visible position",
                    expected: cx.next,
                    found: 0,
                });
            };
            let flow = match &seg {
                SegRef::Sealed(s) if !filter.is_all() => match plan(s, filter)? {
                    Plan::Frames(frames) => cx.planned(s, &seg, &frames, offset, ahead)?,
                    Plan::Walk => cx.walk_sealed(s, &seg, offset, ahead)?,
                },
                SegRef::Sealed(s) => cx.walk_sealed(s, &seg, offset, ahead)?,
                SegRef::Active(a) => {
                    // Past the sealed segments: nothing is left to read ahead.
                    ahead.leave();
                    // Read in chunks of what the writer has written, at most ACTIVE_CHUNK
                    // (a reader at the tail reads its few new frames, not a zeroed chunk); a
                    // frame that does not fit the chunk starts the next one.
                    let chunk = |base: u64| {
                        (a.frames_end().saturating_sub(base) as usize)
                            .clamp(FRAME_HEADER_BYTES, ACTIVE_CHUNK)
                    };
                    let mut buf = Vec::new();
                    let mut base = offset;
                    let mut want = chunk(base);
                    let mut got = crate::io::read_into(&*a.file, &a.path, base, want, &mut buf)?;
                    buf.truncate(got);
                    let mut at = 0usize;
                    let mut first = true;
                    let mut flow = ControlFlow::Continue(());
                    while cx.next < cx.end && flow.is_continue() {
                        let avail = buf.len() - at;
                        let next = base + at as u64;
                        let need = if avail < FRAME_HEADER_BYTES {
                            Some(chunk(next))
                        } else {
                            match FrameHeader::decode(&buf[at..]) {
                                Ok(h) if h.frame_len() <= avail => None,
                                Ok(h) => Some(h.frame_len().max(chunk(next))),
                                Err(e) => {
                                    return Err(Error::corrupted(&a.path, base + at as u64, e));
                                }
                            }
                        };
                        if let Some(len) = need {
                            if at == 0 && got < want {
                                // Everything from here was read: a visible frame is cut short.
                                return Err(Error::Corrupted {
                                    file: a.path.clone(),
                                    offset: base,
                                    what: "visible frame cut short in the active segment",
                                    expected: cx.next,
                                    found: got as u64,
                                });
                            }
                            base += at as u64;
                            want = len;
                            got = crate::io::read_into(&*a.file, &a.path, base, want, &mut buf)?;
                            buf.truncate(got);
                            at = 0;
                            continue;
                        }
                        let h = check_frame(&buf[at..])
                            .map_err(|e| Error::corrupted(&a.path, base + at as u64, e))?;
                        let off = base + at as u64;
                        cx.check_holds(&seg, off, &h, first)?;
                        first = false;
                        flow = cx.frame(&seg, off, &buf[at..at + h.frame_len()], &h)?;
                        at += h.frame_len();
                    }
                    if first && cx.next < cx.end {
                        return Err(Error::Corrupted {
                            file: a.path.clone(),
                            offset,
                            what: "visible position not found in the active segment",
                            expected: cx.next,
                            found: 0,
                        });
                    }
                    flow
                }
            };
            if flow.is_break() {
                return Ok(ReplayEnd {
                    events: cx.events,
                    next_position: cx.next,
                    stopped: true,
                });
            }
        }
        Ok(ReplayEnd {
            events: cx.events,
            next_position: cx.next.max(from),
            stopped: false,
        })
    }
}

impl Store {
    /// Calls `f` for every visible event of `stream` from version `from_version` on, in version
    /// order, until `f` returns [`ControlFlow::Break`]: [`Store::read_stream`] without copies
    /// (the events borrow the log's bytes). Retention rules and deletions are honoured. The
    /// result's `next_position` is the version after the last event handed out.
    ///
    /// Errors: [`Error::Corrupted`] for damage met on the way (the events before it were
    /// handed out), [`Error::Io`].
    pub fn replay_stream<F>(&self, stream: &str, from_version: u64, f: F) -> Result<ReplayEnd>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        self.inner.replay_stream(stream, from_version, f)
    }
}

impl Inner {
    fn replay_stream<F>(&self, stream: &str, from_version: u64, mut f: F) -> Result<ReplayEnd>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        let head = self.head.load(Ordering::Acquire);
        let mut end = ReplayEnd {
            events: 0,
            next_position: from_version,
            stopped: false,
        };
        let (entries, settings) = {
            let st = self.state.read();
            let Some(last) = st.streams.get(stream) else {
                return Ok(end);
            };
            let settings = st.settings.get(stream).copied();
            if settings.is_some_and(|s| s.tombstone) {
                return Ok(end);
            }
            let visible_last = st.last_version_before(stream, head).unwrap_or(0);
            let lo = from_version.max(settings.map_or(0, |s| s.first_visible(visible_last)));
            if lo > last {
                return Ok(end);
            }
            (
                st.stream_entries(crate::wire::bytes::stream_hash(stream), lo, last)?,
                settings,
            )
        };
        let max_age_us = settings.map_or(0, |s| s.max_age_us);
        let now = now_us();
        let visit =
            visit_stream_entries(&entries, false, stream, head, max_age_us, now, |p, r| {
                end.events += 1;
                end.next_position = r.version + 1;
                f(&EventRef::new(p, *r))
            })?;
        end.stopped = visit.stopped;
        Ok(end)
    }
}
