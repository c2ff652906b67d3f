//! Snapshots of aggregates, so that loading a long stream does not replay every event.
//!
//! A snapshot is the serialized state of an [`Aggregate`] after one event of its stream, kept in
//! the `snapshots/` subdirectory of the store directory, one file per stream and version:
//! zstd-compressed, checksummed, written crash-safely (temp file, fsync, rename, directory
//! fsync). The byte layout is `format/FORMAT.md` § 20.
//!
//! [`SnapshotStore::load`] starts from the newest usable snapshot and applies only the later
//! events. Snapshots are a cache: one that is damaged, truncated, of another schema version, or
//! that does not deserialize is ignored (and reported in [`Loaded::ignored`]) and the state is
//! rebuilt from the events. [`SnapshotStore::load_and_snapshot`] also saves a snapshot every
//! [`SnapshotPolicy::interval_versions`] events, and [`SnapshotStore::prune`] applies the
//! retention.
//!
//! ```
//! use evlog::{EventData, ExpectedVersion, RecordedEvent, Store};
//! use evlog::snapshot::{Aggregate, SnapshotPolicy, SnapshotStore};
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Count(u64);
//! impl Aggregate for Count {
//!     const SCHEMA_VERSION: u32 = 1;
//!     fn apply(&mut self, _event: &RecordedEvent) { self.0 += 1; }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let events: Vec<_> = (0..25).map(|_| EventData::new("Tick", Vec::new())).collect();
//! store.append("clock", ExpectedVersion::NoStream, &events)?;
//!
//! let policy = SnapshotPolicy { interval_versions: 10, ..SnapshotPolicy::default() };
//! let snapshots = SnapshotStore::open(&store).with_policy(policy);
//! let first = snapshots.load_and_snapshot::<Count>(&store, "clock")?;
//! assert_eq!((first.state.0, first.events_applied, first.snapshot_saved), (25, 25, Some(24)));
//!
//! store.append("clock", ExpectedVersion::Exact(24), &[EventData::new("Tick", Vec::new())])?;
//! let second = snapshots.load::<Count>(&store, "clock")?;
//! assert_eq!((second.state.0, second.events_applied, second.snapshot_version), (26, 1, Some(24)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aggregate;
pub mod format;
mod name;
mod policy;
mod prune;
mod reason;
mod store;
mod time_travel;

pub use aggregate::{Aggregate, Loaded, decode_state, encode_state};
pub use format::{
    MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_COMPRESSED_BYTES, MAX_SNAPSHOT_FILE_BYTES,
    SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, SNAPSHOT_ZSTD_LEVEL, SnapshotHeader,
};
pub use name::{
    SNAPSHOT_DIR_NAME, SNAPSHOT_FILE_SUFFIX, TEMP_FILE_SUFFIX, parse_snapshot_file_name,
    snapshot_file_name,
};
pub use policy::{
    SNAPSHOT_INTERVAL_VERSIONS_DEFAULT, SNAPSHOT_INTERVAL_VERSIONS_ENV,
    SNAPSHOT_RETENTION_DAYS_DEFAULT, SNAPSHOT_RETENTION_DAYS_ENV, SnapshotPolicy,
};
pub use prune::PruneReport;
pub use reason::{IgnoredReason, IgnoredSnapshot};
pub use store::{Lookup, Snapshot, SnapshotEntry, SnapshotInfo, SnapshotStore};
pub use time_travel::At;
