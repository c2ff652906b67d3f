//! # evlog — an embedded event store
//!
//! evlog keeps an event-sourced application's events in one local directory: segmented,
//! checksummed append-only log files, a per-stream index, optimistic-versioned appends and
//! fast replay. No server to run.
//!
//! ## Quick start
//! ```
//! use evlog::{Direction, EventData, ExpectedVersion, Metadata, ReadFilter, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//!
//! // Append two events to a new stream; the append fails if the stream already exists.
//! let placed = EventData::new("OrderPlaced", br#"{"total":12}"#.to_vec())
//!     .with_metadata(Metadata::new().with("user", "ada"));
//! let paid = EventData::new("OrderPaid", br#"{"amount":12}"#.to_vec());
//! let r = store.append("order-1", ExpectedVersion::NoStream, &[placed, paid])?;
//!
//! // The next append must name the version it saw: optimistic concurrency.
//! let shipped = EventData::new("OrderShipped", b"{}".to_vec());
//! store.append("order-1", ExpectedVersion::Exact(r.next_expected_version), &[shipped])?;
//!
//! // Read the stream back, and every event of one type across streams.
//! let history: Vec<_> = store
//!     .read_stream("order-1", 0, Direction::Forward, usize::MAX)
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(history.len(), 3);
//! let paid_events = store
//!     .read_all(0, Direction::Forward, ReadFilter::all().event_types(["OrderPaid"]))
//!     .count();
//! assert_eq!(paid_events, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layers
//! `wire` (byte formats) → `io` (files, fsync) → `segment` (sealed and active files) →
//! `index` (active index; sealed indexes are files) → `store` (the public [`Store`]).
//! The on-disk format is specified in `format/FORMAT.md`. Above the store: `subscription`
//! (catch-up subscriptions with durable checkpoints) and, with the feature `bus`, `bus` (the
//! event bus on tokio: handlers, retries with backoff, a persisted dead-letter queue; its module
//! documentation has a runnable example: a publish, a handler, a failure parked and redriven)
//! and `saga` (sagas with compensation, persisted as events and resumed after a crash).

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "bus")]
pub mod bus;
pub mod error;
pub mod event;
pub mod export;
#[cfg(feature = "serve")]
pub mod http;
pub mod index;
pub mod inspect;
pub mod io;
#[cfg(feature = "serve")]
pub mod metrics;
#[cfg(feature = "bus")]
pub mod saga;
pub mod segment;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod subscription;
pub mod wire;
pub mod workload;

pub use error::{Error, Result};
pub use event::{
    AppendResult, Direction, EventData, ExpectedVersion, Extra, ExtraIter, Metadata, ReadFilter,
    RecordedEvent,
};
pub use snapshot::{Aggregate, Loaded, SnapshotPolicy, SnapshotStore};
pub use store::{
    AllEvents, AppendDurable, ArchiveReport, CompactReport, CompressReport, Durability, EventRef,
    Problem, ReplayEnd, Store, StoreOptions, StreamEvents, VerifyReport, verify_dir,
};
pub use uuid::Uuid;
pub use wire::record::MetaEntries;
