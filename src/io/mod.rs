//! The file layer: the only place that calls fsync, and where files are created, replaced and
//! removed crash-safely.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Flushes a directory's entries (file creations, renames, removals) to disk.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(Error::io("open directory", dir))?;
    d.sync_all().map_err(Error::io("fsync directory", dir))
}

/// Flushes a file's data to disk.
pub fn fsync_data(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(Error::io("fsync", path))
}

/// Replaces `dir/name` with `bytes` crash-safely: write `name.tmp`, fsync it, rename it over
/// `name`, fsync the directory. After a crash the file is either the old or the new one.
pub fn write_file_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io("create", &tmp))?;
        f.write_all(bytes).map_err(Error::io("write", &tmp))?;
        fsync_data(&f, &tmp)?;
    }
    fs::rename(&tmp, &dst).map_err(Error::io("rename", &tmp))?;
    fsync_dir(dir)
}

/// Removes a file and makes the removal durable. A missing file is not an error.
pub fn remove_file_durable(dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(name);
    match fs::remove_file(&p) {
        Ok(()) => fsync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &p)(e)),
    }
}

/// Reads a whole file, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Reads `len` bytes at `offset` of `file` (fewer at end of file).
pub fn read_at(file: &File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    read_into(file, path, offset, len, &mut buf)?;
    Ok(buf)
}

/// Reads into `buf` (resized to `len`) at `offset`; returns how many bytes were read.
pub fn read_into(
    file: &File,
    path: &Path,
    offset: u64,
    len: usize,
    buf: &mut Vec<u8>,
) -> Result<usize> {
    use std::os::unix::fs::FileExt;
    buf.resize(len, 0);
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path)(e)),
        }
    }
    buf.truncate(got);
    Ok(got)
}
