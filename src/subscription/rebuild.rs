//! Replays for rebuilding a read model (the original design's `EventReplayService`): the events
//! of a type, a stream, a prefix or a time range, from the start of the log to its head, handed
//! to a handler in batches with progress, into a fresh checkpoint.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::error::Result;
use crate::event::{ExpectedVersion, RecordedEvent};
use crate::store::Store;
use crate::subscription::checkpoint::checkpoint_stream;
use crate::subscription::{Start, Subscription, SubscriptionOptions};

/// How far a [`rebuild`] has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events handed to the handler so far.
    pub events: u64,
    /// Every event before this position was examined.
    pub next_position: u64,
    /// The position after the log's head when the rebuild started: where it stops.
    pub end_position: u64,
}

/// What a [`rebuild`] replays and how.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The events (type, stream prefix; `start` may name one stream's version), as for a
    /// subscription; its checkpoint interval applies to the rebuild's checkpoint.
    pub subscription: SubscriptionOptions,
    /// Only events appended at or after this time (µs since the Unix epoch).
    pub since_us: Option<u64>,
    /// Only events appended at or before this time.
    pub until_us: Option<u64>,
    /// Events per call of the handler (at least 1).
    pub batch: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            subscription: SubscriptionOptions::default(),
            since_us: None,
            until_us: None,
            batch: 1_000,
        }
    }
}

/// Rebuilds the read model of the named subscription `name` from zero: its checkpoint stream
/// (`$checkpoint-NAME`) is cleared (soft-deleted: a later start begins from
/// `opts.subscription.start`), then every event that passes the options, from that start up to
/// the head as it was when the rebuild began, is handed to `handle` in batches of
/// `opts.batch`, in position order, with `progress` called after each batch. The checkpoint
/// moves as batches are handled, so a rebuild stopped by an error or a crash resumes where it
/// was when run again with the subscription itself ([`Subscription::named`]), and the live
/// subscription of that name takes over from where the rebuild ended. Returns the events
/// handled.
///
/// ```
/// use evlog::{EventData, ExpectedVersion, ReadFilter, Store};
/// use evlog::subscription::rebuild::{RebuildOptions, rebuild};
/// use evlog::subscription::SubscriptionOptions;
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// for i in 0..10 {
///     let ty = if i % 2 == 0 { "PriceFeedUpdated" } else { "AuditLogCreated" };
///     store.append("feed-1", ExpectedVersion::Any, &[EventData::new(ty, b"{}".to_vec())])?;
/// }
/// let opts = RebuildOptions {
///     subscription: SubscriptionOptions::default()
///         .filter(ReadFilter::all().event_types(["PriceFeedUpdated"])),
///     batch: 2,
///     ..RebuildOptions::default()
/// };
/// let mut prices = 0;
/// let mut calls = 0;
/// let n = rebuild(&store, "latest-price", &opts, |_| calls += 1, |batch| {
///     prices += batch.len();
///     Ok(())
/// })?;
/// assert_eq!((n, prices, calls), (5, 5, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Errors: whatever `handle` returns (the events of the failed batch are not checkpointed),
/// and the store's errors.
pub fn rebuild(
    store: &Store,
    name: &str,
    opts: &RebuildOptions,
    mut progress: impl FnMut(Progress),
    mut handle: impl FnMut(&[RecordedEvent]) -> Result<()>,
) -> Result<u64> {
    let stream = checkpoint_stream(name);
    if store.stream_version(&stream).is_some() {
        store.delete_stream(&stream, ExpectedVersion::Any)?;
    }
    let end = store.head_position().map_or(0, |h| h + 1);
    let mut sub = Subscription::named(store, name, opts.subscription.clone())?;
    if let Start::End = opts.subscription.start {
        // A rebuild replays what is stored: nothing, from the end.
        sub.checkpoint()?;
        return Ok(0);
    }
    let batch_len = opts.batch.max(1);
    let mut batch = Vec::with_capacity(batch_len);
    let mut events = 0;
    while sub.next_position() < end {
        batch.clear();
        sub.poll_before(batch_len, Duration::ZERO, end, |e| {
            if opts.since_us.is_none_or(|t| e.timestamp_us >= t)
                && opts.until_us.is_none_or(|t| e.timestamp_us <= t)
            {
                batch.push(e.to_owned_event());
            }
            ControlFlow::Continue(())
        })?;
        if !batch.is_empty() {
            handle(&batch)?;
            events += batch.len() as u64;
        }
        progress(Progress {
            events,
            next_position: sub.next_position(),
            end_position: end,
        });
    }
    sub.stop()?;
    Ok(events)
}
