//! Segments: scanning frames, sealed (mapped) and active files.

pub mod files;
pub mod scan;

pub use crate::io::FileBytes;
pub use files::{ActiveFile, SealedSegment, SegRef, SegmentIndex, map_file};
pub use scan::{ScanEnd, build_index, durable_frame_after, scan_frames};
