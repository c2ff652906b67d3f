//! Segments: scanning frames, sealed (mapped) and active files.

pub mod files;
pub mod scan;

pub use crate::io::FileBytes;
pub use files::{
    ActiveFile, DEFAULT_IMAGE_CACHE_BYTES, DEFAULT_MAP_CACHE_MAPS, FrameReader, IndexBytes,
    SealedSegment, SegBytes, SegRef, SegmentIndex, image_cache_bytes, index_checks, map_cache_maps,
    map_file, read_ahead_threads, read_zseg_image, set_image_cache_bytes, set_map_cache_maps,
};
pub(crate) use files::{count_read_ahead_thread, points_past_data, prefetch_frame, sealed_frame};
pub use scan::{ScanEnd, build_index, durable_frame_after, scan_frames};
