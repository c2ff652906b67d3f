//! Catch-up subscriptions (layer 6, no async runtime): read the log's history from a position,
//! then follow new appends, with durable checkpoints kept in the store itself.
//!
//! - [`Subscription`]: delivery in position order, filters by event type and stream prefix, a
//!   bounded read per poll, named subscriptions resuming from their checkpoint (at least once;
//!   exactly once through [`Subscription::commit_with`]).
//! - [`checkpoint`]: the `$checkpoint-NAME` system streams.
//! - [`rebuild`]: a read model rebuilt from zero: a type, a stream, a prefix or a time range
//!   replayed to a handler in batches with progress, into a fresh checkpoint.

mod catch_up;
pub mod checkpoint;
pub mod rebuild;

pub use catch_up::{Clock, Polled, Start, Subscription, SubscriptionOptions};
