//! How a store is opened.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::Vfs;
use crate::store::Store;
use crate::wire::limits::{SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};

/// When an append's bytes must be on disk before `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Durable before `append` returns. Concurrent appenders share one fsync (group commit).
    Always,
    /// A background thread fsyncs at this interval; a crash loses at most that much.
    Interval(Duration),
    /// fsync only when a segment is sealed and when the store is closed.
    Never,
}

/// Options for opening a store. The defaults suit an edge device: every append durable,
/// 64 MiB segments, no automatic repair.
///
/// ```no_run
/// use evlog::{Durability, StoreOptions};
/// let store = StoreOptions::new()
///     .durability(Durability::Always)
///     .segment_bytes(16 << 20)
///     .open("/var/lib/app/events")?;
/// # Ok::<(), evlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub(crate) segment_bytes: u64,
    pub(crate) durability: Durability,
    pub(crate) repair: bool,
    pub(crate) compress_sealed: bool,
    pub(crate) archive_dir: Option<std::path::PathBuf>,
    pub(crate) vfs: Arc<dyn Vfs>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            durability: Durability::Always,
            repair: false,
            compress_sealed: false,
            archive_dir: None,
            vfs: crate::io::real_fs(),
        }
    }
}

impl StoreOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Size at which the active segment is sealed and a new one started.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The durability of appends.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Repair on open: where damage is followed by valid data, cut the log there and move the
    /// damaged bytes (and any later segment) to `*.corrupt` files instead of failing.
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// Compress sealed segments in the background (off by default): after each roll, a
    /// background thread replaces every sealed segment but the newest with its zstd-compressed
    /// form (see [`Store::compress_sealed`]). Appends never wait for it.
    pub fn compress_sealed(mut self, on: bool) -> Self {
        self.compress_sealed = on;
        self
    }

    /// The directory [`Store::archive_sealed`] moves old sealed segments to (a relative path is
    /// relative to the store directory). The store records
    /// it in its `archive.path` marker when it first archives, and every later open (with or
    /// without this option) reads the archived segments from there. Giving another directory
    /// to a writable open of a store that has archived segments updates the marker: move the
    /// archive's files there first.
    pub fn archive_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.archive_dir = Some(dir.into());
        self
    }

    /// The file system the store uses: the operating system's by default. Tests pass the
    /// fault-injecting one (`evlog::io::fault::FaultFs`, feature `fault-injection`).
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(Error::InvalidArgument(format!(
                "segment_bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            )));
        }
        if let Durability::Interval(d) = self.durability
            && d.is_zero()
        {
            return Err(Error::InvalidArgument(
                "Durability::Interval needs a non-zero interval".into(),
            ));
        }
        Ok(())
    }

    /// Opens (creating if needed) the store in `dir` for writing.
    pub fn open(&self, dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir.as_ref(), self.clone(), false)
    }

    /// Opens the store in `dir` read-only (see [`Store::open_read_only`]).
    pub fn open_read_only(&self, dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir.as_ref(), self.clone(), true)
    }
}
