//! Sagas (feature `bus`, on tokio): multi-step work that either finishes or is undone, kept as
//! events in the store and resumed after a crash. Built on the public [`crate::Store`] and
//! [`crate::bus`] API only.
//!
//! - [`SagaDefinition`]: a saga type, its ordered steps, each an async `execute` whose output
//!   (a serde type) is stored and handed to later steps ([`StepContext::output`]) and to the
//!   step's async `compensate`; per step a [`StepPolicy`]: retries with the bus's
//!   [`Backoff`](crate::bus::Backoff), and a timeout per attempt (a timeout is a failure).
//! - [`SagaManager`]: [`register`](SagaManager::register) gives a [`SagaHandle`] that
//!   [`start`](SagaHandle::start)s sagas from code or, with
//!   [`start_on`](SagaHandle::start_on), from a bus event and a correlation key; at most one
//!   saga per id, ever. [`resume`](SagaManager::resume) drives again every saga a crash left
//!   unsettled; [`needs_attention`](SagaManager::needs_attention) and
//!   [`retry`](SagaManager::retry) are the operator's; [`counts`](SagaManager::counts) is
//!   cheap, for metrics.
//! - Each saga is the stream `$saga-TYPE-ID` ([`record`] lists its records); every transition
//!   is appended at the exact version its driver last saw, so two managers never both advance
//!   one saga. Its history is its events: `evlog dump DIR --stream '$saga-TYPE-ID'`.
//!
//! A step that fails after its retries starts compensation: the completed steps are undone,
//! last first (the failed step is not: it did not complete). A compensation that fails after
//! its retries parks the saga as needs-attention until an operator retries it.
//!
//! **Steps must be idempotent**: a step whose completion was not recorded (a crash, or another
//! manager taking over) runs again, and so does a compensation. [`StepContext::idempotency_key`]
//! (`TYPE/ID/STEP`, the same in every run) is the key to pass to the services a step calls.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use evlog::Store;
//! use evlog::saga::{SagaDefinition, SagaManager, SagaStatus};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Transfer { from: String, to: String, amount: u64 }
//!
//! # let dir = tempfile::tempdir()?;
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let store = Arc::new(Store::open(dir.path())?);
//!     let ledger = Arc::new(Mutex::new(Vec::<String>::new()));
//!     let (l1, l2, l3) = (ledger.clone(), ledger.clone(), ledger.clone());
//!
//!     let transfer = SagaDefinition::<Transfer>::new("transfer")
//!         .step(
//!             "debit",
//!             move |ctx| {
//!                 let l = l1.clone();
//!                 async move {
//!                     let t = ctx.input();
//!                     l.lock().unwrap().push(format!("debit {} {}", t.from, t.amount));
//!                     Ok(format!("debit-{}", ctx.idempotency_key()))  // the step's output
//!                 }
//!             },
//!             move |_ctx, receipt: String| {
//!                 let l = l2.clone();
//!                 async move { l.lock().unwrap().push(format!("refund {receipt}")); Ok(()) }
//!             },
//!         )
//!         .step_without_compensation("credit", move |ctx| {
//!             let l = l3.clone();
//!             async move {
//!                 if ctx.input().to == "closed-account" {
//!                     return Err("the account is closed".into());
//!                 }
//!                 let receipt: String = ctx.output("debit")?;
//!                 l.lock().unwrap().push(format!("credit after {receipt}"));
//!                 Ok(())
//!             }
//!         })
//!         .with_retries(0, evlog::bus::Backoff {
//!             base: std::time::Duration::ZERO,
//!             cap: std::time::Duration::ZERO,
//!         });
//!
//!     let manager = SagaManager::new(store.clone());
//!     let transfers = manager.register(transfer)?;
//!     manager.resume().await?; // drives what a crash left unsettled (nothing here)
//!
//!     let ok = Transfer { from: "a".into(), to: "b".into(), amount: 5 };
//!     transfers.start("t-1", &ok).await?;
//!     assert_eq!(transfers.wait("t-1").await?, SagaStatus::Completed);
//!
//!     let bad = Transfer { from: "a".into(), to: "closed-account".into(), amount: 7 };
//!     transfers.start("t-2", &bad).await?;
//!     assert_eq!(transfers.wait("t-2").await?, SagaStatus::Compensated);
//!     assert!(transfers.start("t-2", &bad).await.is_err(), "one saga per id");
//!
//!     assert_eq!(*ledger.lock().unwrap(), [
//!         "debit a 5",
//!         "credit after debit-transfer/t-1/debit",
//!         "debit a 7",
//!         "refund debit-transfer/t-2/debit",
//!     ]);
//!     let c = manager.counts();
//!     assert_eq!((c.completed, c.compensated, c.active), (1, 1, 0));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod commit;
mod context;
mod definition;
mod driver;
mod error;
mod handle;
mod manager;
pub mod record;
mod route;
mod scan;
mod state;

pub use context::StepContext;
pub use definition::{SagaData, SagaDefinition, StepError, StepPolicy, StepResult};
pub use error::SagaError;
pub use handle::SagaHandle;
pub use manager::{ResumeReport, SagaCounts, SagaManager};
pub use record::{
    MANAGER_METADATA_KEY, SAGA_STREAM_PREFIX, SagaRecord, Started, StepRef, saga_stream,
};
pub use scan::SagaSummary;
pub use state::{SagaState, SagaStatus};
