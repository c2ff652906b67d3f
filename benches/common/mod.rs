//! What several benches share. Included with `#[path = "common/mod.rs"] mod common;` (a bench is
//! its own crate).

use std::path::Path;

/// Drops the page cache (root: `/proc/sys/vm/drop_caches`); failing that, asks the kernel to
/// drop the cached pages of every file in `dirs` (`POSIX_FADV_DONTNEED`, after an fsync).
/// Returns how.
pub fn drop_page_cache(dirs: &[&Path]) -> &'static str {
    let _ = std::process::Command::new("sync").status();
    if std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok() {
        return "drop_caches";
    }
    for d in dirs {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let Ok(f) = std::fs::File::open(e.path()) else {
                continue;
            };
            if f.metadata().is_ok_and(|m| m.is_file()) {
                let _ = f.sync_all();
                use std::os::fd::AsRawFd;
                // SAFETY: a valid open descriptor; the call only drops clean cached pages.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }
    "posix_fadvise(DONTNEED) on every file"
}

/// Makes the next read of the stores in `dirs` cold: empties evlog's cache of decompressed
/// images (then gives it back its default budget) and drops the page cache. Returns how the
/// page cache was dropped.
pub fn make_cold(dirs: &[&Path]) -> &'static str {
    evlog::segment::set_image_cache_bytes(0);
    let how = drop_page_cache(dirs);
    evlog::segment::set_image_cache_bytes(evlog::segment::DEFAULT_IMAGE_CACHE_BYTES);
    how
}
