//! The operating system's file system.

#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{FileBytes, Vfs, VfsFile, VfsLock};

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl VfsFile for File {
    fn map(&self, len: u64) -> io::Result<FileBytes> {
        if self.metadata()?.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than the bytes to map",
            ));
        }
        if len == 0 {
            return Ok(FileBytes::Owned(Vec::new()));
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: used for the active segment only, mapped up to the end of the frames written
        // so far, which the writer never rewrites or truncates while the store is open (it
        // overwrites and cuts only the zeros after them; see `ActiveFile`).
        Ok(FileBytes::Mapped(unsafe {
            memmap2::MmapOptions::new().len(len).map(self)?
        }))
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

struct FileLock(File);

impl VfsLock for FileLock {}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Vfs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir)? {
            if let Some(n) = e?.file_name().to_str() {
                out.push(n.to_owned());
            }
        }
        Ok(out)
    }
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn VfsFile>> {
        Ok(Arc::new(
            OpenOptions::new().read(true).write(write).open(path)?,
        ))
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        Ok(Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
        ))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    /// Memory-maps a file.
    ///
    /// Mapped are: sealed, fsynced, immutable files (segments after their footer is durable,
    /// index files and the checkpoint, which are replaced only by rename), and the active
    /// segment up to its length at mapping time, whose bytes the writer never rewrites or
    /// truncates while the store is open (it only appends after them; torn tails are cut at
    /// open, before any reader). Repair and compaction replace files by rename, so a live map
    /// keeps the old inode.
    fn map(&self, path: &Path) -> io::Result<FileBytes> {
        let f = File::open(path)?;
        if f.metadata()?.len() == 0 {
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: the mapped bytes do not change while mapped (see above): no code in this
        // process writes to a mapped range or truncates a mapped file.
        Ok(FileBytes::Mapped(unsafe { memmap2::Mmap::map(&f)? }))
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn VfsLock>>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(FileLock(f)))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Tells the kernel that the pages of `map` may be taken back without being written out
/// (`MADV_FREE`): a pooled buffer's contents are never read before they are written again
/// (see `pages`). Advice only: refused, the pages stay as they are.
pub(super) fn lazy_free(map: &memmap2::MmapMut) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `MADV_FREE` may replace the contents of these pages with zeros at any time
        // until they are written again. The buffer is in no one's hands (it is being returned
        // to the pool), and whoever takes it from the pool writes every byte it reads.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::Free) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = map;
}
