//! What several benches share. Included with `#[path = "common/mod.rs"] mod common;` (a bench is
//! its own crate; each uses part of this).
#![allow(dead_code)]

use std::path::Path;

use evlog::wire::zseg::{ZsegLayout, decode_zseg};

/// The compressed segment files (`.zseg`) in `dir`, read whole, each with its checked layout.
pub fn compressed_segments(dir: &Path) -> Vec<(Vec<u8>, ZsegLayout)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "zseg"))
        .map(|p| {
            let z = std::fs::read(p).unwrap();
            let layout = decode_zseg(&z).unwrap();
            (z, layout)
        })
        .collect()
}

/// zstd alone over every block of `segs`, into `out` (at least a block long, reused: it stays
/// in the processor's cache); no checksum, no event walked. Returns the bytes decompressed.
pub fn zstd_over_blocks(
    segs: &[(Vec<u8>, ZsegLayout)],
    d: &mut zstd::bulk::Decompressor<'_>,
    out: &mut [u8],
) -> usize {
    let mut n = 0;
    for (z, l) in segs {
        for b in &l.blocks {
            let bytes = &z[b.offset as usize..][..b.compressed_len as usize];
            let got = d.decompress_to_buffer(bytes, &mut out[..b.raw_len as usize]);
            assert_eq!(got.unwrap(), b.raw_len as usize);
            n += b.raw_len as usize;
        }
    }
    n
}

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
