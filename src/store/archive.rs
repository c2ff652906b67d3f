//! Archiving: the oldest sealed segments are moved to an archive directory (another disk, a
//! removable card) and stay readable, by the store and by the tool.
//!
//! The store directory's `archive.path` marker (`wire::archive`) names the archive; every open,
//! verify and tool lists the archive's segment files with the store's own. Moving a segment,
//! crash-safely and while reads and appends go on:
//! 1. write the marker if it is not there yet (temp, fsync, rename, fsync directory);
//! 2. copy the segment file, then its index, into the archive (each: temp, fsync, rename,
//!    fsync the archive directory);
//! 3. swap the segment in the store's list for the archived copy (readers that hold the old
//!    one keep its map);
//! 4. remove the segment and its index from the store directory, fsync it.
//!
//! A crash before 4 leaves both copies: the store directory's is used and the archive's is
//! removed at the next writable open (and copied again by the next archive run). Segments are
//! moved oldest first and only as a prefix of the log, so the store directory always holds
//! the newest part of the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::{remove_file_durable, write_file_atomic};
use crate::segment::{SealedSegment, map_file};
use crate::store::recover::{archive_dir_of, index_path_of};
use crate::store::{Inner, Store, now_us};
use crate::wire::archive::{ARCHIVE_FILE_NAME, encode_archive_marker};
use crate::wire::segment::index_file_name;

/// What [`Store::archive_sealed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The archive directory.
    pub archive_dir: PathBuf,
    /// Segments moved to the archive by this call.
    pub segments_moved: u64,
    /// Bytes moved (segment and index files).
    pub bytes_moved: u64,
    /// Segments in the archive after this call.
    pub segments_archived: u64,
}

impl Inner {
    /// The archive directory: the one the store's marker names, else the configured one.
    pub(crate) fn archive_dir(&self) -> Result<Option<PathBuf>> {
        match archive_dir_of(&*self.vfs, &self.dir)? {
            Some(d) => Ok(Some(d)),
            None => Ok(self.opts.archive_dir.as_ref().map(|p| self.dir.join(p))),
        }
    }

    pub(crate) fn archive_sealed(&self, older_than: Duration) -> Result<ArchiveReport> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let Some(archive) = self.archive_dir()? else {
            return Err(Error::InvalidArgument(
                "no archive directory: open the store with StoreOptions::archive_dir".into(),
            ));
        };
        let vfs = &*self.vfs;
        crate::store::recover::check_archive_dir(vfs, &self.dir, &archive)?;
        let _one_at_a_time = self.compress_lock.lock();
        vfs.create_dir_all(&archive)
            .map_err(Error::io("create directory", &archive))?;
        // The archive directory's own entry must be durable before anything is moved into it.
        if let Some(parent) = archive.parent() {
            crate::io::fsync_dir(vfs, parent)?;
        }
        if archive_dir_of(vfs, &self.dir)?.is_none() {
            // As configured: a relative path stays relative to the store directory.
            let given = self.opts.archive_dir.as_ref().unwrap_or(&archive);
            let name = given.to_str().ok_or_else(|| {
                Error::InvalidArgument(format!("archive path {} is not UTF-8", given.display()))
            })?;
            write_file_atomic(
                vfs,
                &self.dir,
                ARCHIVE_FILE_NAME,
                &encode_archive_marker(name),
            )?;
        }
        // A segment was sealed when the next one was created; it is old enough when that was
        // longer ago than `older_than`.
        let cutoff =
            now_us().saturating_sub(u64::try_from(older_than.as_micros()).unwrap_or(u64::MAX));
        let candidates: Vec<Arc<SealedSegment>> = {
            let st = self.state.read();
            let next_created = st
                .sealed
                .iter()
                .skip(1)
                .map(|s| s.header.created_us)
                .chain(st.active.iter().map(|a| a.header.created_us));
            st.sealed
                .iter()
                .zip(next_created)
                .take_while(|(_, sealed_at)| *sealed_at <= cutoff)
                .map(|(s, _)| s.clone())
                .collect()
        };
        let mut rep = ArchiveReport {
            archive_dir: archive.clone(),
            ..ArchiveReport::default()
        };
        for seg in candidates {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if seg.path.parent() == Some(archive.as_path()) {
                continue;
            }
            rep.bytes_moved += self.move_to_archive(&seg, &archive)?;
            rep.segments_moved += 1;
        }
        rep.segments_archived = self
            .state
            .read()
            .sealed
            .iter()
            .filter(|s| s.path.parent() == Some(archive.as_path()))
            .count() as u64;
        Ok(rep)
    }

    fn move_to_archive(&self, seg: &Arc<SealedSegment>, archive: &Path) -> Result<u64> {
        let vfs = &*self.vfs;
        let first = seg.header.first_position;
        let seg_dir = seg.path.parent().unwrap_or(&self.dir).to_path_buf();
        let name = file_name(&seg.path)?;
        let idx_name = index_file_name(first);
        let bytes = map_file(vfs, &seg.path)?;
        // A file of that name in the archive is either this segment's copy left by a crash, or
        // another store's segment: that one must not be overwritten.
        if let Ok(there) = map_file(vfs, &archive.join(&name))
            && *there != *bytes
        {
            return Err(Error::InvalidArgument(format!(
                "{} already holds a different {name}: the archive directory holds another \
                 store's segments (two stores must not share an archive)",
                archive.display()
            )));
        }
        write_file_atomic(vfs, archive, &name, &bytes)?;
        let idx_path = index_path_of(&seg.path, first);
        let idx = map_file(vfs, &idx_path)?;
        write_file_atomic(vfs, archive, &idx_name, &idx)?;
        let moved = (bytes.len() + idx.len()) as u64;
        drop((bytes, idx));
        seg.pin_map()?;
        self.swap_sealed(
            &archive.join(&name),
            seg.header,
            seg.footer,
            &archive.join(&idx_name),
        )?;
        remove_file_durable(vfs, &seg_dir, &name)?;
        remove_file_durable(vfs, &seg_dir, &idx_name)?;
        Ok(moved)
    }
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::InvalidArgument(format!("file name of {}", p.display())))
}

impl Store {
    /// Moves the sealed segments that were sealed longer than `older_than` ago (oldest first,
    /// as a prefix of the log) to the archive directory (see
    /// [`StoreOptions::archive_dir`](crate::StoreOptions::archive_dir)), and returns what it
    /// did. Archived segments stay readable: every open, read, verify and tool finds them
    /// through the store's `archive.path` marker. Reads and appends go on meanwhile; a crash
    /// at any step leaves a valid store.
    ///
    /// Errors: [`Error::InvalidArgument`] when no archive directory is configured,
    /// [`Error::ReadOnly`], [`Error::Closed`], [`Error::Io`].
    pub fn archive_sealed(&self, older_than: Duration) -> Result<ArchiveReport> {
        self.inner.archive_sealed(older_than)
    }

    /// The archive directory of this store, if it has one (named by its marker, or configured).
    pub fn archive_dir(&self) -> Result<Option<PathBuf>> {
        self.inner.archive_dir()
    }
}
