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
use crate::bus::config::MAX_BATCH_EVENTS;
use crate::bus::dead_letter::{
    DeadLetter, DeadLetterRecord, DeadLetterState, ParkReason, dead_letter_stream,
};
use crate::bus::dead_letters::{catch_up, now_us};
use crate::bus::delivery::{Deliverer, Delivery};
use crate::bus::error::BusError;
use crate::bus::handler::{Deliver, Selects};
use crate::bus::lanes::{Handled, deliver_batch};
use crate::bus::observer::HandlerObserver;
use crate::bus::stats::Counters;
use crate::event::{Direction, EventData, ExpectedVersion, ReadFilter, RecordedEvent};
use crate::store::Store;
use crate::subscription::{Subscription, SubscriptionOptions};

pub(crate) struct Runner {
    bus: EventBus,
    name: Arc<str>,
    deliverer: Deliverer,
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
        observer: Option<Arc<dyn HandlerObserver>>,
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
        let name: Arc<str> = Arc::from(name);
        let deliverer = Deliverer {
            bus: bus.clone(),
            name: name.clone(),
            deliver,
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
        let batch_events = self.bus.config().batch_events.clamp(1, MAX_BATCH_EVENTS);
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
            if !self.handle_batch(batch).await? {
                return Ok(());
            }
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

    /// Delivers a polled batch (see `lanes`), then records what it parked together with the
    /// checkpoint past the batch, in one atomic append. False when the bus is shutting down
    /// before the whole batch was delivered: the checkpoint then stops at the first event not
    /// delivered, and nothing after it is recorded.
    async fn handle_batch(&mut self, batch: Vec<RecordedEvent>) -> Result<bool, BusError> {
        let end = self.sub.next_position();
        let config = self.bus.config();
        let every = config.checkpoint_every_events;
        let dead = &self.dead;
        let results = deliver_batch(
            &self.deliverer,
            batch,
            |s| dead.first_of(s),
            config.concurrency,
        )
        .await?;
        let cut = results
            .iter()
            .find(|(_, h)| matches!(h, Handled::NotDone))
            .map_or(end, |(e, _)| e.position);
        let mut parked = Vec::new();
        let mut parked_types = Vec::new();
        let mut handled = 0;
        for (e, h) in results.into_iter().take_while(|(e, _)| e.position < cut) {
            match h {
                Handled::Done => handled += 1,
                Handled::Park {
                    reason,
                    attempts,
                    error,
                } => {
                    parked.push(
                        DeadLetterRecord::Parked(self.letter(&e, reason, attempts, error))
                            .to_event(),
                    );
                    parked_types.push(e.event_type.clone());
                }
                Handled::NotDone => unreachable!("cut before the first event not delivered"),
            }
        }
        if parked.is_empty() {
            self.set_done(cut);
            self.since_checkpoint += handled;
            if self.since_checkpoint >= every {
                self.checkpoint()?;
            }
        } else {
            self.sub.commit_with(
                cut,
                &[(self.dlq_stream.as_str(), ExpectedVersion::Any, &parked[..])],
            )?;
            for event_type in &parked_types {
                Counters::add(&self.counters.parked);
                if let Some(o) = &self.deliverer.observer {
                    o.parked(event_type);
                }
            }
            tracing::error!(
                handler = %self.name,
                events = parked.len(),
                dead_letters = %self.dlq_stream,
                "events parked"
            );
            self.since_checkpoint = 0;
            self.set_done(cut);
            catch_up(self.bus.store(), &self.dlq_stream, &mut self.dead)?;
        }
        Ok(cut == end)
    }

    /// The dead letter of `e`.
    fn letter(
        &self,
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
            handler: self.name.to_string(),
            reason,
            attempts,
            last_error,
            parked_at_us: now_us(),
        }
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
                Some(e) => match self.deliverer.deliver(&e).await {
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
}

/// The event at global position `position`, if the log still has it.
fn event_at(store: &Store, position: u64) -> Result<Option<RecordedEvent>, BusError> {
    let e = store
        .read_all(position, Direction::Forward, ReadFilter::all())
        .next()
        .transpose()?;
    Ok(e.filter(|e| e.position == position))
}
