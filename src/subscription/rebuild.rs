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
    /// subscription; its checkpoint interval applies to the rebuild's checkpoint, counted in
    /// events read and checked after each batch the handler returned `Ok` for.
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
/// `opts.batch`, in position order, with `progress` called after each batch. Returns the
/// events handled.
///
/// The checkpoint only ever covers events `handle` returned `Ok` for (and those the time range
/// left out): it is written after a handled batch when the interval of `opts.subscription` is
/// due (after a crash, the events handled since that write are delivered again), when `handle`
/// returns an error (at the failed batch's first position), and at the end. The subscription
/// of that name ([`Subscription::named`]) resumes from it: after an error, with the failed
/// batch, whole, at least once, and nothing skipped; after the end, with what was appended
/// since the rebuild began. It resumes without `since_us`/`until_us` (a subscription has no
/// time range); running `rebuild` again starts over from zero.
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
/// Errors: whatever `handle` returns, after the checkpoint of the batches before it was
/// written (if that write fails too, `handle`'s error is the one returned, and the checkpoint
/// stays at its last write, which is before the failed batch as well); the store's errors
/// (the checkpoint then stays at its last write, which covers only handled batches).
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
    // The subscription only reads: a poll checkpoints what it read, before `handle` has run on
    // it. The rebuild applies the interval itself, once a batch is handled.
    let policy = &opts.subscription;
    let mut reader = policy.clone();
    reader.checkpoint_every_events = u64::MAX;
    reader.checkpoint_every = Duration::MAX;
    let mut sub = Subscription::named(store, name, reader)?;
    if let Start::End = opts.subscription.start {
        // A rebuild replays what is stored: nothing, from the end.
        sub.checkpoint()?;
        return Ok(0);
    }
    let batch_len = opts.batch.max(1);
    let mut batch = Vec::with_capacity(batch_len);
    let mut events = 0;
    // Events read since the last checkpoint, and its time, as a subscription counts them.
    let mut read_since = 0;
    let mut checkpointed_at = (policy.clock)();
    while sub.next_position() < end {
        let first = sub.next_position();
        batch.clear();
        let polled = sub.poll_before(batch_len, Duration::ZERO, end, |e| {
            if opts.since_us.is_none_or(|t| e.timestamp_us >= t)
                && opts.until_us.is_none_or(|t| e.timestamp_us <= t)
            {
                batch.push(e.to_owned_event());
            }
            ControlFlow::Continue(())
        })?;
        if !batch.is_empty() {
            if let Err(e) = handle(&batch) {
                // Everything before the failed batch was handled: store that much. The
                // handler's error is the one to return, whether this write works or not.
                let _ = sub.checkpoint_at(first);
                return Err(e);
            }
            events += batch.len() as u64;
        }
        read_since += polled.delivered;
        let now = (policy.clock)();
        if (read_since >= policy.checkpoint_every_events
            || now.saturating_duration_since(checkpointed_at) >= policy.checkpoint_every)
            && sub.checkpoint()?
        {
            read_since = 0;
            checkpointed_at = now;
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
