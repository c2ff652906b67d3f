//! [`Deliverer`]: one event to one handler: one attempt (a panic is caught and counted as a
//! failure), the retry decision and delay, or (for redrives) attempts with the backoff between
//! them until the handler succeeds, the retries run out or the bus shuts down.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use crate::bus::EventBus;
use crate::bus::backoff::Backoff;
use crate::bus::context::{HandlerContext, Output};
use crate::bus::dead_letter::ParkReason;
use crate::bus::handler::{HandlerFn, HandlerFuture, HandlerResult, Outcome, RefDeliver};
use crate::bus::observer::{Attempt, HandlerObserver};
use crate::bus::stats::Counters;
use crate::event::ReadFilter;
use crate::event::RecordedEvent;
use crate::store::EventRef;
use uuid::Uuid;

/// How a delivery with its retries ended.
pub(crate) enum Delivery {
    /// Handled or skipped, at this attempt, with the events the handler emitted.
    Done(u32, Vec<Output>),
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
    pub reason: ParkReason,
    pub message: String,
    /// The delay the handler asked for ([`Outcome::RetryLater`]), if it did.
    pub wait: Option<Duration>,
}

/// What delivers a handler's events: cheap to clone, one per concurrent stream.
#[derive(Clone)]
pub(crate) struct Deliverer {
    pub bus: EventBus,
    pub name: Arc<str>,
    pub handler: HandlerFn,
    pub counters: Arc<Counters>,
    pub observer: Option<Arc<dyn HandlerObserver>>,
    pub stop: watch::Receiver<bool>,
}

impl Deliverer {
    /// Delivers `e` until the handler succeeds, the retries run out (parking, when dead letters
    /// are on) or the bus shuts down, waiting out the backoff between attempts here. Redrives
    /// use it; the handler's own deliveries wait for their retries in the runner instead, so
    /// that other streams go on meanwhile.
    pub async fn deliver(&self, e: &Arc<RecordedEvent>) -> Delivery {
        let seed = Backoff::seed(&e.id);
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let failure = match self.attempt(e, attempt).await {
                Ok(outputs) => return Delivery::Done(attempt, outputs),
                Err(f) => f,
            };
            if self.gives_up(&failure, attempt) {
                return Delivery::GaveUp {
                    reason: failure.reason,
                    attempts: attempt,
                    error: failure.message,
                };
            }
            let delay = self.retry_delay(&failure, attempt, seed);
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return Delivery::Stopped,
            }
        }
    }

    /// True when `failure` at attempt `attempt` (1 for the first delivery) is the last: the
    /// retries ran out or the payload does not decode, and dead letters are on. With dead
    /// letters off, an event is retried until it is handled.
    pub fn gives_up(&self, failure: &Failure, attempt: u32) -> bool {
        let config = self.bus.config();
        config.dead_letter_enabled
            && (attempt > config.max_retries || failure.reason == ParkReason::BadPayload)
    }

    /// How long to wait after `failure` at attempt `attempt` before the next: what the handler
    /// asked for, or the backoff's delay.
    pub fn retry_delay(&self, failure: &Failure, attempt: u32, seed: u64) -> Duration {
        failure
            .wait
            .unwrap_or_else(|| self.bus.config().backoff().delay(attempt, seed))
    }

    /// One delivery of `e` (attempt number `attempt`), counted; a failure is logged. Returns
    /// the events the handler emitted ([`HandlerContext::emit`]).
    pub async fn attempt(
        &self,
        e: &Arc<RecordedEvent>,
        attempt: u32,
    ) -> Result<Vec<Output>, Failure> {
        let start = self.observer.as_ref().map(|_| std::time::Instant::now());
        let (r, outputs) = match &self.handler {
            HandlerFn::Async(_) => self.call(e, attempt).await,
            HandlerFn::Ref(f) => (self.call_ref_at(f, e.position, attempt), Vec::new()),
        };
        self.observe(&e.event_type, attempt, &r, start);
        self.count(&e.stream, &e.event_type, e.position, attempt, r)
            .map(|()| outputs)
    }

    /// One delivery of the borrowed `e` to a handler of borrowed events, counted; a failure
    /// is logged.
    pub fn attempt_ref(
        &self,
        f: &RefDeliver,
        e: &EventRef<'_>,
        attempt: u32,
    ) -> Result<(), Failure> {
        let start = self.observer.as_ref().map(|_| std::time::Instant::now());
        let r = call_ref(&self.name, f, e, attempt);
        self.observe(e.event_type, attempt, &r, start);
        self.count(e.stream, e.event_type, e.position, attempt, r)
    }

    /// Reports an attempt that started at `start` to the observer, when there is one.
    fn observe(
        &self,
        event_type: &str,
        attempt: u32,
        r: &Result<Outcome, Failure>,
        start: Option<std::time::Instant>,
    ) {
        if let (Some(o), Some(start)) = (&self.observer, start) {
            let outcome = match r {
                Ok(Outcome::Handled) => Attempt::Handled,
                Ok(Outcome::Skip) => Attempt::Skipped,
                Ok(Outcome::RetryLater(_)) | Err(_) => Attempt::Failed,
            };
            o.delivered(event_type, attempt, outcome, start.elapsed());
        }
    }

    /// The event at `position`, read again (borrowed) for another attempt of a handler of
    /// borrowed events.
    fn call_ref_at(&self, f: &RefDeliver, position: u64, attempt: u32) -> Result<Outcome, Failure> {
        let mut r = Err(failure(
            ParkReason::Failed,
            format!("event {position} is no longer in the log"),
        ));
        let read = self
            .bus
            .store()
            .replay(position, position + 1, &ReadFilter::all(), |e| {
                r = call_ref(&self.name, f, e, attempt);
                std::ops::ControlFlow::Break(())
            });
        if let Err(err) = read {
            return Err(failure(
                ParkReason::Failed,
                format!("reading event {position}: {err}"),
            ));
        }
        r
    }

    /// Counts what came of an attempt; logs a failure.
    fn count(
        &self,
        stream: &str,
        event_type: &str,
        position: u64,
        attempt: u32,
        r: Result<Outcome, Failure>,
    ) -> Result<(), Failure> {
        let failure = match r {
            Ok(Outcome::RetryLater(wait)) => Failure {
                reason: ParkReason::RetryLater,
                message: "the handler asked to retry later".into(),
                wait: Some(wait),
            },
            Ok(outcome) => {
                let c = match outcome {
                    Outcome::Skip => &self.counters.skipped,
                    _ => &self.counters.handled,
                };
                Counters::add(c);
                return Ok(());
            }
            Err(f) => f,
        };
        Counters::add(&self.counters.failures);
        if failure.reason == ParkReason::Panicked {
            Counters::add(&self.counters.panics);
        }
        tracing::warn!(
            handler = %self.name,
            stream = %stream,
            event_type = %event_type,
            position,
            attempt,
            reason = ?failure.reason,
            error = %failure.message,
            "delivery failed"
        );
        Err(failure)
    }

    /// One call of the handler, on the delivering task, inside a `bus.deliver` span naming the
    /// handler, stream, type, position and attempt, with what it emitted. A panic, in the call
    /// or in the future it returns, is caught and is a failure.
    async fn call(
        &self,
        event: &Arc<RecordedEvent>,
        attempt: u32,
    ) -> (Result<Outcome, Failure>, Vec<Output>) {
        let ctx = HandlerContext::new(self.bus.clone(), self.name.clone(), event.clone(), attempt);
        let outputs = ctx.outputs();
        let r = self.call_with(event, attempt, ctx).await;
        // Only a handled event's outputs are stored: a failed attempt's are dropped (the retry
        // emits again), and so are those of an event the handler skipped.
        let outputs = std::mem::take(&mut *outputs.lock());
        match r {
            Ok(Outcome::Handled) => (r, outputs),
            _ => (r, Vec::new()),
        }
    }

    async fn call_with(
        &self,
        event: &Arc<RecordedEvent>,
        attempt: u32,
        ctx: HandlerContext,
    ) -> Result<Outcome, Failure> {
        let span = tracing::info_span!(
            "bus.deliver",
            handler = %self.name,
            stream = %event.stream,
            event_type = %event.event_type,
            position = event.position,
            attempt,
        );
        let HandlerFn::Async(deliver) = &self.handler else {
            unreachable!("called for async handlers only");
        };
        let cause = (event.id, ctx.correlation_id());
        let started = {
            let _in = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| with_cause(cause, || deliver(ctx))))
        };
        let fut = match started {
            Ok(Ok(fut)) => fut,
            Ok(Err(reason)) => {
                return Err(failure(
                    ParkReason::BadPayload,
                    format!("payload does not decode: {reason}"),
                ));
            }
            Err(p) => return Err(panicked(p)),
        };
        match (CatchUnwind { fut, cause }).instrument(span).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(failure(ParkReason::Failed, e.to_string())),
            Err(p) => Err(panicked(p)),
        }
    }
}

/// One call of a handler of borrowed events, inside a `bus.deliver` span; a panic is caught and
/// is a failure.
fn call_ref(
    name: &str,
    f: &RefDeliver,
    e: &EventRef<'_>,
    attempt: u32,
) -> Result<Outcome, Failure> {
    let span = tracing::info_span!(
        "bus.deliver",
        handler = %name,
        stream = %e.stream,
        event_type = %e.event_type,
        position = e.position,
        attempt,
    );
    let _in = span.enter();
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(e, attempt))) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(err)) => Err(failure(ParkReason::Failed, err.to_string())),
        Err(p) => Err(panicked(p)),
    }
}

fn failure(reason: ParkReason, message: String) -> Failure {
    Failure {
        reason,
        message,
        wait: None,
    }
}

fn panicked(p: Box<dyn std::any::Any + Send>) -> Failure {
    failure(
        ParkReason::Panicked,
        format!("handler panicked: {}", panic_message(p)),
    )
}

/// A handler's future, polled with panics caught (the delivering task goes on after a handler
/// panics, without a task of its own per delivery) and with its event as the thread's cause.
struct CatchUnwind {
    fut: HandlerFuture,
    cause: (Uuid, Uuid),
}

thread_local! {
    /// The event whose handler runs on this thread, now: its id and its correlation id.
    static CAUSE: Cell<Option<(Uuid, Uuid)>> = const { Cell::new(None) };
}

/// Runs `f` with `cause` (an event's id and correlation id) as the thread's cause, and puts the
/// cause it had back after, even when `f` panics.
fn with_cause<R>(cause: (Uuid, Uuid), f: impl FnOnce() -> R) -> R {
    struct Restore(Option<(Uuid, Uuid)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAUSE.set(self.0);
        }
    }
    let _restore = Restore(CAUSE.replace(Some(cause)));
    f()
}

/// The id and correlation id of the event whose async handler is being polled on this thread:
/// what [`EventBus::publish`] called from inside a handler sets as causation and correlation.
pub(crate) fn current_cause() -> Option<(Uuid, Uuid)> {
    CAUSE.get()
}

impl Future for CatchUnwind {
    type Output = Result<HandlerResult, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let cause = self.cause;
        let fut = &mut self.fut;
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
            with_cause(cause, || fut.as_mut().poll(cx))
        })) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(p) => Poll::Ready(Err(p)),
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
