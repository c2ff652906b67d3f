//! Named limits. Every decoder checks lengths against these before allocating.

/// Longest stream id, in bytes of UTF-8. Stream ids name aggregates ("order-1234"); 1 KiB leaves room
/// for composite keys while keeping index keys small. Stored in a `u16` length field.
pub const MAX_STREAM_ID_BYTES: usize = 1024;

/// Longest event type name, in bytes of UTF-8 ("AIResultCompletedEvent"). Stored in a `u16` field.
pub const MAX_EVENT_TYPE_BYTES: usize = 256;

/// Largest event: payload plus encoded metadata, in bytes. 16 MiB keeps one event comfortably
/// inside one segment and bounds the memory a single decode can ask for.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Most events in one append (one batch frame). Bounds the per-frame tables a reader builds.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Largest frame body in bytes (all records of one append). A frame is written and checksummed
/// whole, so this bounds the buffer a writer or reader holds for one frame.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// Most user metadata entries on one event.
pub const MAX_METADATA_ENTRIES: usize = 256;

/// Longest metadata key, in bytes of UTF-8. Stored in a `u16` field.
pub const MAX_METADATA_KEY_BYTES: usize = 1024;

/// Default size at which the active segment is sealed and a new one started: 64 MiB keeps the
/// number of files small for stores of millions of events and bounds recovery work after a crash.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// Smallest configurable segment size (tests use small segments to exercise rolling).
pub const SEGMENT_BYTES_MIN: u64 = 4 << 10;

/// Largest configurable segment size. Offsets inside a segment are stored as `u32` in the index
/// files, so a segment plus one maximal frame must stay below 4 GiB.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;

/// Largest number of frames one segment may hold (bounds the index tables decoded from disk).
pub const MAX_SEGMENT_FRAMES: u64 = u32::MAX as u64;

/// Largest stream table a checkpoint may hold, in bytes (bounds the allocation on open).
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;
