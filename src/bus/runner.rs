//! The task that runs one handler: a named subscription (checkpoint `$checkpoint-HANDLER`)
//! delivering in position order, retries with backoff, parking in `$dlq-HANDLER`, redrives.
//!
//! The checkpoint never passes an event that was neither handled nor parked: it is written
//! from the position after the last such event (never the subscription's read position), and a
//! parked record is written together with the checkpoint past it in one `append_multi`. So
//! after any crash every event is handled, parked, or delivered again (at least once).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::bus::EventBus;
use crate::bus::backoff::Backoff;
use crate::bus::context::HandlerContext;
use crate::bus::dead_letter::{
    DeadLetter, DeadLetterRecord, DeadLetterState, ParkReason, dead_letter_stream,
};
use crate::bus::dead_letters::{catch_up, now_us};
use crate::bus::error::BusError;
use crate::bus::handler::{Deliver, Outcome, Selects};
use crate::bus::stats::Counters;
use crate::event::{Direction, EventData, ExpectedVersion, ReadFilter, RecordedEvent};
use crate::store::Store;
use crate::subscription::{Subscription, SubscriptionOptions};

/// How a delivery with its retries ended.
enum Delivery {
    /// Handled or skipped, at this attempt.
    Done(u32),
    /// Still failing after the retries: to park.
    GaveUp {
        reason: ParkReason,
        attempts: u32,
        error: String,
    },
    /// The bus is shutting down; the event was not handled.
    Stopped,
}

/// One failed delivery.
struct Failure {
    reason: ParkReason,
    message: String,
}

pub(crate) struct Runner {
    bus: EventBus,
    name: Arc<str>,
    deliver: Deliver,
    sub: Subscription<Arc<Store>>,
    dlq_stream: String,
    dead: DeadLetterState,
    /// Every event before it was handled or parked.
    done_next: u64,
    since_checkpoint: u64,
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
        deliver: Deliver,
        counters: Arc<Counters>,
        progress: watch::Sender<u64>,
    ) -> Result<Runner, BusError> {
        let filter = match selects {
            Selects::Type(t) => ReadFilter::all().event_types([*t]),
            Selects::All => ReadFilter::all(),
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
        Ok(Runner {
            stop: bus.stop_signal(),
            wake: bus.wake_signal(),
            bus,
            name: Arc::from(name),
            deliver,
            sub,
            dlq_stream,
            dead,
            done_next,
            since_checkpoint: 0,
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
        let batch_events = self.bus.config().batch_events;
        while !self.stopping() {
            self.wake.borrow_and_update();
            catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
            self.redrive().await?;
            if self.stopping() {
                break;
            }
            let batch = self.sub.poll_owned(batch_events, Duration::ZERO)?;
            if batch.is_empty() {
                self.set_done(self.sub.next_position());
                self.checkpoint()?;
                self.idle().await;
                continue;
            }
            for e in batch {
                if self.stopping() {
                    return Ok(());
                }
                if !self.handle_live(e).await? {
                    return Ok(());
                }
            }
            self.set_done(self.sub.next_position());
        }
        Ok(())
    }

    /// Waits for a publish through the bus, the idle poll interval, or the shutdown.
    async fn idle(&mut self) {
        let poll = Duration::from_millis(self.bus.config().idle_poll_ms);
        tokio::select! {
            _ = self.wake.changed() => {}
            _ = self.stop.changed() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }

    fn set_done(&mut self, next: u64) {
        self.done_next = self.done_next.max(next);
        self.progress.send_replace(self.done_next);
    }

    /// Writes the checkpoint if it moved.
    fn checkpoint(&mut self) -> Result<(), BusError> {
        if self.sub.checkpoint_position() != Some(self.done_next) {
            let none: &[(&str, ExpectedVersion, Vec<EventData>)] = &[];
            self.sub.commit_with(self.done_next, none)?;
        }
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Delivers a live event, or parks it behind its stream's parked events. False when the
    /// bus is shutting down before the event was handled.
    async fn handle_live(&mut self, e: RecordedEvent) -> Result<bool, BusError> {
        if let Some(first) = self.dead.first_of(&e.stream) {
            let why = format!("held back behind parked position {first} of its stream");
            self.park(&e, ParkReason::HeldBack, 0, why)?;
            return Ok(true);
        }
        match self.deliver_with_retries(&e).await {
            Delivery::Done(_) => {
                self.set_done(e.position + 1);
                self.since_checkpoint += 1;
                if self.since_checkpoint >= self.bus.config().checkpoint_every_events {
                    self.checkpoint()?;
                }
                Ok(true)
            }
            Delivery::GaveUp {
                reason,
                attempts,
                error,
            } => {
                self.park(&e, reason, attempts, error)?;
                Ok(true)
            }
            Delivery::Stopped => Ok(false),
        }
    }

    /// Records `e` as parked together with the checkpoint past it, in one atomic append.
    fn park(
        &mut self,
        e: &RecordedEvent,
        reason: ParkReason,
        attempts: u32,
        last_error: String,
    ) -> Result<(), BusError> {
        let letter = DeadLetter {
            position: e.position,
            stream: e.stream.to_string(),
            version: e.version,
            event_type: e.event_type.to_string(),
            event_id: e.id.to_string(),
            handler: self.name.to_string(),
            reason,
            attempts,
            last_error,
            parked_at_us: now_us(),
        };
        let record = [DeadLetterRecord::Parked(letter).to_event()];
        self.sub.commit_with(
            e.position + 1,
            &[(self.dlq_stream.as_str(), ExpectedVersion::Any, &record[..])],
        )?;
        Counters::add(&self.counters.parked);
        self.since_checkpoint = 0;
        self.set_done(e.position + 1);
        catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)
    }

    /// Carries out the redrives asked for, each stream's parked events in order.
    async fn redrive(&mut self) -> Result<(), BusError> {
        while let Some(letter) = self.dead.next_redrive().cloned() {
            if self.stopping() {
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
                Some(e) => match self.deliver_with_retries(&e).await {
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
            self.bus.store().append(
                &self.dlq_stream,
                ExpectedVersion::Any,
                &[record.to_event()],
            )?;
            catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
        }
        Ok(())
    }

    /// Delivers `e` until the handler succeeds, the retries run out (parking, when dead letters
    /// are on) or the bus shuts down.
    async fn deliver_with_retries(&mut self, e: &RecordedEvent) -> Delivery {
        let config = self.bus.config();
        let (max_retries, dead_letters, backoff) = (
            config.max_retries,
            config.dead_letter_enabled,
            config.backoff(),
        );
        let seed = Backoff::seed(&e.id);
        let event = Arc::new(e.clone());
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let f = match self.call(&event, attempt).await {
                Ok(Outcome::RetryLater(wait)) => (
                    Failure {
                        reason: ParkReason::RetryLater,
                        message: "the handler asked to retry later".into(),
                    },
                    Some(wait),
                ),
                Ok(outcome) => {
                    let c = match outcome {
                        Outcome::Skip => &self.counters.skipped,
                        _ => &self.counters.handled,
                    };
                    Counters::add(c);
                    return Delivery::Done(attempt);
                }
                Err(f) => (f, None),
            };
            let (failure, wait) = f;
            Counters::add(&self.counters.failures);
            if failure.reason == ParkReason::Panicked {
                Counters::add(&self.counters.panics);
            }
            let out_of_retries = attempt > max_retries || failure.reason == ParkReason::BadPayload;
            if dead_letters && out_of_retries {
                return Delivery::GaveUp {
                    reason: failure.reason,
                    attempts: attempt,
                    error: failure.message,
                };
            }
            let delay = wait.unwrap_or_else(|| backoff.delay(attempt, seed));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => return Delivery::Stopped,
            }
        }
    }

    /// One delivery, in its own task so that a panic is caught and counted as a failure.
    async fn call(&self, event: &Arc<RecordedEvent>, attempt: u32) -> Result<Outcome, Failure> {
        let ctx = HandlerContext::new(self.bus.clone(), self.name.clone(), event.clone(), attempt);
        let deliver = self.deliver.clone();
        let task = tokio::spawn(async move {
            match deliver(ctx) {
                Ok(fut) => fut.await.map_err(|e| Failure {
                    reason: ParkReason::Failed,
                    message: e.to_string(),
                }),
                Err(reason) => Err(Failure {
                    reason: ParkReason::BadPayload,
                    message: format!("payload does not decode: {reason}"),
                }),
            }
        });
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(Failure {
                reason: ParkReason::Panicked,
                message: format!("handler panicked: {}", panic_message(e.into_panic())),
            }),
            Err(e) => Err(Failure {
                reason: ParkReason::Failed,
                message: format!("handler task cancelled: {e}"),
            }),
        }
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

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".into()
    }
}
