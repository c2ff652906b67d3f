//! The append path: validation, optimistic version check, idempotent re-sends, frame encoding,
//! segment rolling, group commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{AppendResult, EventData, ExpectedVersion};
use crate::index::{ActiveIndex, FastMap};
use crate::io::{VfsFile, fsync_data, write_file_atomic};
use crate::segment::{ActiveFile, SealedSegment, SegmentIndex, map_file};
use crate::store::recover::{ActiveTail, create_segment};
use crate::store::state::State;
use crate::store::{Durability, Inner, now_us};
use crate::wire::bytes::stream_hash;
use crate::wire::checkpoint::{CHECKPOINT_FILE_NAME, IdFilter, encode_checkpoint_sorted};
use crate::wire::frame::{FRAME_VERSION, FRAME_VERSION_MULTI, begin_frame, finish_frame_version};
use crate::wire::index_file::StreamEntry;
use crate::wire::index_file::{IndexView, bloom_may_contain};
use crate::wire::limits::{
    MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_EVENT_TYPE_BYTES, MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_BYTES, MAX_STREAM_ID_BYTES,
};
use crate::wire::record::{encode_record, event_len};
use crate::wire::segment::{SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader, index_file_name};

/// The writer's side of the active segment. Guarded by the store's writer mutex.
pub(crate) struct Writer {
    pub file: Arc<dyn VfsFile>,
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub len: u64,
    pub crc: crc32fast::Hasher,
    pub next_position: u64,
    pub last_header_crc: u32,
    /// Ids of the active segment's events and their positions (idempotency).
    pub ids: FastMap<Uuid, u64>,
    /// Bytes written since open, across segments: the group-commit clock.
    pub written: u64,
    buf: Vec<u8>,
    /// The first version of each part of an append being written (kept between appends, so
    /// that an append allocates nothing for it).
    first_versions: Vec<u64>,
    /// Frames appended with `Durability::Always` and not yet written to the file (they end
    /// at `len`): the group-commit leader writes them all with one write before its fsync.
    unwritten: Vec<u8>,
    /// End of the zeros written ahead of the frames (the file's length): see
    /// [`Inner::zero_ahead`].
    zeroed_to: u64,
}

/// What the group-commit syncer needs, guarded by its own mutex.
pub(crate) struct SyncState {
    /// Bytes known durable.
    pub synced: u64,
    pub syncing: bool,
    /// Appends written since the last fsync started.
    pub pending: u64,
    /// Appends the last fsync served, and how long it took.
    pub last_batch: u64,
    pub last_sync: Duration,
    /// Appenders parked until the clock value they wait for is durable.
    pub waiters: Vec<(u64, std::thread::Thread)>,
    /// Futures of asynchronous appends ([`crate::Store::append_async`]) waiting until the clock
    /// value beside them is durable.
    pub wakers: Vec<(u64, std::task::Waker)>,
    /// The highest clock value an asynchronous append asked to be made durable: the syncer
    /// thread makes it durable whether or not the append's future is polled.
    pub async_target: u64,
}

impl SyncState {
    pub(crate) fn new() -> SyncState {
        SyncState {
            synced: 0,
            syncing: false,
            pending: 0,
            last_batch: 0,
            last_sync: Duration::ZERO,
            waiters: Vec::new(),
            wakers: Vec::new(),
            async_target: 0,
        }
    }
}

/// Threads and futures to wake once the sync lock is released.
#[derive(Default)]
pub(crate) struct ToWake {
    threads: Vec<std::thread::Thread>,
    wakers: Vec<std::task::Waker>,
}

impl ToWake {
    pub(crate) fn wake(self) {
        self.threads.iter().for_each(std::thread::Thread::unpark);
        self.wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// Everything waiting, whatever it waits for (the store is poisoned or closing).
    pub(crate) fn all(st: &mut SyncState) -> ToWake {
        ToWake {
            threads: st.waiters.drain(..).map(|(_, t)| t).collect(),
            wakers: st.wakers.drain(..).map(|(_, w)| w).collect(),
        }
    }
}

/// Takes the waiters an fsync covered, and one that it did not (if any) to lead the next
/// fsync, and the futures it covered, for the caller to wake once it has released the lock
/// (so that they do not wake only to wait for it).
fn waiters_to_wake(st: &mut SyncState) -> ToWake {
    let synced = st.synced;
    let mut leader_woken = false;
    let mut wake = ToWake::default();
    st.waiters.retain(|(t, th)| {
        if *t <= synced || !leader_woken {
            leader_woken |= *t > synced;
            wake.threads.push(th.clone());
            false
        } else {
            true
        }
    });
    st.wakers.retain(|(t, w)| {
        if *t <= synced {
            wake.wakers.push(w.clone());
            false
        } else {
            true
        }
    });
    wake
}

/// Zeros written ahead of the frames with `Durability::Always` (see [`Inner::zero_ahead`]).
const ZERO_AHEAD_BYTES: u64 = 1 << 20;
/// The fewest zeros written ahead: right after open, the zeros ahead are twice the bytes
/// written since, at least this and at most [`ZERO_AHEAD_BYTES`], so that the first durable
/// append after an open does not wait for the flush of a whole MiB of zeros.
const ZERO_AHEAD_MIN_BYTES: u64 = 4 << 10;

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Unwritten frames (see `Writer::unwritten`) beyond which an appender writes them itself.
const MAX_UNWRITTEN_BYTES: usize = 1 << 20;

/// Longest an appender yields, waiting for an fsync under way, before it parks.
const MAX_SPIN: Duration = Duration::from_millis(1);

/// Longest a group-commit leader waits for more appends before it fsyncs.
const MAX_GATHER: Duration = Duration::from_millis(1);

impl Writer {
    pub(crate) fn new(t: ActiveTail, index: &ActiveIndex) -> Result<Writer> {
        let file = t.file;
        let first = t.header.first_position;
        let ids = index
            .added_ids()
            .map(|(rel, id)| (Uuid::from_bytes(*id), first + u64::from(rel)))
            .collect();
        Ok(Writer {
            file,
            path: t.path,
            header: t.header,
            len: t.len,
            crc: t.crc,
            next_position: t.next_position,
            last_header_crc: t.last_header_crc,
            ids,
            written: 0,
            buf: Vec::new(),
            first_versions: Vec::new(),
            unwritten: Vec::new(),
            zeroed_to: t.zeroed_to,
        })
    }
}

/// Checks a stream id against the limits.
pub(crate) fn validate_stream_id(stream: &str) -> Result<()> {
    if stream.is_empty() {
        return Err(Error::InvalidArgument("stream id is empty".into()));
    }
    if stream.len() > MAX_STREAM_ID_BYTES {
        return Err(Error::InvalidArgument(format!(
            "stream id is {} bytes, more than MAX_STREAM_ID_BYTES ({MAX_STREAM_ID_BYTES})",
            stream.len()
        )));
    }
    Ok(())
}

/// One stream's part of an append: the stream, the version it must be at, and its events.
#[derive(Clone, Copy)]
pub(crate) struct Part<'a> {
    pub stream: &'a str,
    pub expected: ExpectedVersion,
    pub events: &'a [EventData],
    /// Each event's timestamp (an import keeping the original times), instead of the append's.
    pub timestamps: Option<&'a [u64]>,
}

/// Checks an append's arguments against the limits; nothing is written when this fails.
pub(crate) fn validate(parts: &[Part<'_>]) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if parts.is_empty() {
        return bad("an append needs at least one stream".into());
    }
    let count: usize = parts.iter().map(|p| p.events.len()).sum();
    if count > MAX_BATCH_EVENTS {
        return bad(format!(
            "{count} events in one append, more than MAX_BATCH_EVENTS ({MAX_BATCH_EVENTS})"
        ));
    }
    // Duplicate ids (and streams) inside one append: a scan for small batches, a set for large
    // ones.
    let mut seen = (count > 16).then(|| std::collections::HashSet::with_capacity(count));
    let mut total = 0usize;
    let mut i = 0;
    for (pi, part) in parts.iter().enumerate() {
        let stream = part.stream;
        validate_stream_id(stream)?;
        if part.events.is_empty() {
            return bad(format!(
                "stream {stream:?}: an append needs at least one event"
            ));
        }
        if parts[..pi].iter().any(|p| p.stream == stream) {
            return bad(format!(
                "stream {stream:?} appears twice in one append: give all its events in one part"
            ));
        }
        for e in part.events {
            validate_event(i, e)?;
            let dup = match &mut seen {
                Some(set) => !set.insert(e.id),
                None => parts[..=pi]
                    .iter()
                    .flat_map(|p| p.events)
                    .take(i)
                    .any(|p| p.id == e.id),
            };
            if dup {
                return bad(format!("event id {} appears twice in one append", e.id));
            }
            total += event_len(e) + stream.len() + e.event_type.len() + 96;
            i += 1;
        }
    }
    if total > MAX_BATCH_BYTES {
        return bad(format!(
            "append of about {total} bytes, more than MAX_BATCH_BYTES ({MAX_BATCH_BYTES})"
        ));
    }
    Ok(())
}

/// Checks event `i` of an append against the limits.
fn validate_event(i: usize, e: &EventData) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if e.event_type.is_empty() {
        return bad(format!("event {i} has an empty event type"));
    }
    if e.event_type.len() > MAX_EVENT_TYPE_BYTES {
        return bad(format!(
            "event {i}: event type is {} bytes, more than MAX_EVENT_TYPE_BYTES ({MAX_EVENT_TYPE_BYTES})",
            e.event_type.len()
        ));
    }
    if e.metadata.extra.len() > MAX_METADATA_ENTRIES {
        return bad(format!(
            "event {i} has {} metadata entries, more than MAX_METADATA_ENTRIES ({MAX_METADATA_ENTRIES})",
            e.metadata.extra.len()
        ));
    }
    if let Some(k) = e
        .metadata
        .extra
        .keys()
        .find(|k| k.len() > MAX_METADATA_KEY_BYTES)
    {
        return bad(format!(
            "event {i}: metadata key of {} bytes, more than MAX_METADATA_KEY_BYTES ({MAX_METADATA_KEY_BYTES})",
            k.len()
        ));
    }
    let n = event_len(e);
    if n > MAX_EVENT_BYTES {
        return bad(format!(
            "event {i} is {n} bytes (payload and metadata), more than MAX_EVENT_BYTES ({MAX_EVENT_BYTES})"
        ));
    }
    Ok(())
}

impl Inner {
    /// Appends `events` to `stream`; see [`crate::Store::append`].
    pub(crate) fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventData],
        timestamp_us: Option<u64>,
    ) -> Result<AppendResult> {
        let (result, target) = self.append_nowait(stream, expected, events, timestamp_us)?;
        if let Some(target) = target {
            self.wait_durable(target)?;
        }
        Ok(result)
    }

    /// [`Inner::append`] up to the wait for durability: its result, and the group-commit clock
    /// value to wait for (see [`Inner::append_parts_nowait`]).
    pub(crate) fn append_nowait(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventData],
        timestamp_us: Option<u64>,
    ) -> Result<(AppendResult, Option<u64>)> {
        let part = Part {
            stream,
            expected,
            events,
            timestamps: None,
        };
        let mut result = None;
        let target = self.append_parts_nowait(&[part], timestamp_us, |r| result = Some(r))?;
        Ok((result.expect("one part, one result"), target))
    }

    /// Appends every part in one frame, if every stream is at its expected version; calls
    /// `result` with each part's result, in order. See [`crate::Store::append_multi`].
    pub(crate) fn append_parts(
        &self,
        parts: &[Part<'_>],
        timestamp_us: Option<u64>,
        result: impl FnMut(AppendResult),
    ) -> Result<()> {
        if let Some(target) = self.append_parts_nowait(parts, timestamp_us, result)? {
            self.wait_durable(target)?;
        }
        Ok(())
    }

    /// [`Inner::append_parts`] up to the wait for durability: returns the group-commit clock
    /// value to wait for with [`Durability::Always`], `None` when there is nothing to wait for.
    pub(crate) fn append_parts_nowait(
        &self,
        parts: &[Part<'_>],
        timestamp_us: Option<u64>,
        mut result: impl FnMut(AppendResult),
    ) -> Result<Option<u64>> {
        validate(parts)?;
        let target = {
            let mut guard = self.writer.lock();
            let w = match guard.as_mut() {
                Some(w) => w,
                None if self.read_only => return Err(Error::ReadOnly),
                None => return Err(Error::Closed),
            };
            if self.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned);
            }
            // A re-sent append gets its first answer, even if a stream of it was deleted
            // since: it writes nothing.
            if let Some(last) = self.find_resend(w, parts, &mut result)? {
                drop(guard);
                self.wait_visible(last)?;
                return Ok(None);
            }
            if let settings = &self.state.read().settings
                && !settings.is_empty()
                && let Some(p) = parts
                    .iter()
                    .find(|p| settings.get(p.stream).is_some_and(|s| s.tombstone))
            {
                return Err(Error::StreamDeleted {
                    stream: p.stream.to_owned(),
                });
            }
            // Every expected version is checked before anything is written.
            let mut first_versions = std::mem::take(&mut w.first_versions);
            first_versions.clear();
            {
                let st = self.state.read();
                for p in parts {
                    let actual = st.streams.get(p.stream);
                    if !p.expected.matches(actual) {
                        return Err(Error::WrongExpectedVersion {
                            stream: p.stream.to_owned(),
                            expected: p.expected,
                            actual,
                        });
                    }
                    first_versions.push(actual.map_or(0, |v| v + 1));
                }
            }
            let ts = timestamp_us.unwrap_or_else(now_us);
            let mut buf = std::mem::take(&mut w.buf);
            buf.clear();
            let start = begin_frame(&mut buf);
            let mut count = 0u32;
            for (p, first_version) in parts.iter().zip(&first_versions) {
                for (i, e) in p.events.iter().enumerate() {
                    let ts = p.timestamps.map_or(ts, |t| t[i]);
                    encode_record(&mut buf, p.stream, first_version + i as u64, ts, e);
                }
                count += p.events.len() as u32;
            }
            let first_position = w.next_position;
            // Version 1 unless the frame holds what only version 3 may (several streams,
            // opaque metadata bytes), so that stores using neither stay readable by builds
            // that do not know version 3.
            let version = if parts.len() > 1
                || parts
                    .iter()
                    .flat_map(|p| p.events)
                    .any(|e| !e.metadata.bytes.is_empty())
            {
                FRAME_VERSION_MULTI
            } else {
                FRAME_VERSION
            };
            finish_frame_version(
                &mut buf,
                start,
                first_position,
                count,
                self.durable_next.load(Ordering::Acquire),
                version,
            );
            let r = self.write_frame(w, parts, &first_versions, &buf);
            w.buf = buf;
            let target = r?;
            let mut at = first_position;
            for (p, first_version) in parts.iter().zip(&first_versions) {
                let n = p.events.len() as u64;
                result(AppendResult {
                    first_position: at,
                    last_position: at + n - 1,
                    next_expected_version: first_version + n - 1,
                });
                at += n;
            }
            w.first_versions = first_versions;
            target
        };
        Ok((self.opts.durability == Durability::Always).then_some(target))
    }

    /// Writes one encoded frame (rolling first if it does not fit), updates the indexes and
    /// returns the group-commit clock after it. Any I/O error poisons the store.
    fn write_frame(
        &self,
        w: &mut Writer,
        parts: &[Part<'_>],
        first_versions: &[u64],
        frame: &[u8],
    ) -> Result<u64> {
        let header_len = SEGMENT_HEADER_BYTES as u64;
        if w.len > header_len && w.len + frame.len() as u64 > self.opts.segment_bytes {
            self.roll(w).inspect_err(|_| self.poison())?;
        }
        let offset = w.len;
        if self.opts.durability == Durability::Always {
            // Written by the group-commit leader with the frames of the other appenders it
            // serves: one write instead of one per appender on the path to the fsync.
            w.unwritten.extend_from_slice(frame);
        } else {
            w.file
                .write_all_at(frame, offset)
                .map_err(Error::io("write", &w.path))
                .inspect_err(|_| self.poison())?;
        }
        w.crc.update(frame);
        w.len += frame.len() as u64;
        w.last_header_crc = u32::from_le_bytes(frame[28..32].try_into().expect("4 bytes"));
        let first = w.header.first_position;
        let first_position = w.next_position;
        let mut count = 0u64;
        {
            let mut st = self.state.write();
            if let Some(a) = &st.active {
                a.set_frames_end(w.len - w.unwritten.len() as u64);
            }
            let rel_first = (first_position - first) as u32;
            st.active_index.push_frame(rel_first, offset as u32);
            for (p, &first_version) in parts.iter().zip(first_versions) {
                let hash = stream_hash(p.stream);
                for (i, e) in p.events.iter().enumerate() {
                    let entry = StreamEntry {
                        hash,
                        version: first_version + i as u64,
                        rel_pos: rel_first + (count + i as u64) as u32,
                        frame_offset: offset as u32,
                    };
                    st.active_index.push_event(entry, *e.id.as_bytes());
                }
                let last_version = first_version + p.events.len() as u64 - 1;
                st.streams.set_hashed(p.stream, hash, last_version);
                count += p.events.len() as u64;
            }
        }
        for (i, e) in parts.iter().flat_map(|p| p.events).enumerate() {
            w.ids.insert(e.id, first_position + i as u64);
        }
        w.next_position += count;
        w.written += frame.len() as u64;
        if w.unwritten.len() >= MAX_UNWRITTEN_BYTES {
            self.write_unwritten(w)?;
        }
        {
            let mut s = self.sync.lock();
            if let Some(s) = s.as_mut() {
                s.pending += 1;
            }
        }
        if self.opts.durability != Durability::Always {
            self.publish_head(w.next_position);
        }
        Ok(w.written)
    }

    /// Makes every frame appended so far durable, with the writer lock held (`w`): written,
    /// fsynced, and published as synced. For what is recorded outside the log about its
    /// events (the stream settings): a crash must not take back an event such a record counts.
    /// An error poisons the store.
    pub(crate) fn sync_locked(&self, w: &mut Writer) -> Result<()> {
        if w.unwritten.is_empty() && self.synced.load(Ordering::Acquire) >= w.written {
            return Ok(());
        }
        self.write_unwritten(w)?;
        crate::io::fsync_data(&*w.file, &w.path).inspect_err(|_| self.poison())?;
        self.mark_synced(w.written, w.next_position);
        Ok(())
    }

    /// Writes the frames appended but not yet written (see `Writer::unwritten`). A write
    /// error poisons the store.
    pub(crate) fn write_unwritten(&self, w: &mut Writer) -> Result<()> {
        if w.unwritten.is_empty() {
            return Ok(());
        }
        let at = w.len - w.unwritten.len() as u64;
        w.file
            .write_all_at(&w.unwritten, at)
            .map_err(Error::io("write", &w.path))
            .inspect_err(|_| self.poison())?;
        w.unwritten.clear();
        if let Some(a) = &self.state.read().active {
            a.set_frames_end(w.len);
        }
        self.zero_ahead(w);
        Ok(())
    }

    /// Writes zeros after the frames, up to [`ZERO_AHEAD_BYTES`] past them (less right after
    /// open: [`ZERO_AHEAD_MIN_BYTES`]), when the frames reach the end of the zeros written
    /// before (only with `Durability::Always`). An fsync of
    /// frames that extend the file must also commit the file's new size and blocks (a journal
    /// commit); frames written over zeros already on disk need only their data flushed. The
    /// fsync after the first frames in new zeros makes the zeros durable too. Zeros after the
    /// last frame read as a torn tail: open cuts them, and roll and close cut them first.
    /// Only a help: if the zeros cannot be written (a full disk), no more are tried in this
    /// segment, and the frames, which were written, are fsynced as they are.
    fn zero_ahead(&self, w: &mut Writer) {
        if self.opts.durability != Durability::Always || w.len < w.zeroed_to {
            return;
        }
        let ahead = w
            .written
            .saturating_mul(2)
            .clamp(ZERO_AHEAD_MIN_BYTES, ZERO_AHEAD_BYTES);
        let to = (w.len + ahead).min(self.opts.segment_bytes.max(w.len));
        let mut at = w.len;
        while at < to {
            let n = (to - at).min(ZEROS.len() as u64) as usize;
            if w.file.write_all_at(&ZEROS[..n], at).is_err() {
                // Past any zeros that did land, so that roll and close cut them.
                w.zeroed_to = u64::MAX;
                return;
            }
            at += n as u64;
        }
        w.zeroed_to = to;
    }

    /// Cuts the zeros written ahead of the frames (see [`Inner::zero_ahead`]), so that the file
    /// ends at its last frame (before a footer is written).
    pub(crate) fn cut_zeros(&self, w: &mut Writer) -> Result<()> {
        self.cut_zeros_to(w, w.len)
    }

    /// At close, when zeros were written ahead since the open (`Durability::Always`): leaves
    /// exactly [`ZERO_AHEAD_MIN_BYTES`] of zeros after the last frame (cutting more, writing
    /// what is missing; the close's fsync makes them durable). A file with no zeros after its
    /// last frame (nothing appended since the open) is left as it is. Open keeps such a tail of zeros (it checks every byte), so that the first
    /// durable append after the next open writes over zeros already on disk and its fsync
    /// flushes data only, without a journal commit of the file's new size. Otherwise the file
    /// ends at its last frame.
    pub(crate) fn cut_zeros_at_close(&self, w: &mut Writer) -> Result<()> {
        let keep_to = (w.len + ZERO_AHEAD_MIN_BYTES).min(self.opts.segment_bytes.max(w.len));
        if w.zeroed_to == w.len {
            // Nothing written ahead (no durable append since the open, or not `Always`): the
            // file is left as it is.
            return Ok(());
        }
        if self.opts.durability != Durability::Always || w.zeroed_to == u64::MAX {
            // Zeros that could not all be written: cut whatever landed.
            return self.cut_zeros(w);
        }
        if w.zeroed_to < keep_to {
            let at = w.zeroed_to.max(w.len);
            let n = (keep_to - at) as usize;
            if w.file.write_all_at(&ZEROS[..n], at).is_err() {
                return self.cut_zeros(w);
            }
            w.zeroed_to = keep_to;
        }
        self.cut_zeros_to(w, keep_to)
    }

    fn cut_zeros_to(&self, w: &mut Writer, keep_to: u64) -> Result<()> {
        if w.zeroed_to > keep_to {
            w.file
                .set_len(keep_to)
                .map_err(Error::io("truncate", &w.path))?;
            w.zeroed_to = keep_to;
        }
        w.zeroed_to = w.zeroed_to.max(w.len);
        Ok(())
    }

    /// Finds an earlier append of the same parts (a re-send after a timeout): calls `result`
    /// with each part's original result and returns the position of its last event. An error
    /// if some of the ids are stored with other content or in another append.
    fn find_resend(
        &self,
        w: &mut Writer,
        parts: &[Part<'_>],
        result: &mut impl FnMut(AppendResult),
    ) -> Result<Option<u64>> {
        let lookup = |id: &Uuid| -> Result<Option<u64>> {
            if let Some(p) = w.ids.get(id) {
                return Ok(Some(*p));
            }
            let st = self.state.read();
            if let Some(rel) = st.active_index.find_base_id(id.as_bytes()) {
                return Ok(Some(w.header.first_position + u64::from(rel)));
            }
            if let Some(s) = st.sealed.last() {
                // The copy of its id filter answers most lookups without its index.
                if let Some((first, filter)) = &st.id_filter
                    && *first == s.header.first_position
                    && !bloom_may_contain(filter, id.as_bytes())
                {
                    return Ok(None);
                }
                let ix = s.index()?;
                if let Some(rel) = ix.view().find_id(id.as_bytes()) {
                    return Ok(Some(s.header.first_position + u64::from(rel)));
                }
            }
            Ok(None)
        };
        let first_id = parts[0].events[0].id;
        let mut events = parts
            .iter()
            .flat_map(|p| p.events.iter().map(move |e| (p.stream, e)));
        let Some(p0) = lookup(&first_id)? else {
            for (_, e) in events.skip(1) {
                if lookup(&e.id)?.is_some() {
                    return Err(Error::DuplicateEventId { id: e.id });
                }
            }
            return Ok(None);
        };
        // The earlier frame may still be waiting for its write.
        self.write_unwritten(w)?;
        let total: usize = parts.iter().map(|p| p.events.len()).sum();
        let mut versions = Vec::with_capacity(total);
        let mut frame_ok = true;
        let mut scratch = Vec::new();
        let st = self.state.read();
        let (seg, offset) = st
            .locate(p0)?
            .ok_or(Error::DuplicateEventId { id: first_id })?;
        drop(st);
        let same = seg.with_frame(offset, &mut scratch, |bytes, h| {
            if h.first_position != p0 || h.count as usize != total {
                frame_ok = false;
                return Ok(None);
            }
            let body = crate::wire::frame::frame_body(bytes, h);
            for (r, (stream, e)) in
                crate::wire::record::Records::new(body, h.count).zip(&mut events)
            {
                let (_, r) = r.map_err(|e| Error::corrupted(seg.path(), offset, e))?;
                // A placeholder of an event compaction dropped keeps only the id to compare.
                let same = if r.dropped {
                    r.id == e.id
                } else {
                    r.same_content(e)
                };
                if r.stream != stream || !same {
                    return Ok(Some(e.id));
                }
                versions.push(r.version);
            }
            Ok(None)
        })??;
        if let Some(id) = same {
            return Err(Error::DuplicateEventId { id });
        }
        if !frame_ok {
            return Err(Error::DuplicateEventId { id: first_id });
        }
        let mut at = 0;
        for p in parts {
            let n = p.events.len();
            result(AppendResult {
                first_position: p0 + at as u64,
                last_position: p0 + (at + n) as u64 - 1,
                next_expected_version: versions[at + n - 1],
            });
            at += n;
        }
        Ok(Some(p0 + total as u64 - 1))
    }

    /// Seals the active segment and starts the next one.
    ///
    /// Order (each step durable before the next): fsync the frames; write the footer and fsync;
    /// write the index (temp, fsync, rename, fsync dir); create the next segment (temp, fsync,
    /// rename, fsync dir); write the checkpoint. A crash between any two steps is recovered on
    /// open (see `format/FORMAT.md`, crash analysis).
    pub(crate) fn roll(&self, w: &mut Writer) -> Result<()> {
        let vfs = &*self.vfs;
        self.write_unwritten(w)?;
        self.cut_zeros(w)?;
        fsync_data(&*w.file, &w.path)?;
        let footer = SegmentFooter {
            first_position: w.header.first_position,
            event_count: w.next_position - w.header.first_position,
            frame_count: u64::from(self.state.read().active_index.frame_count()),
            data_end: w.len,
            data_crc: w.crc.clone().finalize(),
        };
        w.file
            .write_all_at(&footer.encode(), w.len)
            .map_err(Error::io("write", &w.path))?;
        fsync_data(&*w.file, &w.path)?;
        // Everything written so far is durable now.
        self.mark_synced(w.written, w.next_position);
        let index_bytes =
            self.state
                .read()
                .active_index
                .encode_sealed(vfs, &w.path, w.len, footer.data_crc)?;
        let idx_name = index_file_name(w.header.first_position);
        write_file_atomic(vfs, &self.dir, &idx_name, &index_bytes)?;
        let id_filter: Arc<[u8]> = IndexView::new(&index_bytes)
            .map(|v| Arc::from(v.bloom()))
            .unwrap_or_else(|_| Arc::from(Vec::new()));
        let sealed_first = w.header.first_position;
        let header = SegmentHeader {
            seq: w
                .header
                .seq
                .checked_add(1)
                .ok_or_else(|| Error::Corrupted {
                    file: w.path.clone(),
                    offset: 16,
                    what: "segment sequence number exhausted",
                    expected: 0,
                    found: w.header.seq,
                })?,
            first_position: w.next_position,
            prev_last_position: Some(w.next_position - 1),
            created_us: now_us(),
        };
        let path = create_segment(vfs, &self.dir, &header)?;
        let file = vfs.open(&path, true).map_err(Error::io("open", &path))?;
        // Readers share the writer's handle: pread and pwrite take their own offsets.
        let read_file = file.clone();
        let idx_path = self.dir.join(&idx_name);
        let sealed = SealedSegment::new(
            self.vfs.clone(),
            w.path.clone(),
            w.header,
            footer,
            SegmentIndex::new(
                self.vfs.clone(),
                idx_path.clone(),
                map_file(vfs, &idx_path)?,
            )?,
        );
        {
            let mut st = self.state.write();
            st.sealed.push(Arc::new(sealed));
            st.id_filter = Some((sealed_first, id_filter));
            st.active = Some(Arc::new(ActiveFile::new(
                path.clone(),
                header,
                read_file,
                SEGMENT_HEADER_BYTES as u64,
            )));
            st.active_index = ActiveIndex::new(header.first_position);
        }
        if let Some(t) = self.compressor.lock().as_ref() {
            t.unpark();
        }
        w.file = file;
        w.path = path;
        w.header = header;
        w.len = SEGMENT_HEADER_BYTES as u64;
        w.zeroed_to = w.len;
        w.crc = crc32fast::Hasher::new();
        w.crc.update(&header.encode());
        w.last_header_crc = 0;
        w.ids.clear();
        self.write_checkpoint(w)
    }

    /// Writes the checkpoint: the stream table, the active segment's index up to `w.len`, and a
    /// copy of the last sealed segment's id filter (read from its index if the store has none
    /// yet, as after an open from a checkpoint without one). The covered bytes must be durable
    /// already.
    pub(crate) fn write_checkpoint(&self, w: &Writer) -> Result<()> {
        let last_sealed = self.state.read().sealed.last().cloned();
        let filter = match last_sealed {
            None => None,
            Some(s) => {
                let first = s.header.first_position;
                let known = self
                    .state
                    .read()
                    .id_filter
                    .clone()
                    .filter(|(f, _)| *f == first);
                match known {
                    Some(f) => Some(f),
                    // The copy is only a help: a segment whose index cannot be read now
                    // (damaged; verify and reads report it) gets a checkpoint without one.
                    None => match s.index() {
                        Ok(ix) => {
                            let f: (u64, Arc<[u8]>) = (first, Arc::from(ix.view().bloom()));
                            self.state.write().id_filter = Some(f.clone());
                            Some(f)
                        }
                        Err(_) => None,
                    },
                }
            }
        };
        let bytes = {
            let st: &State = &self.state.read();
            let idx = st
                .active_index
                .encode(w.len as u32, w.crc.clone().finalize());
            encode_checkpoint_sorted(
                w.next_position,
                w.last_header_crc,
                &st.streams.sorted(),
                &idx,
                filter.as_ref().map(|(first, blocks)| IdFilter {
                    segment_first_position: *first,
                    blocks,
                }),
            )
        };
        write_file_atomic(&*self.vfs, &self.dir, CHECKPOINT_FILE_NAME, &bytes)
    }

    /// Makes everything written so far durable now (group commit: one fsync serves every
    /// appender waiting for a clock value at or below what it covers). Waiters park on their
    /// own and are woken one by one, without a chain of lock hand-offs.
    pub(crate) fn wait_durable(&self, target: u64) -> Result<()> {
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned);
            }
            if self.synced.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            let mut s = self.sync.lock();
            let st = s.as_mut().ok_or(Error::Closed)?;
            if st.synced >= target {
                return Ok(());
            }
            if st.syncing {
                // An fsync is under way. Wait for it to end by yielding the processor, for
                // about as long as fsyncs take: a parked appender must be woken by the leader,
                // which costs tens of microseconds per thread when appenders outnumber the
                // cores, while one that yields sees the end by itself and goes on at once
                // (8 appenders on 2 cores: 1.35x the appends per second). Past that, it parks.
                let epoch = self.sync_epoch.load(Ordering::Acquire);
                let budget = (st.last_sync * 2).min(MAX_SPIN);
                drop(s);
                if self.yield_until_sync_ends(epoch, budget) {
                    continue;
                }
                let mut s = self.sync.lock();
                let st = s.as_mut().ok_or(Error::Closed)?;
                if st.synced >= target {
                    return Ok(());
                }
                if !st.syncing || self.sync_epoch.load(Ordering::Acquire) != epoch {
                    continue;
                }
                st.waiters.push((target, std::thread::current()));
                drop(s);
                // Woken when an fsync covers `target`, or to lead the next one.
                std::thread::park();
                continue;
            }
            st.syncing = true;
            // Group commit: if the last fsync served more appenders than are waiting now, the
            // others are about to write; give them a moment (at most half an fsync) so that
            // this fsync serves them too. A lone writer never waits here. The leader yields
            // rather than sleeps: the appenders it waits for need the processor, and a sleeping
            // leader would have to be woken.
            let deadline = Instant::now() + (st.last_sync / 2).min(MAX_GATHER);
            loop {
                let st = s.as_mut().ok_or(Error::Closed)?;
                if st.pending >= st.last_batch || Instant::now() >= deadline {
                    break;
                }
                drop(s);
                std::thread::yield_now();
                s = self.sync.lock();
            }
            let st = s.as_mut().ok_or(Error::Closed)?;
            let batch = std::mem::take(&mut st.pending);
            drop(s);
            // The frames gathered are written now, in one write, then made durable.
            let written = {
                let mut g = self.writer.lock();
                g.as_mut().ok_or(Error::Closed).and_then(|w| {
                    self.write_unwritten(w)?;
                    Ok((w.file.clone(), w.path.clone(), w.written, w.next_position))
                })
            };
            let (file, path, upto, next) = match written {
                Ok(w) => w,
                Err(e) => {
                    if let Some(st) = self.sync.lock().as_mut() {
                        st.syncing = false;
                        self.sync_epoch.fetch_add(1, Ordering::AcqRel);
                    }
                    self.wake_all_waiters();
                    return Err(e);
                }
            };
            let started = Instant::now();
            let r = fsync_data(&*file, &path);
            let took = started.elapsed();
            let mut s = self.sync.lock();
            let st = s.as_mut().ok_or(Error::Closed)?;
            st.syncing = false;
            st.last_batch = batch;
            st.last_sync = took;
            if let Err(e) = r {
                self.poisoned.store(true, Ordering::Release);
                self.sync_epoch.fetch_add(1, Ordering::AcqRel);
                let wake = ToWake::all(st);
                drop(s);
                wake.wake();
                return Err(e);
            }
            let wake = self.publish_synced(st, upto, next);
            drop(s);
            wake.wake();
        }
    }

    /// Yields the processor until the fsync under way when `sync_epoch` was `epoch` ends (or
    /// the store is poisoned): true. False when `budget` ran out first.
    fn yield_until_sync_ends(&self, epoch: u64, budget: Duration) -> bool {
        let until = Instant::now() + budget;
        loop {
            if self.sync_epoch.load(Ordering::Acquire) != epoch
                || self.poisoned.load(Ordering::Acquire)
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Records that the writer's clock up to `written` is durable (after a roll's fsync).
    pub(crate) fn mark_synced(&self, written: u64, next: u64) {
        let wake = match self.sync.lock().as_mut() {
            Some(st) => {
                st.pending = 0;
                self.publish_synced(st, written, next)
            }
            None => ToWake::default(),
        };
        wake.wake();
    }

    /// Publishes that the writer's clock up to `written` (events before position `next`) is
    /// durable, and returns the waiters to wake once the sync lock is released.
    fn publish_synced(&self, st: &mut SyncState, written: u64, next: u64) -> ToWake {
        st.synced = st.synced.max(written);
        // Head first: an appender that sees its clock value synced must see its events.
        self.durable_next.fetch_max(next, Ordering::AcqRel);
        self.publish_head(next);
        self.synced.store(st.synced, Ordering::Release);
        // Appenders yielding until an fsync ends look at the epoch.
        self.sync_epoch.fetch_add(1, Ordering::AcqRel);
        waiters_to_wake(st)
    }

    /// Wakes every parked waiter (the store is poisoned or closing).
    pub(crate) fn wake_all_waiters(&self) {
        let wake = self.sync.lock().as_mut().map(ToWake::all);
        if let Some(w) = wake {
            w.wake();
        }
    }

    /// Refuses every later append until the store is reopened.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        self.wake_all_waiters();
    }
}
