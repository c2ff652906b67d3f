//! Reading ahead: a forward read through compressed segments reads and decompresses the next
//! ones in other threads while it goes through the current one. Cold, a read otherwise waits
//! for the disk and then for zstd, segment after segment.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::segment::{SealedSegment, SegBytes, image_cache_bytes};
use crate::store::Inner;

/// Compressed segments a forward read reads and decompresses ahead, each in its own thread.
/// Two keep both processors busy when the page cache is cold (a third does not help on two).
const READ_AHEAD: usize = 2;

/// A thread reading a segment: its bytes, or none when it was cancelled before it began.
type Reading = JoinHandle<Result<Option<SegBytes>>>;

/// The read-ahead of one forward read. Segments are matched by identity, not by position: a
/// segment that compaction replaced while it was read ahead is read again, as the new file.
/// Dropping it waits for the threads that are reading (those that have not started do not
/// start), so no thread outlives its read.
pub(crate) struct ReadAhead {
    /// The segments being read ahead, in position order.
    ahead: VecDeque<(Arc<SealedSegment>, Reading)>,
    /// First position of the last segment looked at.
    considered: u64,
    /// The segment of the last call and its bytes, kept while the read is in it: a read that
    /// goes through a segment in batches gets them once, whatever the image cache keeps.
    current: Option<(Arc<SealedSegment>, SegBytes)>,
    /// Read ahead as soon as a read gets to a segment (a replay), or only once it goes on past
    /// the segment's first batch or came to it from a segment read ahead (`read_all`, so that
    /// a read of a few events costs no more than before).
    eager: bool,
    /// Set when dropped: a thread that has not started reading does not.
    cancel: Arc<AtomicBool>,
}

impl ReadAhead {
    /// The read-ahead of a replay ([`ReadAhead::eager`]) or of `read_all`.
    pub(crate) fn new(eager: bool) -> Self {
        ReadAhead {
            ahead: VecDeque::new(),
            considered: 0,
            current: None,
            eager,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The bytes of `s`, which a forward read of the positions before `end` is at. Starts
    /// reading ahead the compressed segments after it that hold such positions, while the
    /// image cache's budget can hold them beside the current one. A thread's error is returned
    /// here, when the read gets to its segment, as reading the segment itself would return it.
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
            let _ = h.join();
        }
        if self.eager || mine.is_some() {
            self.fill(inner, s, end);
        }
        let bytes = match mine {
            Some(h) => match h.join() {
                Ok(Ok(Some(b))) => b,
                Ok(Ok(None)) => s.data()?,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::InvalidArgument("read-ahead thread panicked".into())),
            },
            None => s.data()?,
        };
        self.current = Some((s.clone(), bytes.clone()));
        Ok(bytes)
    }

    /// Lets go of the current segment's bytes (the read went on to the active segment).
    pub(crate) fn leave(&mut self) {
        self.current = None;
    }

    /// Starts threads for the compressed segments after `s` (and after those already looked
    /// at) that hold positions before `end`, up to `READ_AHEAD` at a time.
    fn fill(&mut self, inner: &Inner, s: &SealedSegment, end: u64) {
        if self.ahead.len() >= READ_AHEAD {
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
        // Whether a segment's image is in memory is asked outside the state lock: the image's
        // own lock can be held for a whole decompression, and appends wait for the state lock.
        let budget = image_cache_bytes() as u64;
        for n in candidates {
            let held = (self.ahead.len() as u64 + 2).saturating_mul(n.footer.data_end);
            if held > budget {
                // The images read ahead would not fit the cache beside the current one.
                return;
            }
            self.considered = n.header.first_position;
            // A mapped segment, or an image already in memory, needs no thread.
            if n.bytes_at_hand() {
                continue;
            }
            let seg = n.clone();
            let cancel = self.cancel.clone();
            let spawned = std::thread::Builder::new()
                .name("evlog-read-ahead".into())
                .spawn(move || {
                    if cancel.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    seg.data().map(Some)
                });
            match spawned {
                Ok(h) => self.ahead.push_back((n, h)),
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
    }
}
