//! Compression of sealed segments: each `.seg` file is replaced by a `.zseg` file holding the
//! same bytes in zstd blocks (format: `src/wire/zseg.rs`, `format/FORMAT.md` §22).
//!
//! Replacing a segment, crash-safely and while reads and appends go on:
//! 1. check the sealed segment against its footer checksum, compress it, and check that the
//!    result decompresses to the same bytes;
//! 2. write `NNN.zseg.tmp`, fsync it, rename it to `NNN.zseg`, fsync the directory;
//! 3. map the old `.seg` file in this process (readers that hold it keep reading the map), and
//!    swap the segment in the store's list for one read from the `.zseg` file;
//! 4. remove `NNN.seg`, fsync the directory.
//!
//! A crash before the rename leaves a `.tmp` file that open removes. A crash after it leaves
//! both files: open uses the `.seg` file and removes the `.zseg` one, to be compressed again.
//! The `.idx` file is unchanged: its offsets are offsets in the image, which is the `.seg` file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::{remove_file_durable, write_file_atomic};
use crate::segment::{SealedSegment, SegmentIndex, map_file};
use crate::store::{Inner, Store};
use crate::wire::segment::{SegmentFooter, SegmentHeader, segment_file_name};
use crate::wire::zseg::{compress_image, decompress_image, zseg_file_name};

/// What [`Store::compress_sealed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressReport {
    /// Segments compressed.
    pub segments: u64,
    /// Their size before, in bytes (the `.seg` files).
    pub bytes_before: u64,
    /// Their size after, in bytes (the `.zseg` files).
    pub bytes_after: u64,
}

impl CompressReport {
    /// Bytes reclaimed on disk.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

impl Inner {
    /// Replaces, in the store's list, the sealed segment that starts at `header`'s first
    /// position by the one stored at `path` with its index at `idx_path` (after the files were
    /// written, compressed, compacted or moved). Readers holding the old one keep it.
    pub(crate) fn swap_sealed(
        &self,
        path: &Path,
        header: SegmentHeader,
        footer: SegmentFooter,
        idx_path: &Path,
    ) -> Result<()> {
        let vfs = &*self.vfs;
        let index = SegmentIndex::new(
            self.vfs.clone(),
            idx_path.to_path_buf(),
            map_file(vfs, idx_path)?,
        )?;
        let replacement = Arc::new(SealedSegment::new(
            self.vfs.clone(),
            path.to_path_buf(),
            header,
            footer,
            index,
        ));
        let mut st = self.state.write();
        if let Some(slot) = st
            .sealed
            .iter_mut()
            .find(|s| s.header.first_position == header.first_position)
        {
            *slot = replacement;
        }
        Ok(())
    }

    /// Compresses the sealed segments not compressed yet, oldest first, leaving out the
    /// `keep_newest` most recent ones.
    pub(crate) fn compress_sealed(&self, keep_newest: usize) -> Result<CompressReport> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let _one_at_a_time = self.compress_lock.lock();
        let todo: Vec<Arc<SealedSegment>> = {
            let st = self.state.read();
            let n = st.sealed.len().saturating_sub(keep_newest);
            st.sealed[..n]
                .iter()
                .filter(|s| !s.is_compressed())
                .cloned()
                .collect()
        };
        let mut rep = CompressReport::default();
        for seg in todo {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let (before, after) = self.compress_one(&seg)?;
            rep.segments += 1;
            rep.bytes_before += before;
            rep.bytes_after += after;
        }
        Ok(rep)
    }

    fn compress_one(&self, seg: &Arc<SealedSegment>) -> Result<(u64, u64)> {
        let vfs = &*self.vfs;
        let first = seg.header.first_position;
        let mut image = {
            let data = seg.data()?;
            let crc = crc32fast::hash(&data);
            if crc != seg.footer.data_crc {
                return Err(Error::Corrupted {
                    file: seg.path.clone(),
                    offset: seg.footer.data_end + 40,
                    what: "sealed segment does not match its footer checksum; not compressed",
                    expected: seg.footer.data_crc.into(),
                    found: crc.into(),
                });
            }
            let mut v = Vec::with_capacity(data.len() + 64);
            v.extend_from_slice(&data);
            v
        };
        image.extend_from_slice(&seg.footer.encode());
        let z = compress_image(&image).map_err(Error::io("compress", &seg.path))?;
        if decompress_image(&z).ok().as_deref() != Some(&image[..]) {
            return Err(Error::Corrupted {
                file: seg.path.clone(),
                offset: 0,
                what: "compressed segment did not decompress to the segment; not replaced",
                expected: image.len() as u64,
                found: 0,
            });
        }
        // The segment's own directory: the store's, or the archive.
        let seg_dir = seg.path.parent().unwrap_or(&self.dir).to_path_buf();
        let zname = zseg_file_name(first);
        write_file_atomic(vfs, &seg_dir, &zname, &z)?;
        seg.pin_map()?;
        self.swap_sealed(
            &seg_dir.join(&zname),
            seg.header,
            seg.footer,
            &crate::store::recover::index_path_of(&seg.path, first),
        )?;
        remove_file_durable(vfs, &seg_dir, &segment_file_name(first))?;
        Ok((image.len() as u64, z.len() as u64))
    }
}

impl Store {
    /// Compresses every sealed segment that is not compressed yet, now, and returns what it
    /// did. Reads and appends go on meanwhile; a crash at any step leaves a valid store.
    /// (With [`StoreOptions::compress_sealed`](crate::StoreOptions::compress_sealed), a
    /// background thread does the same after each roll, for all but the newest sealed
    /// segment.)
    ///
    /// Errors: [`Error::ReadOnly`], [`Error::Closed`], [`Error::Io`], and
    /// [`Error::Corrupted`] for a segment that fails its footer checksum (it is left as it is).
    pub fn compress_sealed(&self) -> Result<CompressReport> {
        self.inner.compress_sealed(0)
    }

    /// Sealed segments, and how many of them are compressed.
    pub fn sealed_segments(&self) -> (usize, usize) {
        let st = self.inner.state.read();
        let compressed = st.sealed.iter().filter(|s| s.is_compressed()).count();
        (st.sealed.len(), compressed)
    }
}

/// The background compressor: woken after each roll (and every `idle`), it compresses all
/// sealed segments but the newest. Errors are kept for [`Store::compress_sealed`] to report
/// again; the store goes on without compressing.
pub(crate) fn spawn_compressor(inner: &Arc<Inner>, idle: Duration) -> std::thread::JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("evlog-compress".into())
        .spawn(move || {
            loop {
                std::thread::park_timeout(idle);
                let Some(inner) = weak.upgrade() else { return };
                if inner.closed.load(Ordering::Acquire) {
                    return;
                }
                let _ = inner.compress_sealed(1);
            }
        })
        .expect("spawn the compressor thread")
}

impl Store {
    /// Seals the active segment now (if it holds any event) and starts the next one, as when it
    /// fills up: everything appended so far is then in sealed segments, which
    /// [`Store::compress_sealed`] and [`Store::archive_sealed`] can act on. Returns whether a
    /// segment was sealed.
    ///
    /// Errors: [`Error::ReadOnly`], [`Error::Closed`], [`Error::Poisoned`], [`Error::Io`] (which
    /// poisons the store, as a failed roll does).
    pub fn seal_active(&self) -> Result<bool> {
        let inner = &self.inner;
        let mut guard = inner.writer.lock();
        let w = match guard.as_mut() {
            Some(w) => w,
            None if inner.read_only => return Err(Error::ReadOnly),
            None => return Err(Error::Closed),
        };
        if inner.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if w.len <= crate::wire::segment::SEGMENT_HEADER_BYTES as u64 {
            return Ok(false);
        }
        inner.roll(w).inspect_err(|_| inner.poison())?;
        Ok(true)
    }
}
