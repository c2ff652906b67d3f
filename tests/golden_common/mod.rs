//! What the golden-file tests (tests/golden.rs, tests/golden_multi.rs) share: where the golden
//! stores are, copies of them to open read-write, and readers of their files.

#![allow(dead_code)] // each test binary uses a part

use std::fs;
use std::path::{Path, PathBuf};

use evlog::wire::segment::{FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter};
use evlog::{Direction, ReadFilter, RecordedEvent, Store};

/// The golden store `name` (a directory under `format/golden`).
pub fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("format/golden")
        .join(name)
}

/// Copies the golden store `name` into a temporary directory (open may write: a new
/// checkpoint on close, a cut tail, a rebuilt index).
pub fn copy_of(name: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for e in fs::read_dir(golden_dir(name)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), t.path().join(e.file_name())).unwrap();
    }
    t
}

/// The names of the segment files (`.seg`) in `dir`, sorted.
pub fn segment_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

/// Every event of `store`, in position order.
pub fn read_all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap()
}

/// Where a sealed segment file's frames end (its footer's `data_end`); `None` for a file
/// without a valid footer (the active segment).
pub fn sealed_data_end(data: &[u8]) -> Option<u64> {
    let len = data.len();
    if len < SEGMENT_HEADER_BYTES + FOOTER_BYTES {
        return None;
    }
    SegmentFooter::decode(&data[len - FOOTER_BYTES..])
        .ok()
        .filter(|f| f.data_end == (len - FOOTER_BYTES) as u64)
        .map(|f| f.data_end)
}
