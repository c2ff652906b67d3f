//! The file layer. Every file operation of the store goes through a [`Vfs`]: [`RealFs`] (the
//! operating system) in production, or the fault-injecting in-memory file system of
//! `fault` in tests (feature `fault-injection`), which simulates power loss, I/O errors and a
//! full disk. This is the only layer that calls fsync; files are created, replaced and removed
//! crash-safely here.

#[cfg(feature = "fault-injection")]
pub mod fault;
mod pages;
mod real;

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
pub use pages::{PageBuf, reusable_pages};
pub use real::RealFs;

/// An open file.
#[allow(clippy::len_without_is_empty)]
pub trait VfsFile: Send + Sync {
    /// Reads at `offset` into `buf`; returns the bytes read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// A read-only map of the first `len` bytes of the file as it is now, through this handle
    /// (so of this file even if its path has been renamed over since). `len` must cover only
    /// bytes that are never rewritten or truncated while the map lives; a file shorter than
    /// `len` is an error.
    fn map(&self, len: u64) -> io::Result<FileBytes>;
}

/// An exclusive lock on a store directory, released when dropped.
pub trait VfsLock: Send + Sync {}

/// A file system.
pub trait Vfs: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// True when `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file, for reading and, with `write`, writing.
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn VfsFile>>;
    /// Creates a file (truncating an existing one), open for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The whole content of an immutable file (memory-mapped by [`RealFs`]).
    fn map(&self, path: &Path) -> io::Result<FileBytes>;
    /// Takes the exclusive lock `path`; `Ok(None)` when another holder has it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn VfsLock>>>;
}

/// The bytes of an immutable file: a memory map, or bytes held in memory.
pub enum FileBytes {
    /// A read-only memory map of a sealed, immutable file.
    Mapped(memmap2::Mmap),
    /// Bytes in memory.
    Owned(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

/// The operating system's file system, shared.
pub fn real_fs() -> Arc<dyn Vfs> {
    Arc::new(RealFs)
}

/// Flushes a directory's entries (file creations, renames, removals) to disk.
pub fn fsync_dir(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    vfs.sync_dir(dir).map_err(Error::io("fsync directory", dir))
}

/// Flushes a file's data to disk.
pub fn fsync_data(file: &dyn VfsFile, path: &Path) -> Result<()> {
    file.sync_data().map_err(Error::io("fsync", path))
}

/// Replaces `dir/name` with `bytes` crash-safely: write `name.tmp`, fsync it, rename it over
/// `name`, fsync the directory. After a crash the file is either the old or the new one.
pub fn write_file_atomic(vfs: &dyn Vfs, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    {
        let f = vfs.create(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all_at(bytes, 0).map_err(Error::io("write", &tmp))?;
        fsync_data(&*f, &tmp)?;
    }
    vfs.rename(&tmp, &dst).map_err(Error::io("rename", &tmp))?;
    fsync_dir(vfs, dir)
}

/// Removes a file and makes the removal durable. A missing file is not an error.
pub fn remove_file_durable(vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(name);
    match vfs.remove(&p) {
        Ok(()) => fsync_dir(vfs, dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &p)(e)),
    }
}

/// Reads a whole file, or `None` if it does not exist.
pub fn read_optional(vfs: &dyn Vfs, path: &Path) -> Result<Option<Vec<u8>>> {
    let f = match vfs.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path)(e)),
    };
    let len = f.len().map_err(Error::io("stat", path))?;
    read_at(&*f, path, 0, len as usize).map(Some)
}

/// Reads a whole file.
pub fn read_file(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>> {
    read_optional(vfs, path)?.ok_or_else(|| {
        Error::io("open", path)(io::Error::new(io::ErrorKind::NotFound, "no such file"))
    })
}

/// Reads `len` bytes at `offset` of `file` (fewer at end of file).
pub fn read_at(file: &dyn VfsFile, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    read_into(file, path, offset, len, &mut buf)?;
    Ok(buf)
}

/// Reads into `buf` (resized to `len`) at `offset`; returns how many bytes were read.
pub fn read_into(
    file: &dyn VfsFile,
    path: &Path,
    offset: u64,
    len: usize,
    buf: &mut Vec<u8>,
) -> Result<usize> {
    buf.resize(len, 0);
    let got = read_into_slice(file, path, offset, buf)?;
    buf.truncate(got);
    Ok(got)
}

/// Reads into the whole of `buf` at `offset`; returns how many bytes were read (fewer at end
/// of file).
pub fn read_into_slice(
    file: &dyn VfsFile,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path)(e)),
        }
    }
    Ok(got)
}

/// Bytes of a [`zeroed_pages`] buffer populated when it is mapped, at most: a damaged or
/// hostile header that claims a larger size (up to the 1 GiB limit of a segment) costs memory
/// only as far as its contents are really written, as with a growing `Vec`.
pub const POPULATE_BYTES_MAX: usize = 64 << 20;

/// `len` bytes of zeroed anonymous memory for a large buffer that is filled once, its first
/// [`POPULATE_BYTES_MAX`] bytes populated by one call (`MADV_POPULATE_WRITE`, Linux 5.14 and
/// later; elsewhere the pages come as they are written) instead of by a page fault each 4 KiB
/// as the buffer is written: decompressing a 64 MiB image into fresh memory otherwise spends
/// about a third of its time in page faults. Nothing is zeroed twice (the kernel's pages are
/// zero; a `Vec` would be zeroed again or be written through `unsafe`). Huge pages were
/// measured too: fewer faults, but the kernel's compaction for them stalled some reads for
/// twice as long.
pub fn zeroed_pages(len: usize) -> io::Result<memmap2::MmapMut> {
    let map = memmap2::MmapMut::map_anon(len.max(1))?;
    #[cfg(target_os = "linux")]
    {
        // Advice only: refused by an older kernel, the pages are faulted in as written.
        let _ = map.advise_range(
            memmap2::Advice::PopulateWrite,
            0,
            len.min(POPULATE_BYTES_MAX),
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_pages_are_zero_and_writable_past_the_populated_part() {
        for len in [0, 1, 4096 * 3 + 5, POPULATE_BYTES_MAX + 4096 + 7] {
            let mut m = zeroed_pages(len).unwrap();
            assert!(m.len() >= len);
            let end = len.saturating_sub(1);
            assert!([0, len / 2, end].iter().all(|&i| len == 0 || m[i] == 0));
            if len > 0 {
                m[end] = 7;
                assert_eq!(m[end], 7);
            }
        }
    }
}
