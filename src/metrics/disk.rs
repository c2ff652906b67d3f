//! Free space of the file system a store lives on (`statvfs`), for the health check.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

/// Space of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes of the file system.
    pub total_bytes: u64,
    /// Bytes an unprivileged process can still write.
    pub available_bytes: u64,
}

impl DiskSpace {
    /// Available bytes over total bytes (1.0 when the total is unknown).
    pub fn available_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            return 1.0;
        }
        self.available_bytes as f64 / self.total_bytes as f64
    }
}

/// The space of the file system holding `path`.
pub fn disk_space(path: &Path) -> std::io::Result<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `st` points to writable
    // memory of the size of `statvfs`, which the call fills when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialized `st`.
    let st = unsafe { st.assume_init() };
    // The field types vary with the platform (u32 or u64): widen them all.
    #[allow(clippy::useless_conversion)]
    let (frsize, blocks, bavail) = (
        u64::from(st.f_frsize),
        u64::from(st.f_blocks),
        u64::from(st.f_bavail),
    );
    Ok(DiskSpace {
        total_bytes: blocks.saturating_mul(frsize),
        available_bytes: bavail.saturating_mul(frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_dir_has_a_size_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = disk_space(dir.path()).unwrap();
        assert!(d.total_bytes > 0 && d.available_bytes <= d.total_bytes);
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
