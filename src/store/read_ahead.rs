//! Reading ahead: a forward read through compressed segments reads and decompresses the next
//! ones in other threads while it goes through the current one. Cold, a read otherwise waits
//! for the disk and then for zstd, segment after segment.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::error::Result;
use crate::event::ReadFilter;
use crate::segment::{SealedSegment, SegBytes, count_read_ahead_thread, image_cache_bytes};
use crate::store::Inner;
use crate::store::filtered::may_match;

/// Compressed segments a forward read reads and decompresses ahead, each in its own thread.
/// Two keep both processors busy when the page cache is cold (a third does not help on two).
const READ_AHEAD: usize = 2;

/// Frames a read hands out before it reads ahead: a read of a few events costs no more than
/// it did without reading ahead (and waits for no thread when it stops).
pub(crate) const READ_AHEAD_AFTER_FRAMES: usize = 256;

/// Name of the threads (15 bytes: what Linux keeps of a thread's name).
pub(crate) const READ_AHEAD_THREAD: &str = "evlog-readahead";

/// A thread reading a segment: its bytes, or none when it was cancelled before it began.
type Reading = JoinHandle<Result<Option<SegBytes>>>;

/// The read-ahead of one forward read. Segments are matched by identity, not by position: a
/// segment that compaction replaced while it was read ahead is read again, as the new file.
/// Dropping it waits for the threads that are reading (those that have not started do not
/// start), so no thread outlives its read.
///
/// The budget: a read holds the bytes of the segment it is in, and reads ahead only while the
/// image cache's budget (`segment::set_image_cache_bytes`) could hold the images read ahead
/// beside one more of the same size. It is a per-read estimate: every reader has its own.
pub(crate) struct ReadAhead {
    /// The segments being read ahead, in position order.
    ahead: VecDeque<(Arc<SealedSegment>, Reading)>,
    /// Threads whose segment the read passed, or compaction replaced: joined when dropped.
    retired: Vec<Reading>,
    /// First position of the last segment looked at.
    considered: u64,
    /// The segment of the last call and its bytes, kept while the read is in it: a read that
    /// goes through a segment in batches gets them once, whatever the image cache keeps.
    current: Option<(Arc<SealedSegment>, SegBytes)>,
    /// Frames the read handed out, until it is going.
    frames: usize,
    /// True once the read handed out `READ_AHEAD_AFTER_FRAMES` frames: it reads ahead.
    going: bool,
    /// Set when dropped: a thread that has not started reading does not.
    cancel: Arc<AtomicBool>,
    /// The read's filter, when it has one: segments whose index shows no match are not read
    /// ahead (the read skips them).
    filter: Option<ReadFilter>,
}

impl ReadAhead {
    /// The read-ahead of a read with `filter` that has not started.
    pub(crate) fn new(filter: &ReadFilter) -> Self {
        ReadAhead {
            ahead: VecDeque::new(),
            retired: Vec::new(),
            considered: 0,
            current: None,
            frames: 0,
            going: false,
            cancel: Arc::new(AtomicBool::new(false)),
            filter: (!filter.is_all()).then(|| filter.clone()),
        }
    }

    /// The bytes of `s`, which a forward read of the positions before `end` is at; once the
    /// read is going (see [`ReadAhead::went_through`]), first starts reading ahead the
    /// compressed segments after it that hold such positions. The bytes are always `s`'s: a
    /// thread's bytes are used only if it read this very segment, and when a thread failed,
    /// the segment is read here, so that an error is the one reading it returns now.
    pub(crate) fn bytes(
        &mut self,
        inner: &Inner,
        s: &Arc<SealedSegment>,
        end: u64,
    ) -> Result<SegBytes> {
        if let Some((c, b)) = &self.current
            && Arc::ptr_eq(c, s)
        {
            let b = b.clone();
            self.fill(inner, s, end);
            return Ok(b);
        }
        self.current = None;
        let first = s.header.first_position;
        let mut mine = None;
        while let Some((n, _)) = self.ahead.front() {
            if n.header.first_position > first {
                break;
            }
            let (n, h) = self.ahead.pop_front().expect("a front");
            if Arc::ptr_eq(&n, s) {
                mine = Some(h);
                break;
            }
            // Passed, or replaced by compaction since: its bytes are not this segment's.
            self.retire(h);
        }
        self.fill(inner, s, end);
        let read_ahead = mine.and_then(|h| match h.join() {
            Ok(Ok(bytes)) => bytes,
            // Read it here: the error (or the panic) may not happen again.
            Ok(Err(_)) | Err(_) => None,
        });
        let bytes = match read_ahead {
            Some(b) => b,
            None => s.data()?,
        };
        self.current = Some((s.clone(), bytes.clone()));
        Ok(bytes)
    }

    /// Tells that the read handed out `frames` more frames and is at `s`; once it handed out
    /// `READ_AHEAD_AFTER_FRAMES` in all, it reads ahead (starting now).
    pub(crate) fn went_through(
        &mut self,
        inner: &Inner,
        s: &SealedSegment,
        end: u64,
        frames: usize,
    ) {
        if self.going {
            return;
        }
        self.frames = self.frames.saturating_add(frames);
        if self.frames >= READ_AHEAD_AFTER_FRAMES {
            self.going = true;
            self.fill(inner, s, end);
        }
    }

    /// Lets go of the current segment's bytes and of whatever was read ahead (waiting for the
    /// threads still reading): the read left the sealed segments, reached the end or failed.
    /// A read that goes on afterwards reads the segments that were being read ahead itself.
    pub(crate) fn leave(&mut self) {
        self.current = None;
        for (_, h) in self.ahead.drain(..) {
            let _ = h.join();
        }
        for h in self.retired.drain(..) {
            let _ = h.join();
        }
    }

    /// Keeps the thread of a segment the read will not use until it ends (joined when the
    /// read is dropped); one that has ended is let go now, with the image it holds.
    fn retire(&mut self, h: Reading) {
        self.retired.retain(|h| !h.is_finished());
        if !h.is_finished() {
            self.retired.push(h);
        }
    }

    /// Once the read is going, starts threads for the compressed segments after `s` (and after
    /// those already looked at) that hold positions before `end`, up to `READ_AHEAD` at a time.
    fn fill(&mut self, inner: &Inner, s: &SealedSegment, end: u64) {
        if !self.going || self.ahead.len() >= READ_AHEAD {
            return;
        }
        self.considered = self.considered.max(s.header.first_position);
        let from = self.considered;
        let candidates: Vec<Arc<SealedSegment>> = {
            let st = inner.state.read();
            let after = st
                .sealed
                .partition_point(|n| n.header.first_position <= from);
            st.sealed[after..]
                .iter()
                .take_while(|n| n.header.first_position < end)
                .take(READ_AHEAD - self.ahead.len())
                .cloned()
                .collect()
        };
        // Whether a segment needs reading is asked outside the state lock, and without waiting
        // for a segment whose image lock is held, most likely by another read decompressing it
        // (appends wait for the state lock, and this read would wait for the whole
        // decompression); such a segment is left to the read itself.
        let budget = image_cache_bytes() as u64;
        for n in candidates {
            let held = (self.ahead.len() as u64 + 2).saturating_mul(n.footer.data_end);
            if held > budget {
                // The images read ahead would not fit the cache beside the current one.
                return;
            }
            self.considered = n.header.first_position;
            // A mapped segment, an image in memory or one being decompressed needs no thread;
            // nor does one the read skips.
            if n.bytes_at_hand_or_coming()
                || self.filter.as_ref().is_some_and(|f| !may_match(&n, f))
            {
                continue;
            }
            let seg = n.clone();
            let cancel = self.cancel.clone();
            let spawned = std::thread::Builder::new()
                .name(READ_AHEAD_THREAD.into())
                .spawn(move || {
                    if cancel.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    seg.data().map(Some)
                });
            match spawned {
                Ok(h) => {
                    count_read_ahead_thread();
                    self.ahead.push_back((n, h));
                }
                // No thread to be had: the read reads the segment itself when it gets there.
                Err(_) => return,
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        for (_, h) in self.ahead.drain(..) {
            let _ = h.join();
        }
        for h in self.retired.drain(..) {
            let _ = h.join();
        }
    }
}
