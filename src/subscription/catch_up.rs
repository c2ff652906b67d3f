//! [`Subscription`]: reads the log's history from a position, then follows new appends, with
//! no gap and no duplicate where one turns into the other: both are the same read by position,
//! which waits for the head to move once it has caught up.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{
    AppendResult, Direction, EventData, ExpectedVersion, ReadFilter, RecordedEvent,
};
use crate::store::read_ahead::ReadAhead;
use crate::store::{EventRef, Store};
use crate::subscription::checkpoint::{
    Checkpoint, DoneAbove, checkpoint_event, checkpoint_event_above,
};

/// A clock: the subscription asks it the time to decide when its checkpoint is due. Tests pass
/// one they move by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Where a subscription starts when it has no checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The first event of the log.
    Beginning,
    /// This global position (the first event delivered is the first one at or after it).
    Position(u64),
    /// After the events visible when the subscription is created: only new events.
    End,
    /// Version `version` of stream `stream` (its first event at or after that version), and only
    /// that stream's events from that version on (a version the stream has not reached yet is
    /// delivered when it comes). With a stream prefix in the filter, the stream must have it.
    StreamVersion {
        /// The stream.
        stream: String,
        /// Its first version to deliver.
        version: u64,
    },
}

/// How a [`Subscription`] reads and checkpoints.
#[derive(Clone)]
pub struct SubscriptionOptions {
    /// Which events are delivered (all by default).
    pub filter: ReadFilter,
    /// Where to start without a checkpoint ([`Start::Beginning`] by default).
    pub start: Start,
    /// A named subscription writes its checkpoint after this many delivered events (1,000 by
    /// default)...
    pub checkpoint_every_events: u64,
    /// ... or once this much time has passed since the last one (1 s by default), whichever
    /// comes first, when it has moved.
    pub checkpoint_every: Duration,
    /// Deliver the events of system streams (ids starting with `$`: checkpoints, dead letters,
    /// sagas) too. Off by default.
    pub include_system: bool,
    /// The clock the checkpoint interval is measured with (`Instant::now` by default).
    pub clock: Clock,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            filter: ReadFilter::all(),
            start: Start::Beginning,
            checkpoint_every_events: 1_000,
            checkpoint_every: Duration::from_secs(1),
            include_system: false,
            clock: Arc::new(Instant::now),
        }
    }
}

impl std::fmt::Debug for SubscriptionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionOptions")
            .field("filter", &self.filter)
            .field("start", &self.start)
            .field("checkpoint_every_events", &self.checkpoint_every_events)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("include_system", &self.include_system)
            .finish_non_exhaustive()
    }
}

impl SubscriptionOptions {
    /// Only events that pass `filter`.
    pub fn filter(mut self, filter: ReadFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Where to start without a checkpoint.
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Checkpoint after `events` delivered events or `every`, whichever comes first.
    pub fn checkpoint_every(mut self, events: u64, every: Duration) -> Self {
        self.checkpoint_every_events = events.max(1);
        self.checkpoint_every = every;
        self
    }

    /// Deliver the events of system streams too.
    pub fn include_system(mut self, yes: bool) -> Self {
        self.include_system = yes;
        self
    }

    /// Measure the checkpoint interval with `clock`.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// What one [`Subscription::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// Events handed to the callback.
    pub delivered: u64,
    /// The position the next poll starts at.
    pub next_position: u64,
    /// The callback stopped the poll.
    pub stopped: bool,
}

/// A catch-up subscription: the events of the log that pass a filter, in position order, first
/// those already stored, then new ones as they are appended, each exactly once per run.
///
/// A **named** subscription ([`Subscription::named`]) keeps a durable checkpoint in the store
/// itself (the system stream `$checkpoint-NAME`): written every
/// [`SubscriptionOptions::checkpoint_every_events`] events or
/// [`SubscriptionOptions::checkpoint_every`], and by [`Subscription::stop`]. After a restart,
/// a crash or a kill -9 it resumes from its last checkpoint, so delivery is **at least once**:
/// the events delivered after the last checkpoint are delivered again. A handler that stores
/// its output with [`Subscription::commit_with`] (its output events and the checkpoint in one
/// atomic append) is applied **exactly once**.
///
/// Memory stays bounded whatever the consumer's speed: a poll reads at most `max` events, from
/// the log, when asked; nothing is queued between polls. While it catches up through
/// compressed segments, a subscription reads ahead as a long replay does, and keeps that
/// read-ahead from one poll to the next: it holds the image of the segment it is in and of at
/// most two after it (within the image cache's budget, see
/// [`crate::segment::set_image_cache_bytes`]), and lets them go once it reaches the segment
/// being written, or when dropped.
///
/// ```
/// use std::ops::ControlFlow;
/// use std::time::Duration;
/// use evlog::{EventData, ExpectedVersion, ReadFilter, Store};
/// use evlog::subscription::{Subscription, SubscriptionOptions};
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.append("order-1", ExpectedVersion::Any, &[EventData::new("OrderPlaced", b"{}".to_vec())])?;
///
/// let opts = SubscriptionOptions::default().filter(ReadFilter::all().event_types(["OrderPlaced"]));
/// let mut sub = Subscription::named(&store, "mailer", opts.clone())?;
/// let mut seen = Vec::new();
/// sub.poll(100, Duration::ZERO, |e| {
///     seen.push(e.position);
///     ControlFlow::Continue(())
/// })?;
/// sub.stop()?; // writes the checkpoint
///
/// // Later (or after a restart): only what came since.
/// store.append("order-2", ExpectedVersion::Any, &[EventData::new("OrderPlaced", b"{}".to_vec())])?;
/// let mut sub = Subscription::named(&store, "mailer", opts)?;
/// sub.poll(100, Duration::from_millis(10), |e| {
///     seen.push(e.position);
///     ControlFlow::Continue(())
/// })?;
/// assert_eq!(seen, [0, 2]); // position 1 is the checkpoint, a system event
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Subscription<S: AsRef<Store>> {
    store: S,
    opts: SubscriptionOptions,
    /// Only this stream's events ([`Start::StreamVersion`]).
    stream: Option<String>,
    /// Only its events from this version on ([`Start::StreamVersion`]).
    from_version: u64,
    next: u64,
    checkpoint: Option<Checkpoint>,
    delivered_since: u64,
    /// The compressed segments read ahead of the subscription, kept from one poll to the next.
    ahead: ReadAhead,
}

impl<S: AsRef<Store>> Subscription<S> {
    /// A subscription without a checkpoint, from `opts.start`.
    pub fn new(store: S, opts: SubscriptionOptions) -> Result<Self> {
        Self::with_checkpoint(store, opts, None)
    }

    /// A named subscription: it resumes after its last checkpoint, or starts at `opts.start`
    /// when it has none. One process at a time should run a given name: a checkpoint written
    /// meanwhile by another makes this one's next write fail with
    /// [`Error::WrongExpectedVersion`] on the checkpoint stream.
    pub fn named(store: S, name: &str, opts: SubscriptionOptions) -> Result<Self> {
        let checkpoint = Checkpoint::load(store.as_ref(), name, (opts.clock)())?;
        Self::with_checkpoint(store, opts, Some(checkpoint))
    }

    /// A subscription starting after `checkpoint`'s position, or at `opts.start` without one.
    fn with_checkpoint(
        store: S,
        opts: SubscriptionOptions,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Self> {
        let mut sub = Subscription {
            ahead: ReadAhead::new(&opts.filter),
            store,
            opts,
            stream: None,
            from_version: 0,
            next: 0,
            checkpoint: None,
            delivered_since: 0,
        };
        let start = sub.resolve_start()?;
        // The read-ahead goes with the filter the start settled on.
        sub.ahead = ReadAhead::new(&sub.opts.filter);
        sub.next = checkpoint
            .as_ref()
            .and_then(|c| c.position)
            .unwrap_or(start);
        sub.checkpoint = checkpoint;
        Ok(sub)
    }

    /// The position of the first event to deliver without a checkpoint.
    fn resolve_start(&mut self) -> Result<u64> {
        let store = self.store.as_ref();
        let end = store.head_position().map_or(0, |h| h + 1);
        Ok(match &self.opts.start {
            Start::Beginning => 0,
            Start::Position(p) => *p,
            Start::End => end,
            Start::StreamVersion { stream, version } => {
                if let Some(p) = &self.opts.filter.stream_prefix
                    && !stream.starts_with(p.as_str())
                {
                    return Err(Error::InvalidArgument(format!(
                        "a subscription from stream {stream:?} with the stream prefix {p:?}, \
                         which that stream does not have: it would deliver nothing"
                    )));
                }
                self.stream = Some(stream.clone());
                self.from_version = *version;
                self.opts.filter.stream_prefix = Some(stream.clone());
                match store
                    .read_stream(stream, *version, Direction::Forward, 1)
                    .next()
                    .transpose()?
                {
                    Some(e) => e.position,
                    None => end,
                }
            }
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.store.as_ref()
    }

    /// The position the next poll starts at: every event before it was delivered (or did not
    /// pass the filter).
    pub fn next_position(&self) -> u64 {
        self.next
    }

    /// The position the last checkpoint stored (`None`: unnamed, or none yet).
    pub fn checkpoint_position(&self) -> Option<u64> {
        self.checkpoint.as_ref().and_then(|c| c.position)
    }

    /// Hands the next events to `f`, at most `max`, in position order, as borrowed
    /// [`EventRef`]s. When there is no event to deliver it waits up to `wait` for one to be
    /// appended (`Duration::ZERO`: not at all). `f` returning `Break` ends the poll after that
    /// event (which counts as delivered). A named subscription then writes its checkpoint if
    /// it is due.
    pub fn poll<F>(&mut self, max: usize, wait: Duration, f: F) -> Result<Polled>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        self.poll_before(max, wait, u64::MAX, f)
    }

    /// [`Subscription::poll`] of the events before position `to` only.
    pub(crate) fn poll_before<F>(
        &mut self,
        max: usize,
        wait: Duration,
        to: u64,
        mut f: F,
    ) -> Result<Polled>
    where
        F: FnMut(&EventRef<'_>) -> ControlFlow<()>,
    {
        let store = self.store.as_ref();
        let mut end = store.head_position().map_or(0, |h| h + 1);
        if self.next >= end && !wait.is_zero() {
            end = store
                .wait_for_head_after(self.next.checked_sub(1), wait)
                .map_or(0, |h| h + 1);
        }
        let end = end.min(to);
        let mut polled = Polled {
            delivered: 0,
            next_position: self.next,
            stopped: false,
        };
        if self.next < end && max > 0 {
            let include_system = self.opts.include_system;
            let stream = self.stream.as_deref();
            let from_version = self.from_version;
            let filter = &self.opts.filter;
            // Where to go on from if the read fails after handing out events.
            let mut handed_out = None;
            let r = store.replay_reading_ahead(self.next, end, filter, &mut self.ahead, |e| {
                if (!include_system && e.stream.starts_with('$'))
                    || stream.is_some_and(|s| s != e.stream || e.version < from_version)
                {
                    return ControlFlow::Continue(());
                }
                handed_out = Some(e.position + 1);
                polled.delivered += 1;
                let flow = f(e);
                polled.stopped = flow.is_break();
                if flow.is_break() || polled.delivered >= max as u64 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    // The events handed out before the error are not handed out again.
                    if let Some(next) = handed_out {
                        self.next = self.next.max(next);
                        self.delivered_since += polled.delivered;
                    }
                    return Err(e);
                }
            };
            self.next = r.next_position;
            polled.next_position = self.next;
        }
        self.delivered_since += polled.delivered;
        self.checkpoint_if_due()?;
        Ok(polled)
    }

    /// [`Subscription::poll`] handing out owned events: at most `max` of them.
    pub fn poll_owned(&mut self, max: usize, wait: Duration) -> Result<Vec<RecordedEvent>> {
        let mut out = Vec::with_capacity(max.min(4_096));
        let mut names = crate::store::Names::default();
        self.poll(max, wait, |e| {
            out.push(e.owned_with(&mut names));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Writes the checkpoint when enough events were delivered or enough time has passed.
    fn checkpoint_if_due(&mut self) -> Result<()> {
        let Some(c) = &self.checkpoint else {
            return Ok(());
        };
        if c.position == Some(self.next) {
            return Ok(());
        }
        let now = (self.opts.clock)();
        if self.delivered_since >= self.opts.checkpoint_every_events
            || now.saturating_duration_since(c.at) >= self.opts.checkpoint_every
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Writes the checkpoint now (a named subscription whose position moved since the last
    /// one). Returns whether it wrote one.
    pub fn checkpoint(&mut self) -> Result<bool> {
        self.checkpoint_at(self.next)
    }

    /// Writes the checkpoint `position` (at most [`Subscription::next_position`]: everything
    /// before it was handled) if it is not the one stored. Returns whether it wrote one.
    pub(crate) fn checkpoint_at(&mut self, position: u64) -> Result<bool> {
        debug_assert!(position <= self.next, "a checkpoint past the events read");
        let now = (self.opts.clock)();
        let Some(c) = &mut self.checkpoint else {
            return Ok(false);
        };
        if c.position == Some(position) {
            return Ok(false);
        }
        c.write(self.store.as_ref(), position, now)?;
        self.delivered_since = 0;
        Ok(true)
    }

    /// Stores `outputs` (a handler's output events) and the checkpoint `next_position` in one
    /// atomic [`Store::append_multi`]: both or neither are stored, so a handler that commits
    /// this way is applied exactly once even across a crash. Call it after the poll that
    /// delivered the event (e.g. [`Subscription::poll_owned`] of one event), with the handled
    /// event's position + 1. Returns the outputs' results. Needs a named subscription.
    pub fn commit_with<T: AsRef<str>, E: AsRef<[EventData]>>(
        &mut self,
        next_position: u64,
        outputs: &[(T, ExpectedVersion, E)],
    ) -> Result<Vec<AppendResult>> {
        // Past what was delivered, the checkpoint would skip the events in between.
        if next_position > self.next {
            return Err(Error::InvalidArgument(format!(
                "commit_with: position {next_position} is past the events this subscription \
                 delivered (up to {}); pass the handled event's position + 1",
                self.next
            )));
        }
        self.commit_checkpoint(next_position, None, outputs)
    }

    /// What the last checkpoint stored (or loaded when the subscription was created) said of
    /// the events after its position (see [`checkpoint`](crate::subscription::checkpoint));
    /// `None` for the plain form.
    #[cfg_attr(not(feature = "bus"), allow(dead_code))]
    pub(crate) fn checkpoint_above(&self) -> Option<&DoneAbove> {
        self.checkpoint.as_ref().and_then(|c| c.above.as_ref())
    }

    /// [`Subscription::commit_with`] of a checkpoint at `position` that also says which events
    /// after it were handled (`above`).
    #[cfg_attr(not(feature = "bus"), allow(dead_code))]
    pub(crate) fn commit_above<T: AsRef<str>, E: AsRef<[EventData]>>(
        &mut self,
        position: u64,
        above: &DoneAbove,
        outputs: &[(T, ExpectedVersion, E)],
    ) -> Result<Vec<AppendResult>> {
        let above = (above.read > position).then(|| above.clone());
        self.commit_checkpoint(position, above, outputs)
    }

    /// Stores `outputs` and the checkpoint `next_position` (saying `above` of the events after
    /// it) in one append.
    fn commit_checkpoint<T: AsRef<str>, E: AsRef<[EventData]>>(
        &mut self,
        next_position: u64,
        above: Option<DoneAbove>,
        outputs: &[(T, ExpectedVersion, E)],
    ) -> Result<Vec<AppendResult>> {
        let now = (self.opts.clock)();
        let Some(c) = &mut self.checkpoint else {
            return Err(Error::InvalidArgument(
                "commit_with needs a named subscription (Subscription::named)".into(),
            ));
        };
        let end = self.store.as_ref().head_position().map_or(0, |h| h + 1);
        if next_position > end {
            return Err(Error::InvalidArgument(format!(
                "commit_with: position {next_position} is past the log's end ({end}); pass the \
                 handled event's position + 1"
            )));
        }
        let ck = [match &above {
            Some(a) => checkpoint_event_above(next_position, a),
            None => checkpoint_event(next_position),
        }];
        let mut batch: Vec<(&str, ExpectedVersion, &[EventData])> = outputs
            .iter()
            .map(|(s, x, e)| (s.as_ref(), *x, e.as_ref()))
            .collect();
        batch.push((c.stream.as_str(), c.expected(), &ck));
        let store = self.store.as_ref();
        c.prepare_first(store)?;
        let mut results = store.append_multi(&batch)?;
        let mine = results.pop().expect("the checkpoint's result");
        c.written(next_position, above, mine.next_expected_version, now);
        self.next = self.next.max(next_position);
        self.delivered_since = 0;
        Ok(results)
    }

    /// Writes the checkpoint (if named and moved) and ends the subscription. Dropping a
    /// subscription does not write it: the events since the last checkpoint are then
    /// delivered again next time.
    pub fn stop(mut self) -> Result<()> {
        self.checkpoint()?;
        Ok(())
    }
}

impl AsRef<Store> for Store {
    fn as_ref(&self) -> &Store {
        self
    }
}
