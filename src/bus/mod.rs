//! The event bus (feature `bus`, on tokio): publish events, run handlers over them with
//! retries, backoff and a persisted dead-letter queue. Built on the public [`crate::Store`] and
//! [`crate::subscription`] API only; everything it persists is events of system streams.
//!
//! - [`EventBus`]: `publish` / `publish_event` (return once durable), `subscribe::<E>(name, f)`
//!   for a typed [`DomainEvent`], `subscribe_all`, `subscribe_blocking`, `subscribe_ref` (a
//!   synchronous handler of borrowed events, for read models), `wait_for`, `shutdown`.
//! - Each handler is a named subscription (checkpoint `$checkpoint-NAME`) in a tokio task,
//!   delivering at least once, each stream's events in order: one event at a time in position
//!   order, or several streams of a polled batch at once ([`BusConfig::concurrency`]). It
//!   returns [`Outcome::Handled`], [`Outcome::Skip`], [`Outcome::RetryLater`] or an error; a
//!   panic is caught and counted as a failure.
//! - Failures are retried after [`Backoff`] delays (exponential, jitter, cap) from
//!   [`BusConfig`] (`EVENT_BUS_MAX_RETRIES`, `EVENT_BUS_RETRY_DELAY_MS`,
//!   `EVENT_BUS_DEAD_LETTER_ENABLED`). While an event waits for its retry, the later events of
//!   its stream wait behind it and the other streams go on (at most 4,096 events wait so).
//!   Then the event is parked in `$dlq-NAME` (with the handler's checkpoint, in one append);
//!   later events of its stream are parked behind it, other streams go on. [`DeadLetters`]:
//!   list, count, redrive (in order), discard, history.
//! - The checkpoint is written every [`BusConfig::checkpoint_every_events`] events or
//!   [`BusConfig::checkpoint_every_ms`], never past an event that is neither handled nor
//!   parked, and it lists the events after that one which are not done yet (waiting for a
//!   retry): after a crash, the events handled since it and those it lists are delivered again
//!   (at least once), not the other streams' events handled while one waited.
//! - **Exactly-once outputs**: events a handler emits with [`HandlerContext::emit`] are stored
//!   with the checkpoint that marks the handled event done (a redriven event's, with its
//!   `Redriven` record), in one atomic append: after any crash each handled event's outputs
//!   are stored once (none lost, none twice). Outputs the store refuses (a stale expected
//!   version) fail the attempt, which is retried like any failure.
//! - [`HandlerContext::publish`] (an append at once, at least once) and `emit` set the
//!   causation id (the handled event) and the correlation id of what a handler writes.
//! - `tracing`: a `bus.deliver` span per delivery (handler, stream, event type, position,
//!   attempt), a warning per failed delivery, an error when events are parked.
//! - [`BusObserver`] ([`EventBus::with_observer`]): publishes, deliveries (time, result,
//!   retries) and parked events reported to a metrics collector (`evlog::metrics`).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use evlog::{ExpectedVersion, Store};
//! use evlog::bus::{BusConfig, DomainEvent, EventBus, Outcome};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct OrderPlaced { order: String, total: u64 }
//! impl DomainEvent for OrderPlaced {
//!     const EVENT_TYPE: &'static str = "OrderPlaced";
//! }
//!
//! # let dir = tempfile::tempdir()?;
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let store = Arc::new(Store::open(dir.path())?);
//!     let bus = EventBus::new(store, BusConfig::default().max_retries(1).retry_delay_ms(10));
//!
//!     // A mailer that fails while the mail server is down.
//!     let server_up = Arc::new(AtomicBool::new(false));
//!     let up = server_up.clone();
//!     bus.subscribe("mailer", move |_ctx, e: OrderPlaced| {
//!         let up = up.load(Ordering::SeqCst);
//!         async move {
//!             if !up {
//!                 return Err(format!("mail server down for {}", e.order).into());
//!             }
//!             Ok(Outcome::Handled)
//!         }
//!     })?;
//!
//!     let placed = OrderPlaced { order: "o-1".into(), total: 12 };
//!     let r = bus.publish_event("order-1", ExpectedVersion::NoStream, &placed).await?;
//!     bus.wait_for("mailer", r.last_position).await?;
//!
//!     // Two deliveries failed: the event is parked, with the reason.
//!     let dlq = bus.dead_letters("mailer");
//!     let parked = dlq.list()?;
//!     assert_eq!((parked.len(), parked[0].attempts), (1, 2));
//!     assert!(parked[0].last_error.contains("mail server down for o-1"));
//!
//!     // The server is back: redrive it; the handler gets it again.
//!     server_up.store(true, Ordering::SeqCst);
//!     dlq.redrive_all("ops@example.com")?;
//!     while dlq.count()? > 0 {
//!         tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//!     }
//!     assert_eq!(bus.stats("mailer").unwrap().redriven, 1);
//!     bus.shutdown().await?;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod config;
mod context;
pub mod dead_letter;
mod dead_letters;
pub(crate) mod delivery;
mod error;
pub(crate) mod event;
mod event_bus;
mod handler;
mod lanes;
mod observer;
mod runner;
mod stats;

pub use backoff::Backoff;
pub use config::{
    BusConfig, ConfigError, ENV_DEAD_LETTER_ENABLED, ENV_MAX_RETRIES, ENV_MAX_RETRY_DELAY_MS,
    ENV_RETRY_DELAY_MS, MAX_BATCH_EVENTS,
};
pub use context::HandlerContext;
pub use dead_letter::{
    DeadLetter, DeadLetterRecord, ParkReason, RedriveTarget, dead_letter_stream,
};
pub use dead_letters::DeadLetters;
#[cfg(feature = "serve")]
pub(crate) use dead_letters::catch_up as catch_up_dead_letters;
pub use error::BusError;
pub use event::DomainEvent;
pub use event_bus::EventBus;
pub use handler::{HandlerError, HandlerResult, Outcome};
pub use observer::{Attempt, BusObserver, HandlerObserver};
pub use stats::HandlerStats;
