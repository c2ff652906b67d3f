//! The task that runs one handler: a named subscription (checkpoint `$checkpoint-HANDLER`)
//! delivering in position order, retries with backoff, parking in `$dlq-HANDLER`, redrives.
//!
//! A failed event waits for its retry in the runner's retry set, with the later events of its
//! stream queued behind it, while the other streams' events go on being delivered; at most
//! [`MAX_DEFERRED`] events wait so (then the runner reads no further until a retry resolves).
//!
//! The checkpoint never passes an event that was neither handled nor parked: its position is
//! the first event that is not done (the first of the retry set, or the read position), and
//! it lists the events after it, up to the read position, that are not done (those waiting for
//! a retry): after a restart only those are delivered again, not the other streams' events
//! handled meanwhile. Parked records, and the events handlers emitted
//! ([`HandlerContext::emit`](crate::bus::HandlerContext::emit)), are written together with the
//! checkpoint that marks their events done, in one `append_multi`. An event parked before a
//! crash but delivered again after it is known from the dead-letter stream and not delivered.
//! So after any crash every event is handled, parked, or delivered again (at least once), and
//! the emitted events of each handled event are stored once (exactly once).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::bus::EventBus;
use crate::bus::backoff::Backoff;
use crate::bus::config::MAX_BATCH_EVENTS;
use crate::bus::context::Output;
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
use crate::subscription::checkpoint::{DoneAbove, checkpoint_stream};
use crate::subscription::{Subscription, SubscriptionOptions};

/// Events a handler keeps waiting behind failed events of their streams, at most (a batch
/// more, read before the limit was reached). What one append parks stays under the log's limit
/// of events per append.
pub(crate) const MAX_DEFERRED: usize = MAX_BATCH_EVENTS;

/// A dead-letter record to append, with the type of the event it parks (for the observer) and
/// its position.
type Parked = (EventData, Arc<str>, u64);

/// A handled event with the events its handler emitted.
type Emitted = (Arc<RecordedEvent>, Vec<Output>);

/// Output events merged into one part per stream, ready for `append_multi`.
type Parts<'a> = Vec<(&'a str, ExpectedVersion, Cow<'a, [EventData]>)>;

/// A stream whose first event failed and waits for its next attempt.
struct Retrying {
    /// The failed event first, then the stream's later events, in order.
    events: VecDeque<Arc<RecordedEvent>>,
    /// Attempts made at the first event.
    attempts: u32,
    /// Of those, the attempts that do not use up a retry (a delivery whose outputs a batch's
    /// commit refused, see [`Runner::demote`]).
    free: u32,
    /// When to attempt it again.
    due: Instant,
}

pub(crate) struct Runner {
    bus: EventBus,
    name: Arc<str>,
    deliverer: Deliverer,
    sub: Subscription<Arc<Store>>,
    dlq_stream: String,
    /// The checkpoint stream.
    ck_stream: String,
    dead: DeadLetterState,
    /// Streams waiting for a retry, by stream.
    retrying: HashMap<Arc<str>, Retrying>,
    /// Events in `retrying`.
    deferred: usize,
    /// Every event before it was handled or parked.
    done_next: u64,
    /// From the checkpoint loaded at the start: events before `read` that are not `pending`
    /// were done by an earlier run (forgotten once the read passes `read`).
    above: Option<(u64, HashSet<u64>)>,
    /// Events read but not delivered because the bus is shutting down.
    unfinished: Vec<u64>,
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
        let above = sub
            .checkpoint_above()
            .map(|a| (a.read, a.pending.iter().copied().collect()));
        let ck_stream = checkpoint_stream(name);
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
            ck_stream,
            dead,
            retrying: HashMap::new(),
            deferred: 0,
            done_next,
            above,
            unfinished: Vec::new(),
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
    ///
    /// After an error nothing more is written: the state may hold a batch read and not
    /// handled (its delivery tasks cancelled as the runtime shuts down), which a checkpoint
    /// would mark done; the last checkpoint written stays.
    pub async fn run(mut self) -> Result<(), BusError> {
        self.run_loop().await?;
        self.checkpoint()
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
            self.set_done(self.checkpoint_state(&[]).0);
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

    /// The checkpoint to write now: the first event not done, and the events after it that
    /// are not done up to the read position: those waiting for a retry, those `extra` (handled,
    /// their outputs not stored yet), those not delivered at a shutdown, and those an earlier
    /// run left not done past where this run has read.
    fn checkpoint_state(&self, extra: &[u64]) -> (u64, DoneAbove) {
        let next = self.sub.next_position();
        let mut pending: Vec<u64> = self
            .retrying
            .values()
            .flat_map(|r| r.events.iter().map(|e| e.position))
            .chain(extra.iter().copied())
            .chain(self.unfinished.iter().copied())
            .collect();
        let mut read = next;
        if let Some((r, earlier)) = &self.above
            && *r > next
        {
            read = *r;
            pending.extend(earlier.iter().copied().filter(|p| *p >= next));
        }
        pending.sort_unstable();
        pending.dedup();
        let first = pending.first().map_or(read, |p| (*p).min(read));
        if pending.is_empty() {
            read = first;
        }
        (first, DoneAbove { read, pending })
    }

    /// True for an event an earlier run handled (or parked) after its checkpoint's position.
    fn done_earlier(above: &Option<(u64, HashSet<u64>)>, position: u64) -> bool {
        above
            .as_ref()
            .is_some_and(|(read, pending)| position < *read && !pending.contains(&position))
    }

    /// Forgets what the loaded checkpoint said once the read passed its read position.
    fn forget_earlier(&mut self) {
        if self
            .above
            .as_ref()
            .is_some_and(|(read, _)| self.sub.next_position() >= *read)
        {
            self.above = None;
        }
    }

    fn set_done(&mut self, next: u64) {
        self.done_next = self.done_next.max(next);
        self.progress.send_replace(self.done_next);
    }

    /// Writes the checkpoint if it moved.
    fn checkpoint(&mut self) -> Result<(), BusError> {
        let (first, above) = self.checkpoint_state(&[]);
        // Plain when nothing is pending (see `checkpoint_state`), as the subscription keeps it.
        let stored = (self.sub.checkpoint_position(), self.sub.checkpoint_above());
        if stored != (Some(first), Some(&above).filter(|a| !a.pending.is_empty())) {
            self.commit(&[], &[])?;
            self.set_done(first);
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

    /// Writes `parts` and the checkpoint (with the `extra` events not done: see
    /// [`Runner::checkpoint_state`]) in one append. On a durable store that waits for an fsync:
    /// on a multi-threaded runtime the worker hands its other tasks over first.
    fn commit(
        &mut self,
        extra: &[u64],
        parts: &[(&str, ExpectedVersion, Cow<'_, [EventData]>)],
    ) -> crate::Result<()> {
        let (first, above) = self.checkpoint_state(extra);
        let sub = &mut self.sub;
        disk_wait(self.bus.store(), || sub.commit_above(first, &above, parts))?;
        self.checkpointed_at = Instant::now();
        Ok(())
    }

    /// Moves the checkpoint after `handled` more events were handled, writing `parked` and the
    /// outputs `emitted` with it when there are any (then at once; otherwise every
    /// `checkpoint_every_events`). `batch` holds the events handled in this step, in position
    /// order: an event whose outputs cannot be stored goes back to the retry set with the later
    /// events of its stream among them.
    fn advance(
        &mut self,
        handled: u64,
        parked: Vec<Parked>,
        emitted: Vec<Emitted>,
        batch: &[Arc<RecordedEvent>],
    ) -> Result<(), BusError> {
        if parked.is_empty() && emitted.is_empty() {
            self.set_done(self.checkpoint_state(&[]).0);
            self.since_checkpoint += handled;
            return self.checkpoint_if_due();
        }
        let (records, types) = split_parked(parked);
        self.store_outputs(&records, emitted, batch)?;
        self.parked_written(&types);
        self.since_checkpoint = 0;
        catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
        // Recorded before the progress moves: who waits for a position sees what it parked.
        self.set_done(self.checkpoint_state(&[]).0);
        Ok(())
    }

    /// Counts parked events of these types, once their records are written.
    fn parked_written(&self, types: &[Arc<str>]) {
        for event_type in types {
            Counters::add(&self.counters.parked);
            if let Some(o) = &self.deliverer.observer {
                o.parked(event_type);
            }
        }
        if !types.is_empty() {
            tracing::error!(
                handler = %self.name,
                events = types.len(),
                dead_letters = %self.dlq_stream,
                "events parked"
            );
        }
    }

    /// Writes the dead-letter `records` and the outputs `emitted` with the checkpoint: in one
    /// append when it takes them all. Otherwise (an output's expected version is stale, two
    /// events emitted to one stream with versions that do not follow, the append would be too
    /// large) the records first, then each event's outputs with the checkpoint, in position
    /// order; an event whose outputs are refused is delivered again (see [`Runner::demote`]).
    fn store_outputs(
        &mut self,
        records: &[EventData],
        emitted: Vec<Emitted>,
        batch: &[Arc<RecordedEvent>],
    ) -> Result<(), BusError> {
        let dlq = self.dlq_stream.clone();
        if let Ok(mut parts) = merge_outputs(emitted.iter().flat_map(|(_, o)| o)) {
            with_records(&mut parts, &dlq, records);
            match self.commit(&[], &parts) {
                Ok(()) => return Ok(()),
                Err(e) if self.refuses(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Not done until stored: the emitting events, and the later events of their streams.
        let mut first_emit: HashMap<&str, u64> = HashMap::new();
        for (e, _) in &emitted {
            first_emit.entry(&*e.stream).or_insert(e.position);
        }
        let mut left: BTreeSet<u64> = batch
            .iter()
            .filter(|e| first_emit.get(&*e.stream).is_some_and(|p| e.position >= *p))
            .map(|e| e.position)
            .collect();
        if !records.is_empty() {
            let mut parts = Parts::new();
            with_records(&mut parts, &dlq, records);
            let extra: Vec<u64> = left.iter().copied().collect();
            self.commit(&extra, &parts)?;
        }
        let mut demoted: HashSet<Arc<str>> = HashSet::new();
        for (i, (e, outputs)) in emitted.iter().enumerate() {
            if demoted.contains(&e.stream) {
                continue;
            }
            // This event, and its stream's events up to its next emitting one, are done if
            // these outputs are stored.
            let next_emit = emitted[i + 1..]
                .iter()
                .find(|(n, _)| n.stream == e.stream)
                .map_or(u64::MAX, |(n, _)| n.position);
            let mine: Vec<u64> = batch
                .iter()
                .filter(|b| {
                    b.stream == e.stream && b.position >= e.position && b.position < next_emit
                })
                .map(|b| b.position)
                .collect();
            let extra: Vec<u64> = left.iter().copied().filter(|p| !mine.contains(p)).collect();
            let Some(refused) = self.write_outputs(outputs, |r, parts| r.commit(&extra, &parts))?
            else {
                for p in &mine {
                    left.remove(p);
                }
                continue;
            };
            let later: Vec<Arc<RecordedEvent>> = batch
                .iter()
                .filter(|b| b.stream == e.stream && b.position > e.position)
                .cloned()
                .collect();
            for b in std::iter::once(e).chain(&later) {
                left.remove(&b.position);
            }
            demoted.insert(e.stream.clone());
            self.demote(e.clone(), later, refused);
        }
        Ok(())
    }

    /// True when `e` refuses a handler's outputs (see [`refused_output`]).
    fn refuses(&self, e: &crate::Error) -> bool {
        refused_output(e, [&self.ck_stream, &self.dlq_stream])
    }

    /// An attempt counted as handled whose outputs were refused (`message`): counted as a
    /// failure instead, and logged as one.
    fn outputs_refused(&self, e: &RecordedEvent, attempt: u32, message: &str) {
        uncount_handled(&self.counters, 1);
        Counters::add(&self.counters.failures);
        tracing::warn!(
            handler = %self.name,
            stream = %e.stream,
            event_type = %e.event_type,
            position = e.position,
            attempt,
            error = %message,
            "delivery failed: outputs refused"
        );
    }

    /// `e`'s delivery in a batch failed after the handler returned: the batch's commit refused
    /// its outputs (`message`). It goes back to the retry set with `later` (its stream's
    /// events handled after it, delivered again after it) and the stream's events already
    /// waiting, due again at once, and without using up a retry: its handler ran before the
    /// outputs of the batch's earlier events were stored (a handler that reads a version to
    /// expect read a stale one), and the retry runs it again, one event at a time, each
    /// event's outputs stored before the next. A refusal on that retry is a real conflict: an
    /// attempt that failed, retried after the backoff or parked when the retries ran out.
    fn demote(&mut self, e: Arc<RecordedEvent>, later: Vec<Arc<RecordedEvent>>, message: String) {
        let f = Failure {
            reason: ParkReason::Failed,
            message,
            wait: Some(Duration::ZERO),
        };
        self.outputs_refused(&e, 1, &f.message);
        // Handled, and to be delivered again: not counted as handled until then.
        uncount_handled(&self.counters, later.len() as u64);
        let mut events = VecDeque::from([e.clone()]);
        events.extend(later);
        if let Some(waiting) = self.retrying.remove(&e.stream) {
            self.deferred -= waiting.events.len();
            events.extend(waiting.events);
        }
        // The attempt made does not use up a retry.
        self.retry(events, 1, 1, &f);
    }

    /// Delivers a polled batch once (see `lanes`): events of streams waiting for a retry join
    /// their queue, events of streams with parked events are parked behind them, a failed event
    /// starts its stream's retries (or is parked when it has none). False when the bus is
    /// shutting down before the whole batch was delivered: the checkpoint then stops at the
    /// first event not delivered.
    async fn handle_batch(&mut self, batch: Vec<RecordedEvent>) -> Result<bool, BusError> {
        let mut parked = Vec::new();
        let mut to_deliver = Vec::with_capacity(batch.len());
        for e in batch {
            if self.dead.was_parked(e.position) || Self::done_earlier(&self.above, e.position) {
                // Parked while an earlier event waited for its retry (so the checkpoint stayed
                // before it), or handled by an earlier run after its checkpoint's position, and
                // read again after a restart.
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
        let mut stopped = false;
        let mut handled = 0;
        let mut parked_now: HashMap<Arc<str>, u64> = HashMap::new();
        let mut done = Vec::new();
        let mut emitted = Vec::new();
        for (e, h) in results {
            match h {
                Handled::Done(outputs) => {
                    handled += 1;
                    if !outputs.is_empty() {
                        emitted.push((e.clone(), outputs));
                    }
                    done.push(e);
                }
                Handled::Failed(f) => {
                    if self.deliverer.gives_up(&f, 1) {
                        parked_now.insert(e.stream.clone(), e.position);
                        parked.push(self.gave_up(&e, f, 1));
                    } else {
                        self.retry(VecDeque::from([e]), 1, 0, &f);
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
                Handled::NotDone => {
                    stopped = true;
                    self.unfinished.push(e.position);
                }
            }
        }
        self.advance(handled, parked, emitted, &done)?;
        self.forget_earlier();
        Ok(!stopped)
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
            above,
            ..
        } = self;
        let check_dead = !dead.letters.is_empty() || !dead.settled.is_empty();
        sub.poll(max, Duration::ZERO, |e| {
            if (check_dead && dead.was_parked(e.position)) || Self::done_earlier(above, e.position)
            {
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
                        start_retry(retrying, deferred, deliverer, events, (1, 0), &fail);
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        let end = self.sub.next_position();
        self.advance(handled, parked, Vec::new(), &[])?;
        self.forget_earlier();
        Ok(end > start)
    }

    /// Puts `events` (the first failed at attempt `attempts`, `free` of which used up no
    /// retry) in the retry set.
    fn retry(
        &mut self,
        events: VecDeque<Arc<RecordedEvent>>,
        attempts: u32,
        free: u32,
        f: &Failure,
    ) {
        let Runner {
            retrying,
            deferred,
            deliverer,
            ..
        } = self;
        start_retry(retrying, deferred, deliverer, events, (attempts, free), f);
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
                let result = match self.deliverer.attempt(&e, attempt).await {
                    Ok(outputs) if outputs.is_empty() => Ok(()),
                    Ok(outputs) => self.store_retried(&outputs, &r.events, &parked, attempt)?,
                    Err(f) => Err(f),
                };
                match result {
                    Ok(()) => {
                        handled += 1;
                        r.events.pop_front();
                        r.attempts = 0;
                        r.free = 0;
                    }
                    Err(f) if self.deliverer.gives_up(&f, attempt - r.free) => {
                        r.events.pop_front();
                        parked.push(self.gave_up(&e, f, attempt));
                        for behind in std::mem::take(&mut r.events) {
                            parked.push(self.held_back(&behind, e.position));
                        }
                    }
                    Err(f) => {
                        self.retry(std::mem::take(&mut r.events), attempt, r.free, &f);
                    }
                }
            }
            if !r.events.is_empty() {
                // Stopping: what is left waits, and the checkpoint stays before it.
                self.deferred += r.events.len();
                self.retrying.insert(stream, r);
            }
        }
        self.advance(handled, parked, Vec::new(), &[])
    }

    /// Writes the outputs of a retried event (the first of `queue`, its stream's events
    /// waiting) with the checkpoint, at once: the rest of `queue` and the events in `parked`
    /// (whose records are written later) stay not done in it. Outputs refused are a failure of
    /// the attempt.
    fn store_retried(
        &mut self,
        outputs: &[Output],
        queue: &VecDeque<Arc<RecordedEvent>>,
        parked: &[Parked],
        attempt: u32,
    ) -> Result<Result<(), Failure>, BusError> {
        let extra: Vec<u64> = queue
            .iter()
            .skip(1)
            .map(|e| e.position)
            .chain(parked.iter().map(|(_, _, p)| *p))
            .collect();
        match self.write_outputs(outputs, |r, parts| r.commit(&extra, &parts))? {
            None => Ok(Ok(())),
            Some(reason) => {
                self.outputs_refused(&queue[0], attempt, &reason);
                Ok(Err(refusal(reason)))
            }
        }
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
            let record = match event_at(self.bus.store(), letter.position)?.map(Arc::new) {
                None => DeadLetterRecord::RedriveFailed {
                    position: letter.position,
                    reason: letter.reason,
                    attempts: 0,
                    last_error: "the event is no longer in the log (deleted or compacted); \
                                 discard it"
                        .into(),
                    at_us: now_us(),
                },
                Some(e) => match self.deliverer.deliver(&e).await {
                    Delivery::Done(attempts, outputs) => {
                        let record = DeadLetterRecord::Redriven {
                            position: letter.position,
                            attempts,
                            at_us: now_us(),
                        };
                        match self.redriven_with(&record, &outputs, &e, attempts)? {
                            None => {
                                Counters::add(&self.counters.redriven);
                                catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
                                continue;
                            }
                            Some(error) => DeadLetterRecord::RedriveFailed {
                                position: letter.position,
                                reason: ParkReason::Failed,
                                attempts,
                                last_error: error,
                                at_us: now_us(),
                            },
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

    /// Writes the `Redriven` record with the outputs of the redriven event in one append.
    /// `Some(error)` when the outputs were refused (nothing was written).
    fn redriven_with(
        &mut self,
        record: &DeadLetterRecord,
        outputs: &[Output],
        event: &RecordedEvent,
        attempts: u32,
    ) -> Result<Option<String>, BusError> {
        let records = [record.to_event()];
        let dlq = self.dlq_stream.clone();
        let reason = self.write_outputs(outputs, |r, parts| {
            let mut parts: Parts<'_> = parts;
            with_records(&mut parts, &dlq, &records);
            let store = r.bus.store();
            disk_wait(store, || store.append_multi(&parts)).map(|_| ())
        })?;
        if let Some(reason) = &reason {
            self.outputs_refused(event, attempts, reason);
        }
        Ok(reason)
    }

    /// Merges a handler's `outputs` and writes them with `write` (which adds what goes with
    /// them): `Some(reason)` when the store refuses them, and nothing was written.
    fn write_outputs<'o>(
        &mut self,
        outputs: &'o [Output],
        write: impl FnOnce(&mut Self, Parts<'o>) -> crate::Result<()>,
    ) -> Result<Option<String>, BusError> {
        let parts = match merge_outputs(outputs.iter()) {
            Ok(parts) => parts,
            Err(reason) => return Ok(Some(reason)),
        };
        match write(self, parts) {
            Ok(()) => Ok(None),
            Err(e) if self.refuses(&e) => {
                Ok(Some(format!("its emitted events were not stored: {e}")))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The dead-letter records of `parked`, and the types of the events they park.
fn split_parked(parked: Vec<Parked>) -> (Vec<EventData>, Vec<Arc<str>>) {
    parked.into_iter().map(|(r, t, _)| (r, t)).unzip()
}

/// Adds the dead-letter `records` (when there are any) to `parts`.
fn with_records<'a>(parts: &mut Parts<'a>, dlq: &'a str, records: &'a [EventData]) {
    if !records.is_empty() {
        parts.push((dlq, ExpectedVersion::Any, Cow::Borrowed(records)));
    }
}

/// Merges a handler's outputs into one part per stream, in the order given. Two outputs to
/// one stream merge when the second's expected version follows the first (or is `Any` or
/// `StreamExists`); otherwise, and for system streams (`$...`), the reason they cannot be
/// stored.
fn merge_outputs<'a>(outputs: impl Iterator<Item = &'a Output>) -> Result<Parts<'a>, String> {
    let mut parts: Parts<'a> = Vec::new();
    for o in outputs {
        if o.events.is_empty() {
            continue;
        }
        if o.stream.starts_with('$') {
            return Err(format!(
                "emitted to {:?}: system streams ($...) are not written by handlers",
                o.stream
            ));
        }
        let Some(part) = parts.iter_mut().find(|(s, _, _)| *s == o.stream) else {
            parts.push((&o.stream, o.expected, Cow::Borrowed(&o.events)));
            continue;
        };
        let n = part.2.len() as u64;
        let after = match part.1 {
            ExpectedVersion::Exact(v) => v.checked_add(n),
            ExpectedVersion::NoStream => Some(n - 1),
            _ => None,
        };
        let follows = match o.expected {
            ExpectedVersion::Any | ExpectedVersion::StreamExists => true,
            ExpectedVersion::Exact(v) => after == Some(v),
            ExpectedVersion::NoStream => false,
        };
        if !follows {
            return Err(format!(
                "emitted to {:?} expecting version {} after {n} events emitted to it expecting {}",
                o.stream, o.expected, part.1
            ));
        }
        part.2.to_mut().extend(o.events.iter().cloned());
    }
    Ok(parts)
}

/// True for a store error that refuses a handler's outputs (a stale expected version or a
/// deleted stream among them, an invalid or too large append, an event id used before), as
/// opposed to a failure of the store or a conflict on the handler's own streams (`own`: its
/// checkpoint and dead-letter streams, written by someone else meanwhile), which stops it.
fn refused_output(e: &crate::Error, own: [&str; 2]) -> bool {
    match e {
        crate::Error::WrongExpectedVersion { stream, .. }
        | crate::Error::StreamDeleted { stream } => !own.contains(&stream.as_str()),
        crate::Error::InvalidArgument(_) | crate::Error::DuplicateEventId { .. } => true,
        _ => false,
    }
}

/// Takes back `n` deliveries counted as handled whose outputs were not stored.
fn uncount_handled(counters: &Counters, n: u64) {
    counters
        .handled
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
            Some(h.saturating_sub(n))
        })
        .ok();
}

/// The failure of an attempt whose outputs were refused.
fn refusal(message: String) -> Failure {
    Failure {
        reason: ParkReason::Failed,
        message,
        wait: None,
    }
}

/// Puts `events` (their first failed with `f` at attempt `attempts`, of which `free` used up no
/// retry) in `retrying`, due after the delay the failure or the backoff gives; `deferred`
/// counts the events waiting.
fn start_retry(
    retrying: &mut HashMap<Arc<str>, Retrying>,
    deferred: &mut usize,
    deliverer: &Deliverer,
    events: VecDeque<Arc<RecordedEvent>>,
    (attempts, free): (u32, u32),
    f: &Failure,
) {
    let first = &events[0];
    let delay = deliverer.retry_delay(f, attempts - free, Backoff::seed(&first.id));
    *deferred += events.len();
    retrying.insert(
        first.stream.clone(),
        Retrying {
            events,
            attempts,
            free,
            due: Instant::now() + delay,
        },
    );
}

/// The dead-letter record of `e` for handler `handler`, given up on after `attempts` attempts.
fn gave_up_record(handler: &str, e: &RecordedEvent, f: Failure, attempts: u32) -> Parked {
    let record = DeadLetterRecord::Parked(letter(handler, e, f.reason, attempts, f.message));
    (record.to_event(), e.event_type.clone(), e.position)
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
    (record.to_event(), e.event_type.clone(), e.position)
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
