//! The task that runs one handler: a named subscription (checkpoint `$checkpoint-HANDLER`)
//! delivering in position order, retries with backoff, parking in `$dlq-HANDLER`, redrives.
//!
//! A failed event waits for its retry in the runner's retry set, with the later events of its
//! stream queued behind it, while the other streams' events go on being delivered; at most
//! [`MAX_DEFERRED`] events wait so (then the runner reads no further until a retry resolves).
//!
//! The checkpoint never passes an event that was neither handled nor parked: it is written
//! from the first event that is not done (the first of the retry set, or the read position),
//! and parked records are written together with the checkpoint in one `append_multi`. An event
//! parked before a crash but delivered again after it (the checkpoint was before it) is known
//! from the dead-letter stream and not delivered. So after any crash every event is handled,
//! parked, or delivered again (at least once).

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::bus::EventBus;
use crate::bus::backoff::Backoff;
use crate::bus::config::MAX_BATCH_EVENTS;
use crate::bus::dead_letter::{
    DeadLetter, DeadLetterRecord, DeadLetterState, ParkReason, dead_letter_stream,
};
use crate::bus::dead_letters::{catch_up, now_us};
use crate::bus::delivery::{Deliverer, Delivery, Failure};
use crate::bus::error::BusError;
use crate::bus::handler::{HandlerFn, RefDeliver, Selects};
use crate::bus::lanes::{Handled, deliver_batch};
use crate::bus::observer::HandlerObserver;
use crate::bus::stats::Counters;
use crate::event::{Direction, EventData, ExpectedVersion, ReadFilter, RecordedEvent};
use crate::store::Store;
use crate::subscription::{Subscription, SubscriptionOptions};

/// Events a handler keeps waiting behind failed events of their streams, at most (a batch
/// more, read before the limit was reached). What one append parks stays under the log's limit
/// of events per append.
pub(crate) const MAX_DEFERRED: usize = MAX_BATCH_EVENTS;

/// A dead-letter record to append, with the type of the event it parks (for the observer).
type Parked = (EventData, Arc<str>);

/// A stream whose first event failed and waits for its next attempt.
struct Retrying {
    /// The failed event first, then the stream's later events, in order.
    events: VecDeque<Arc<RecordedEvent>>,
    /// Attempts made at the first event.
    attempts: u32,
    /// When to attempt it again.
    due: Instant,
}

pub(crate) struct Runner {
    bus: EventBus,
    name: Arc<str>,
    deliverer: Deliverer,
    sub: Subscription<Arc<Store>>,
    dlq_stream: String,
    dead: DeadLetterState,
    /// Streams waiting for a retry, by stream.
    retrying: HashMap<Arc<str>, Retrying>,
    /// Events in `retrying`.
    deferred: usize,
    /// Every event before it was handled or parked.
    done_next: u64,
    since_checkpoint: u64,
    /// When the last checkpoint was written (or the runner started).
    checkpointed_at: Instant,
    counters: Arc<Counters>,
    progress: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
    wake: watch::Receiver<u64>,
}

impl Runner {
    /// Loads the handler's checkpoint and dead letters.
    pub fn new(
        bus: EventBus,
        name: &str,
        selects: &Selects,
        handler: HandlerFn,
        counters: Arc<Counters>,
        observer: Option<Arc<dyn HandlerObserver>>,
        progress: watch::Sender<u64>,
    ) -> Result<Runner, BusError> {
        let filter = match selects {
            Selects::Type(t) => ReadFilter::all().event_types([*t]),
            Selects::All => ReadFilter::all(),
            Selects::Filter(f) => f.clone(),
        };
        // The runner writes every checkpoint itself (commit_with): never the subscription's
        // read position, which runs ahead of the handled events.
        let opts = SubscriptionOptions::default()
            .filter(filter)
            .checkpoint_every(u64::MAX, Duration::MAX);
        let sub = Subscription::named(bus.store().clone(), name, opts)?;
        let dlq_stream = dead_letter_stream(name);
        let mut dead = DeadLetterState::default();
        catch_up(bus.store(), &dlq_stream, &mut dead)?;
        let done_next = sub.next_position();
        progress.send_replace(done_next);
        let name: Arc<str> = Arc::from(name);
        let deliverer = Deliverer {
            bus: bus.clone(),
            name: name.clone(),
            handler,
            counters: counters.clone(),
            observer,
            stop: bus.stop_signal(),
        };
        Ok(Runner {
            stop: bus.stop_signal(),
            wake: bus.wake_signal(),
            bus,
            name,
            deliverer,
            sub,
            dlq_stream,
            dead,
            retrying: HashMap::new(),
            deferred: 0,
            done_next,
            since_checkpoint: 0,
            checkpointed_at: Instant::now(),
            counters,
            progress,
        })
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Runs until the bus shuts down; writes the checkpoint then.
    pub async fn run(mut self) -> Result<(), BusError> {
        let r = self.run_loop().await;
        let ck = self.checkpoint();
        r.and(ck)
    }

    async fn run_loop(&mut self) -> Result<(), BusError> {
        let batch_events = self.bus.config().batch_events.clamp(1, MAX_BATCH_EVENTS);
        while !self.stopping() {
            self.wake.borrow_and_update();
            catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
            self.redrive().await?;
            self.retry_due().await?;
            if self.stopping() {
                break;
            }
            if self.deferred < MAX_DEFERRED {
                if let HandlerFn::Ref(f) = &self.deliverer.handler {
                    let f = f.clone();
                    if self.handle_ref_poll(&f, batch_events)? {
                        continue;
                    }
                } else {
                    let batch = self.sub.poll_owned(batch_events, Duration::ZERO)?;
                    if !batch.is_empty() {
                        if !self.handle_batch(batch).await? {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            self.set_done(self.frontier(self.sub.next_position()));
            self.checkpoint_if_due()?;
            self.idle().await;
        }
        Ok(())
    }

    /// Waits for a publish through the bus, the next retry, the idle poll interval, or the
    /// shutdown.
    async fn idle(&mut self) {
        let mut wait = Duration::from_millis(self.bus.config().idle_poll_ms);
        if let Some(due) = self.retrying.values().map(|r| r.due).min() {
            wait = wait.min(due.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            _ = self.wake.changed() => {}
            _ = self.stop.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    /// The first event not done, when every event before `read_to` not waiting for a retry is.
    fn frontier(&self, read_to: u64) -> u64 {
        self.retrying
            .values()
            .map(|r| r.events[0].position)
            .min()
            .map_or(read_to, |p| p.min(read_to))
    }

    fn set_done(&mut self, next: u64) {
        self.done_next = self.done_next.max(next);
        self.progress.send_replace(self.done_next);
    }

    /// Writes the checkpoint if it moved.
    fn checkpoint(&mut self) -> Result<(), BusError> {
        if self.sub.checkpoint_position() != Some(self.done_next) {
            let none: &[(&str, ExpectedVersion, Vec<EventData>)] = &[];
            self.commit(none)?;
            self.dead.forget_settled_before(self.done_next);
        }
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Writes the checkpoint if it moved and enough events or time went by since the last.
    fn checkpoint_if_due(&mut self) -> Result<(), BusError> {
        let config = self.bus.config();
        let old =
            self.checkpointed_at.elapsed() >= Duration::from_millis(config.checkpoint_every_ms);
        if self.since_checkpoint >= config.checkpoint_every_events || old {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Writes `outputs` and the checkpoint at `done_next` in one append. On a durable store
    /// that waits for an fsync: on a multi-threaded runtime the worker hands its other tasks
    /// over first.
    fn commit<E: AsRef<[EventData]>>(
        &mut self,
        outputs: &[(&str, ExpectedVersion, E)],
    ) -> Result<(), BusError> {
        let next = self.done_next;
        let sub = &mut self.sub;
        disk_wait(self.bus.store(), || sub.commit_with(next, outputs))?;
        self.checkpointed_at = Instant::now();
        Ok(())
    }

    /// Moves the checkpoint to `next` after `handled` more events were handled, writing
    /// `parked` with it when there are any (then at once; otherwise every
    /// `checkpoint_every_events`).
    fn advance(&mut self, next: u64, handled: u64, parked: Vec<Parked>) -> Result<(), BusError> {
        if parked.is_empty() {
            self.set_done(next);
            self.since_checkpoint += handled;
            return self.checkpoint_if_due();
        }
        // Recorded before the progress moves: who waits for a position sees what it parked.
        let next = self.done_next.max(next);
        self.done_next = next;
        let dlq = self.dlq_stream.clone();
        let (records, types): (Vec<EventData>, Vec<Arc<str>>) = parked.into_iter().unzip();
        self.commit(&[(dlq.as_str(), ExpectedVersion::Any, &records[..])])?;
        for event_type in &types {
            Counters::add(&self.counters.parked);
            if let Some(o) = &self.deliverer.observer {
                o.parked(event_type);
            }
        }
        tracing::error!(
            handler = %self.name,
            events = types.len(),
            dead_letters = %self.dlq_stream,
            "events parked"
        );
        self.since_checkpoint = 0;
        catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
        self.set_done(next);
        Ok(())
    }

    /// Delivers a polled batch once (see `lanes`): events of streams waiting for a retry join
    /// their queue, events of streams with parked events are parked behind them, a failed event
    /// starts its stream's retries (or is parked when it has none). False when the bus is
    /// shutting down before the whole batch was delivered: the checkpoint then stops at the
    /// first event not delivered.
    async fn handle_batch(&mut self, batch: Vec<RecordedEvent>) -> Result<bool, BusError> {
        let end = self.sub.next_position();
        let mut parked = Vec::new();
        let mut to_deliver = Vec::with_capacity(batch.len());
        for e in batch {
            if self.dead.was_parked(e.position) {
                // Parked while an earlier event waited for its retry (so the checkpoint stayed
                // before it), and read again after a restart.
                continue;
            }
            let e = Arc::new(e);
            if let Some(r) = self.retrying.get_mut(&e.stream) {
                r.events.push_back(e);
                self.deferred += 1;
            } else if let Some(first) = self.dead.first_of(&e.stream)
                && first < e.position
            {
                parked.push(self.held_back(&e, first));
            } else {
                to_deliver.push(e);
            }
        }
        let concurrency = self.bus.config().concurrency;
        let results = deliver_batch(&self.deliverer, to_deliver, concurrency).await?;
        let mut cut = end;
        let mut handled = 0;
        let mut parked_now: HashMap<Arc<str>, u64> = HashMap::new();
        for (e, h) in results {
            match h {
                Handled::Done => handled += 1,
                Handled::Failed(f) => {
                    if self.deliverer.gives_up(&f, 1) {
                        parked_now.insert(e.stream.clone(), e.position);
                        parked.push(self.gave_up(&e, f, 1));
                    } else {
                        self.retry(VecDeque::from([e]), 1, &f);
                    }
                }
                Handled::Behind => {
                    if let Some(r) = self.retrying.get_mut(&e.stream) {
                        r.events.push_back(e);
                        self.deferred += 1;
                    } else {
                        let first = parked_now[&e.stream];
                        parked.push(self.held_back(&e, first));
                    }
                }
                Handled::NotDone => cut = cut.min(e.position),
            }
        }
        self.advance(self.frontier(cut), handled, parked)?;
        Ok(cut == end)
    }

    /// Delivers up to `max` events borrowed from the log to the handler of borrowed events `f`,
    /// on this task, as [`Runner::handle_batch`] does owned ones: an event that must wait (its
    /// stream waits for a retry, or it failed) is copied into the retry set, and its later
    /// events with it. False when there was nothing to read.
    fn handle_ref_poll(&mut self, f: &RefDeliver, max: usize) -> Result<bool, BusError> {
        let start = self.sub.next_position();
        let mut parked = Vec::new();
        let mut parked_now: HashMap<Arc<str>, u64> = HashMap::new();
        let mut handled = 0;
        let Runner {
            sub,
            dead,
            retrying,
            deferred,
            deliverer,
            name,
            ..
        } = self;
        let check_dead = !dead.letters.is_empty() || !dead.settled.is_empty();
        sub.poll(max, Duration::ZERO, |e| {
            if check_dead && dead.was_parked(e.position) {
                return ControlFlow::Continue(());
            }
            if !retrying.is_empty()
                && let Some(r) = retrying.get_mut(e.stream)
            {
                r.events.push_back(Arc::new(e.to_owned_event()));
                *deferred += 1;
                return ControlFlow::Continue(());
            }
            let first = if check_dead || !parked_now.is_empty() {
                dead.first_of(e.stream)
                    .filter(|first| *first < e.position)
                    .or_else(|| parked_now.get(e.stream).copied())
            } else {
                None
            };
            if let Some(first) = first {
                parked.push(held_back_record(name, &e.to_owned_event(), first));
                return ControlFlow::Continue(());
            }
            match deliverer.attempt_ref(f, e, 1) {
                Ok(()) => handled += 1,
                Err(fail) => {
                    let owned = Arc::new(e.to_owned_event());
                    if deliverer.gives_up(&fail, 1) {
                        parked_now.insert(owned.stream.clone(), owned.position);
                        parked.push(gave_up_record(name, &owned, fail, 1));
                    } else {
                        let events = VecDeque::from([owned]);
                        start_retry(retrying, deferred, deliverer, events, 1, &fail);
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        let end = self.sub.next_position();
        self.advance(self.frontier(end), handled, parked)?;
        Ok(end > start)
    }

    /// Puts `events` (the first failed at attempt `attempts`) in the retry set.
    fn retry(&mut self, events: VecDeque<Arc<RecordedEvent>>, attempts: u32, f: &Failure) {
        let Runner {
            retrying,
            deferred,
            deliverer,
            ..
        } = self;
        start_retry(retrying, deferred, deliverer, events, attempts, f);
    }

    /// Attempts again the first event of every stream whose retry is due, then its later
    /// events, until one fails (it waits for its next retry, or is parked with the events
    /// behind it) or the stream's queue is empty.
    async fn retry_due(&mut self) -> Result<(), BusError> {
        let now = Instant::now();
        let mut due: Vec<(u64, Arc<str>)> = self
            .retrying
            .iter()
            .filter(|(_, r)| r.due <= now)
            .map(|(s, r)| (r.events[0].position, s.clone()))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        due.sort();
        let (mut handled, mut parked) = (0, Vec::new());
        for (_, stream) in due {
            if self.stopping() {
                break;
            }
            let Some(mut r) = self.retrying.remove(&stream) else {
                continue;
            };
            self.deferred -= r.events.len();
            while let Some(e) = r.events.front().cloned() {
                if self.stopping() {
                    break;
                }
                if let Some(first) = self.dead.first_of(&stream)
                    && first < e.position
                {
                    // Read again after a restart, behind an event parked before it.
                    for behind in std::mem::take(&mut r.events) {
                        parked.push(self.held_back(&behind, first));
                    }
                    break;
                }
                let attempt = r.attempts + 1;
                match self.deliverer.attempt(&e, attempt).await {
                    Ok(()) => {
                        handled += 1;
                        r.events.pop_front();
                        r.attempts = 0;
                    }
                    Err(f) if self.deliverer.gives_up(&f, attempt) => {
                        r.events.pop_front();
                        parked.push(self.gave_up(&e, f, attempt));
                        for behind in std::mem::take(&mut r.events) {
                            parked.push(self.held_back(&behind, e.position));
                        }
                    }
                    Err(f) => {
                        self.retry(std::mem::take(&mut r.events), attempt, &f);
                    }
                }
            }
            if !r.events.is_empty() {
                // Stopping: what is left waits, and the checkpoint stays before it.
                self.deferred += r.events.len();
                self.retrying.insert(stream, r);
            }
        }
        let next = self.frontier(self.sub.next_position());
        self.advance(next, handled, parked)
    }

    /// The dead-letter record of `e`, given up on after `attempts` attempts.
    fn gave_up(&self, e: &RecordedEvent, f: Failure, attempts: u32) -> Parked {
        gave_up_record(&self.name, e, f, attempts)
    }

    /// The dead-letter record of `e`, held back behind the parked position `first` of its
    /// stream.
    fn held_back(&self, e: &RecordedEvent, first: u64) -> Parked {
        held_back_record(&self.name, e, first)
    }

    /// Carries out the redrives asked for, each stream's parked events in order.
    async fn redrive(&mut self) -> Result<(), BusError> {
        while let Some(letter) = self.dead.next_redrive().cloned() {
            if self.stopping()
                || letter.position >= self.sub.next_position()
                || self.retrying.contains_key(letter.stream.as_str())
            {
                // After a restart the read may be before the parked event again: the earlier
                // events of its stream are delivered first (the read passes it, and what waits
                // for a retry is done), then the redrive.
                return Ok(());
            }
            let record = match event_at(self.bus.store(), letter.position)? {
                None => DeadLetterRecord::RedriveFailed {
                    position: letter.position,
                    reason: letter.reason,
                    attempts: 0,
                    last_error: "the event is no longer in the log (deleted or compacted); \
                                 discard it"
                        .into(),
                    at_us: now_us(),
                },
                Some(e) => match self.deliverer.deliver(&Arc::new(e)).await {
                    Delivery::Done(attempts) => {
                        Counters::add(&self.counters.redriven);
                        DeadLetterRecord::Redriven {
                            position: letter.position,
                            attempts,
                            at_us: now_us(),
                        }
                    }
                    Delivery::GaveUp {
                        reason,
                        attempts,
                        error,
                    } => DeadLetterRecord::RedriveFailed {
                        position: letter.position,
                        reason,
                        attempts,
                        last_error: error,
                        at_us: now_us(),
                    },
                    Delivery::Stopped => return Ok(()),
                },
            };
            let store = self.bus.store();
            disk_wait(store, || {
                store.append(&self.dlq_stream, ExpectedVersion::Any, &[record.to_event()])
            })?;
            catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
        }
        Ok(())
    }
}

/// Puts `events` (their first failed with `f` at attempt `attempts`) in `retrying`, due after
/// the delay the failure or the backoff gives; `deferred` counts the events waiting.
fn start_retry(
    retrying: &mut HashMap<Arc<str>, Retrying>,
    deferred: &mut usize,
    deliverer: &Deliverer,
    events: VecDeque<Arc<RecordedEvent>>,
    attempts: u32,
    f: &Failure,
) {
    let first = &events[0];
    let delay = deliverer.retry_delay(f, attempts, Backoff::seed(&first.id));
    *deferred += events.len();
    retrying.insert(
        first.stream.clone(),
        Retrying {
            events,
            attempts,
            due: Instant::now() + delay,
        },
    );
}

/// The dead-letter record of `e` for handler `handler`, given up on after `attempts` attempts.
fn gave_up_record(handler: &str, e: &RecordedEvent, f: Failure, attempts: u32) -> Parked {
    let record = DeadLetterRecord::Parked(letter(handler, e, f.reason, attempts, f.message));
    (record.to_event(), e.event_type.clone())
}

/// The dead-letter record of `e` for handler `handler`, held back behind the parked position
/// `first` of its stream.
fn held_back_record(handler: &str, e: &RecordedEvent, first: u64) -> Parked {
    let record = DeadLetterRecord::Parked(letter(
        handler,
        e,
        ParkReason::HeldBack,
        0,
        format!("held back behind parked position {first} of its stream"),
    ));
    (record.to_event(), e.event_type.clone())
}

/// The dead letter of `e` for handler `handler`.
fn letter(
    handler: &str,
    e: &RecordedEvent,
    reason: ParkReason,
    attempts: u32,
    last_error: String,
) -> DeadLetter {
    DeadLetter {
        position: e.position,
        stream: e.stream.to_string(),
        version: e.version,
        event_type: e.event_type.to_string(),
        event_id: e.id.to_string(),
        handler: handler.to_owned(),
        reason,
        attempts,
        last_error,
        parked_at_us: now_us(),
    }
}

/// Runs `f`, a write to `store`. On a durable store it waits for an fsync: on a
/// multi-threaded runtime the worker hands its other tasks over first (`block_in_place`).
fn disk_wait<R>(store: &Store, f: impl FnOnce() -> R) -> R {
    let durable = store.durability() == crate::store::Durability::Always;
    if durable && crate::bus::event_bus::multi_thread_runtime() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The event at global position `position`, if the log still has it.
fn event_at(store: &Store, position: u64) -> Result<Option<RecordedEvent>, BusError> {
    let e = store
        .read_all(position, Direction::Forward, ReadFilter::all())
        .next()
        .transpose()?;
    Ok(e.filter(|e| e.position == position))
}
