//! The public [`Store`]: open and lock, appends, reads, waiting for new events, verify.

mod archive;
mod compact;
mod compress;
mod durable;
mod event_ref;
mod filtered;
mod options;
mod read;
pub(crate) mod read_ahead;
pub(crate) mod recover;
mod replay;
mod retention;
pub(crate) mod state;
mod streams;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::event::{AppendResult, Direction, EventData, ExpectedVersion, ReadFilter};
pub use archive::ArchiveReport;
pub use compact::CompactReport;
pub use compress::CompressReport;
pub use durable::AppendDurable;
pub use event_ref::EventRef;
pub use options::{Durability, StoreOptions};
pub(crate) use read::Names;
pub use read::{AllEvents, StreamEvents};
pub use replay::ReplayEnd;
use state::State;
pub use verify::{Problem, VerifyReport, verify_dir};
pub(crate) use writer::Part;
use writer::{SyncState, Writer};

/// Name of the lock file in a store directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: StoreOptions,
    pub read_only: bool,
    pub state: RwLock<State>,
    pub writer: Mutex<Option<Writer>>,
    pub sync: Mutex<Option<SyncState>>,
    /// Writer's clock value known durable (mirrors `SyncState::synced` for lock-free checks).
    pub synced: AtomicU64,
    /// Moves each time an fsync under way ends (or fails): appenders waiting for it watch this
    /// instead of being woken (see `Inner::wait_durable`).
    pub sync_epoch: AtomicU64,
    /// First position not known durable (every earlier event has been fsynced).
    pub durable_next: AtomicU64,
    /// Number of events visible to readers (the next position to become visible).
    pub head: AtomicU64,
    head_lock: Mutex<()>,
    head_cv: Condvar,
    pub poisoned: AtomicBool,
    closed: AtomicBool,
    /// Serializes compressions of sealed segments.
    compress_lock: Mutex<()>,
    /// The background compressor's thread, woken after each roll.
    compressor: Mutex<Option<std::thread::Thread>>,
    /// The syncer thread of asynchronous appends, started by the first (see `durable`).
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    lock_file: Mutex<Option<Box<dyn crate::io::VfsLock>>>,
    pub vfs: Arc<dyn crate::io::Vfs>,
}

impl Inner {
    pub(crate) fn publish_head(&self, next: u64) {
        let prev = self.head.fetch_max(next, Ordering::AcqRel);
        if next > prev {
            let _g = self.head_lock.lock();
            self.head_cv.notify_all();
        }
    }

    /// Waits until the event at `position` is visible (or the store is poisoned).
    fn wait_visible(&self, position: u64) -> Result<()> {
        let mut g = self.head_lock.lock();
        while self.head.load(Ordering::Acquire) <= position {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned);
            }
            self.head_cv.wait_for(&mut g, Duration::from_millis(50));
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // A compression, compaction or archiving under way finishes its segment (each checks
        // `closed` between segments) before the lock is released: another writer must never
        // see a replacement half done while this one still removes files.
        let _rewrites_done = self.compress_lock.lock();
        let mut guard = self.writer.lock();
        let r = match guard.as_mut() {
            Some(w) if !self.poisoned.load(Ordering::Acquire) => self
                .write_unwritten(w)
                .and_then(|_| self.cut_zeros_at_close(w))
                .and_then(|_| crate::io::fsync_data(&*w.file, &w.path))
                // Waiters woken by the close find their events durable.
                .inspect(|_| self.mark_synced(w.written, w.next_position))
                .and_then(|_| self.write_checkpoint(w)),
            _ => Ok(()),
        };
        *guard = None;
        self.wake_all_waiters();
        // Whatever started waiting since (a future polled meanwhile) is woken too, to find
        // the store closed.
        let late = self.sync.lock().take();
        if let Some(mut st) = late {
            writer::ToWake::all(&mut st).wake();
        }
        drop(self.lock_file.lock().take());
        r
    }
}

/// An embedded event store in one directory.
///
/// `Store` is `Send + Sync`: share it between threads with an `Arc`. Appends are atomic per call
/// and checked against an expected version; reads stream from disk.
///
/// ```
/// use evlog::{Direction, EventData, ExpectedVersion, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let r = store.append("order-1", ExpectedVersion::NoStream,
///                      &[EventData::new("OrderPlaced", br#"{"total":12}"#.to_vec())])?;
/// assert_eq!(r.next_expected_version, 0);
/// let events: Vec<_> = store.read_stream("order-1", 0, Direction::Forward, usize::MAX)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(&*events[0].event_type, "OrderPlaced");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store {
    inner: Arc<Inner>,
    flusher: Option<std::thread::JoinHandle<()>>,
    compressor: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .field("read_only", &self.inner.read_only)
            .field("head", &self.head_position())
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options, taking its
    /// exclusive write lock. A second writer gets [`Error::Locked`] at once.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        StoreOptions::new().open(dir)
    }

    /// Opens the store in `dir` without the write lock and without changing any file, so it
    /// works while a writer runs. It sees the consistent, checksummed prefix of the log that
    /// existed when it was opened (a torn or half-written tail is left out, not cut).
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        StoreOptions::new().open_read_only(dir)
    }

    pub(crate) fn open_with(dir: &Path, opts: StoreOptions, read_only: bool) -> Result<Store> {
        opts.validate()?;
        let vfs = opts.vfs.clone();
        let lock_file = if read_only {
            if !vfs.is_dir(dir) {
                return Err(Error::io("open", dir)(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "store directory does not exist",
                )));
            }
            None
        } else {
            vfs.create_dir_all(dir)
                .map_err(Error::io("create directory", dir))?;
            let path = dir.join(LOCK_FILE_NAME);
            match vfs.try_lock(&path).map_err(Error::io("lock", &path))? {
                Some(l) => Some(l),
                None => {
                    return Err(Error::Locked {
                        dir: dir.to_path_buf(),
                    });
                }
            }
        };
        if let Some(want) = &opts.archive_dir {
            recover::check_archive_dir(&*vfs, dir, &dir.join(want))?;
        }
        if let (false, Some(want)) = (read_only, &opts.archive_dir)
            && recover::archive_dir_of(&*vfs, dir)?.is_some_and(|have| have != dir.join(want))
        {
            // The archive was moved: the marker follows the option.
            let name = want.to_str().ok_or_else(|| {
                Error::InvalidArgument(format!("archive path {} is not UTF-8", want.display()))
            })?;
            crate::io::write_file_atomic(
                &*vfs,
                dir,
                crate::wire::archive::ARCHIVE_FILE_NAME,
                &crate::wire::archive::encode_archive_marker(name),
            )?;
        }
        let mut rec = recover::recover(&vfs, dir, opts.repair, read_only);
        // A read-only open beside a writer may list a segment file that the writer then
        // replaces (compression, compaction, archiving) before it is opened, or read a file
        // the writer replaced, which then looks damaged: list again.
        let replaced_meanwhile = |r: &Result<_>| match r {
            Err(Error::Io { source, .. }) => source.kind() == std::io::ErrorKind::NotFound,
            Err(Error::Corrupted { .. }) => true,
            _ => false,
        };
        for _ in 0..20 {
            if !(read_only && replaced_meanwhile(&rec)) {
                break;
            }
            rec = recover::recover(&vfs, dir, opts.repair, read_only);
        }
        let rec = rec?;
        let (writer, sync) = match (read_only, rec.tail) {
            (false, Some(t)) => {
                let w = Writer::new(t, &rec.state.active_index)?;
                let s = SyncState::new();
                (Some(w), Some(s))
            }
            _ => (None, None),
        };
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            read_only,
            state: RwLock::new(rec.state),
            writer: Mutex::new(writer),
            sync: Mutex::new(sync),
            synced: AtomicU64::new(0),
            sync_epoch: AtomicU64::new(0),
            durable_next: AtomicU64::new(rec.next_position),
            head: AtomicU64::new(rec.next_position),
            head_lock: Mutex::new(()),
            head_cv: Condvar::new(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            compress_lock: Mutex::new(()),
            compressor: Mutex::new(None),
            syncer: Mutex::new(None),
            lock_file: Mutex::new(lock_file),
            vfs,
        });
        let flusher = match (read_only, opts.durability) {
            (false, Durability::Interval(every)) => Some(spawn_flusher(&inner, every)),
            _ => None,
        };
        let compressor = (!read_only && opts.compress_sealed)
            .then(|| compress::spawn_compressor(&inner, Duration::from_secs(60)));
        *inner.compressor.lock() = compressor.as_ref().map(|h| h.thread().clone());
        Ok(Store {
            inner,
            flusher,
            compressor,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file system the store uses (see [`StoreOptions::vfs`]).
    pub fn vfs(&self) -> Arc<dyn crate::io::Vfs> {
        self.inner.vfs.clone()
    }

    /// True when the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Appends `events` to `stream` atomically, if the stream is at `expected`.
    ///
    /// Events get dense versions after the stream's last one and dense global positions. With
    /// [`Durability::Always`] they are durable when this returns. Re-sending the same call
    /// (same stream, same event ids, same content) returns the original result and writes
    /// nothing; the ids are remembered for the active and the last sealed segment.
    ///
    /// Errors: [`Error::WrongExpectedVersion`] (nothing written), [`Error::InvalidArgument`]
    /// (empty or oversize stream id, empty event type, oversize event, too many events),
    /// [`Error::DuplicateEventId`], [`Error::Poisoned`], [`Error::Closed`], [`Error::ReadOnly`].
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        self.inner.append(stream, expected, events, None)
    }

    /// Appends to several streams atomically: one frame and, with [`Durability::Always`], one
    /// fsync for the whole batch. Each entry is a stream, the version it must be at, and its
    /// events. Every expected version is checked before anything is written: if one does not
    /// match, nothing is written and the error names that stream. All the events are durable
    /// together or not at all (a crash never leaves part of the batch). Returns one
    /// [`AppendResult`] per entry, in order; the events get dense positions in the order given.
    ///
    /// A handler commits its output events and its checkpoint this way, so that both or neither
    /// are stored. Re-sending the same batch (same streams, ids and content, in the same order)
    /// returns the original results and writes nothing, as for [`Store::append`].
    ///
    /// Errors: as for [`Store::append`], plus [`Error::InvalidArgument`] for an empty batch, an
    /// entry without events, or a stream named twice (give all of a stream's events in one
    /// entry). The limits (`MAX_BATCH_EVENTS`, `MAX_BATCH_BYTES`) apply to the whole batch.
    ///
    /// ```
    /// use evlog::{EventData, ExpectedVersion, Store};
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let results = store.append_multi(&[
    ///     ("order-1", ExpectedVersion::NoStream, vec![EventData::new("OrderPlaced", b"{}".to_vec())]),
    ///     ("stock-7", ExpectedVersion::Any, vec![EventData::new("StockReserved", b"{}".to_vec())]),
    /// ])?;
    /// assert_eq!((results[0].first_position, results[1].first_position), (0, 1));
    ///
    /// // One stale expected version, and nothing of the batch is written.
    /// let stale = store.append_multi(&[
    ///     ("order-1", ExpectedVersion::NoStream, vec![EventData::new("OrderPlaced", b"{}".to_vec())]),
    ///     ("stock-8", ExpectedVersion::Any, vec![EventData::new("StockReserved", b"{}".to_vec())]),
    /// ]);
    /// assert!(matches!(stale, Err(evlog::Error::WrongExpectedVersion { .. })));
    /// assert_eq!(store.stream_version("stock-8"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_multi<S: AsRef<str>, E: AsRef<[EventData]>>(
        &self,
        batch: &[(S, ExpectedVersion, E)],
    ) -> Result<Vec<AppendResult>> {
        let parts: Vec<Part<'_>> = batch
            .iter()
            .map(|(stream, expected, events)| Part {
                stream: stream.as_ref(),
                expected: *expected,
                events: events.as_ref(),
                timestamps: None,
            })
            .collect();
        self.append_parts(&parts)
    }

    /// [`Store::append_multi`] of parts that may carry each event's timestamp (the importer).
    pub(crate) fn append_parts(&self, parts: &[Part<'_>]) -> Result<Vec<AppendResult>> {
        let mut results = Vec::with_capacity(parts.len());
        self.inner.append_parts(parts, None, |r| results.push(r))?;
        Ok(results)
    }

    /// [`Store::append`] with the events' timestamp given instead of the time of the append:
    /// for imports and migrations that must keep the original times (`evlog import` uses it).
    /// Everything else is as for `append`.
    pub fn append_at(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventData],
        timestamp_us: u64,
    ) -> Result<AppendResult> {
        self.inner
            .append(stream, expected, events, Some(timestamp_us))
    }

    /// Version of the stream's last event (`None` if it has none): the version the next append
    /// is checked against. It counts every append the writer took, including one still waiting
    /// for its fsync (not visible yet with [`Durability::Always`]) and, on a poisoned store
    /// ([`Store::is_poisoned`]), one whose write failed: reopen the store to see what is stored.
    pub fn stream_version(&self, stream: &str) -> Option<u64> {
        self.inner.state.read().streams.get(stream)
    }

    /// Number of streams.
    pub fn stream_count(&self) -> usize {
        self.inner.state.read().streams.len()
    }

    /// The durability level appends are acknowledged at ([`StoreOptions::durability`]).
    pub fn durability(&self) -> Durability {
        self.inner.opts.durability
    }

    /// The ids of the streams that start with `prefix` and have events, sorted. It looks at
    /// every stream id (a scan, not an index lookup): for monitoring the system streams
    /// (`$dlq-`, `$checkpoint-`), not for a hot path.
    pub fn stream_ids_with_prefix(&self, prefix: &str) -> Vec<String> {
        let st = self.inner.state.read();
        let mut ids: Vec<String> = st
            .streams
            .ids()
            .filter(|s| s.starts_with(prefix))
            .map(|s| s.to_string())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How long the last fsync of appends took and how many appends it made durable (group
    /// commit), or `None` before the first (and for a read-only store). For monitoring: read
    /// under the syncer's lock, nothing is added to the append path.
    pub fn last_fsync(&self) -> Option<(Duration, u64)> {
        let g = self.inner.sync.lock();
        g.as_ref()
            .filter(|st| st.last_batch > 0)
            .map(|st| (st.last_sync, st.last_batch))
    }

    /// True when an fsync or write error has poisoned the store: no append is acknowledged
    /// until it is closed and opened again.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// Position of the last visible event (`None` for an empty store).
    pub fn head_position(&self) -> Option<u64> {
        self.inner.head.load(Ordering::Acquire).checked_sub(1)
    }

    /// Waits until an event after `position` is visible (any event when `position` is `None`),
    /// or `timeout` passes. Returns the head position then. Subscriptions are built on this.
    pub fn wait_for_head_after(&self, position: Option<u64>, timeout: Duration) -> Option<u64> {
        let want = position.map_or(1, |p| p.saturating_add(2));
        let deadline = Instant::now() + timeout;
        let inner = &self.inner;
        let mut g = inner.head_lock.lock();
        while inner.head.load(Ordering::Acquire) < want {
            if inner.closed.load(Ordering::Acquire)
                || inner.head_cv.wait_until(&mut g, deadline).timed_out()
            {
                break;
            }
        }
        drop(g);
        self.head_position()
    }

    /// Reads the events of `stream` from version `from` (inclusive) in `direction`, at most
    /// `limit` of them. Backward reads start at `from` and go down (`u64::MAX`: from the end).
    pub fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> StreamEvents {
        StreamEvents::new(self.inner.clone(), stream, from, direction, limit)
    }

    /// Reads every event from global position `from` (inclusive) in `direction` that passes
    /// `filter`. Backward reads start at `from` and go down (`u64::MAX`: from the head).
    pub fn read_all(&self, from: u64, direction: Direction, filter: ReadFilter) -> AllEvents {
        AllEvents::new(self.inner.clone(), from, direction, filter)
    }

    /// Reads every byte of the store, checks every checksum and the indexes against the log.
    /// Problems are listed in the report; the store is not changed.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify_dir_with(&*self.inner.vfs, &self.inner.dir)
    }

    /// Makes every append so far durable now (useful with `Interval` or `Never`).
    pub fn sync(&self) -> Result<()> {
        let target = {
            let g = self.inner.writer.lock();
            match g.as_ref() {
                Some(w) => w.written,
                None => return Ok(()),
            }
        };
        self.inner.wait_durable(target)
    }

    /// Closes the store: makes appends durable, writes the checkpoint (so the next open does
    /// not rescan the log) and releases the lock. Dropping the store does the same, ignoring
    /// errors.
    pub fn close(mut self) -> Result<()> {
        self.close_ref()
    }

    fn close_ref(&mut self) -> Result<()> {
        let r = self.inner.close();
        let syncer = self.inner.syncer.lock().take();
        for h in [self.flusher.take(), self.compressor.take(), syncer]
            .into_iter()
            .flatten()
        {
            h.thread().unpark();
            let _ = h.join();
        }
        r
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close_ref();
    }
}

fn spawn_flusher(inner: &Arc<Inner>, every: Duration) -> std::thread::JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("evlog-flush".into())
        .spawn(move || {
            loop {
                std::thread::park_timeout(every);
                let Some(inner) = weak.upgrade() else { return };
                if inner.closed.load(Ordering::Acquire) {
                    return;
                }
                let target = inner.writer.lock().as_ref().map(|w| w.written);
                if let Some(t) = target {
                    let _ = inner.wait_durable(t);
                }
            }
        })
        .expect("spawn flusher thread")
}
