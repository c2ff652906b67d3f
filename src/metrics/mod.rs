//! Metrics and health (feature `serve`): what the store, the bus, the subscriptions and the
//! sagas are doing, as Prometheus metrics and as an ok / degraded / failing health report.
//!
//! - [`Metrics`]: the registry. Counters and histograms the bus feeds as it works (it is the
//!   bus's [`crate::bus::BusObserver`]: publishes, deliveries per handler and event type,
//!   retries, parked events), and gauges computed when scraped from the public [`crate::Store`]
//!   API (events, streams, bytes on disk, segments, compression, last fsync), the dead-letter streams, the
//!   subscriptions' checkpoints (lag) and the sagas ([`SagaGauges`], a hook).
//! - [`Monitor`]: a store and its bus, watched: [`Monitor::scrape`] gives the Prometheus text,
//!   [`Monitor::health`] the [`Health`] report.
//! - [`export_metrics_every`]: writes a snapshot to a file or the log periodically
//!   (`EVENT_METRICS_EXPORT_INTERVAL`).
//!
//! ```
//! use std::sync::Arc;
//! use evlog::Store;
//! use evlog::bus::{BusConfig, EventBus};
//! use evlog::metrics::{HealthConfig, Metrics, Monitor, Status};
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(dir.path())?);
//! let metrics = Arc::new(Metrics::new());
//! let bus = EventBus::with_observer(store, BusConfig::default(), metrics.clone());
//! let monitor = Monitor::new(bus, metrics, HealthConfig::default());
//! assert_eq!(monitor.health().status, Status::Ok);
//! assert!(monitor.scrape().contains("evlog_store_events"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod disk;
mod export;
mod health;
mod json;
mod monitor;
mod recorder;
mod saga;

pub use disk::{DiskSpace, disk_space};
pub use export::{ExportTarget, export_metrics_every};
pub use health::{Check, Health, HealthConfig, Status};
pub use json::text_to_json;
pub use monitor::Monitor;
pub use recorder::Metrics;
pub use saga::{SagaCounts, SagaGauges};
