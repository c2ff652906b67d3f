//! [`Deliverer`]: one event to one handler, with its retries: each delivery in its own task (a
//! panic is caught and counted as a failure), backoff between them, until the handler succeeds,
//! the retries run out or the bus shuts down.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::Instrument;

use crate::bus::EventBus;
use crate::bus::backoff::Backoff;
use crate::bus::context::HandlerContext;
use crate::bus::dead_letter::ParkReason;
use crate::bus::handler::{Deliver, Outcome};
use crate::bus::stats::Counters;
use crate::event::RecordedEvent;

/// How a delivery with its retries ended.
pub(crate) enum Delivery {
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
pub(crate) struct Failure {
    reason: ParkReason,
    message: String,
}

/// What delivers a handler's events: cheap to clone, one per concurrent stream.
#[derive(Clone)]
pub(crate) struct Deliverer {
    pub bus: EventBus,
    pub name: Arc<str>,
    pub deliver: Deliver,
    pub counters: Arc<Counters>,
    pub stop: watch::Receiver<bool>,
}

impl Deliverer {
    /// Delivers `e` until the handler succeeds, the retries run out (parking, when dead letters
    /// are on) or the bus shuts down.
    pub async fn deliver(&self, e: &RecordedEvent) -> Delivery {
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
            tracing::warn!(
                handler = %self.name,
                stream = %e.stream,
                event_type = %e.event_type,
                position = e.position,
                attempt,
                reason = ?failure.reason,
                error = %failure.message,
                "delivery failed"
            );
            if dead_letters && out_of_retries {
                return Delivery::GaveUp {
                    reason: failure.reason,
                    attempts: attempt,
                    error: failure.message,
                };
            }
            let delay = wait.unwrap_or_else(|| backoff.delay(attempt, seed));
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return Delivery::Stopped,
            }
        }
    }

    /// One delivery, in its own task so that a panic is caught and counted as a failure, inside
    /// a `bus.deliver` span naming the handler, stream, type, position and attempt.
    async fn call(&self, event: &Arc<RecordedEvent>, attempt: u32) -> Result<Outcome, Failure> {
        let span = tracing::info_span!(
            "bus.deliver",
            handler = %self.name,
            stream = %event.stream,
            event_type = %event.event_type,
            position = event.position,
            attempt,
        );
        let ctx = HandlerContext::new(self.bus.clone(), self.name.clone(), event.clone(), attempt);
        let deliver = self.deliver.clone();
        let delivery = async move {
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
        };
        let task = tokio::spawn(delivery.instrument(span));
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

/// The message a panic carries (shared with the saga driver).
pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".into()
    }
}
