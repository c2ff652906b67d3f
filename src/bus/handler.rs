//! What a handler returns, and handlers as the bus stores them: one erased function per
//! registration, whatever the event type and whether the user's function is async or blocking.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::context::HandlerContext;
use crate::bus::event::DomainEvent;
use crate::event::RecordedEvent;
use crate::store::EventRef;

/// What a handler did with an event, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: the handler's checkpoint may move past it.
    Handled,
    /// Not for this handler: passed over, counted as skipped.
    Skip,
    /// Not now (a resource is not ready): delivered again after this delay. It counts as an
    /// attempt, so an event that asks for it more than `max_retries` times is parked.
    RetryLater(Duration),
}

/// A handler's error: any error type (`?` converts it), or a message (`"...".into()`). The
/// event is retried with backoff, then parked.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// What a handler returns.
pub type HandlerResult = Result<Outcome, HandlerError>;

/// A boxed handler future.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// A registered handler: called once per delivery with the context (which holds the event).
/// `Err` is a payload that does not decode, with the reason.
pub(crate) type Deliver =
    Arc<dyn Fn(HandlerContext) -> Result<HandlerFuture, String> + Send + Sync>;

/// A handler of borrowed events, called on the handler's task, synchronously, with the
/// attempt number.
pub(crate) type RefDeliver = Arc<dyn Fn(&EventRef<'_>, u32) -> HandlerResult + Send + Sync>;

/// A registered handler: async over owned events, or synchronous over borrowed ones.
#[derive(Clone)]
pub(crate) enum HandlerFn {
    Async(Deliver),
    Ref(RefDeliver),
}

/// Which events a handler receives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selects {
    /// Events of one type.
    Type(&'static str),
    /// Every event of the user streams.
    All,
    /// The events of the user streams that pass a filter.
    Filter(crate::event::ReadFilter),
}

/// An async handler of the typed events `E`.
pub(crate) fn typed<E, F, Fut>(f: F) -> Deliver
where
    E: DomainEvent,
    F: Fn(HandlerContext, E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |ctx: HandlerContext| {
        let event = E::decode(&ctx.event().payload)?;
        Ok(Box::pin(f(ctx, event)) as HandlerFuture)
    })
}

/// An async handler of every event, as stored (shared with the context, not copied).
pub(crate) fn untyped<F, Fut>(f: F) -> Deliver
where
    F: Fn(HandlerContext, Arc<RecordedEvent>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |ctx: HandlerContext| {
        let event = ctx.shared_event();
        Ok(Box::pin(f(ctx, event)) as HandlerFuture)
    })
}

/// A blocking handler of the typed events `E`, run on tokio's blocking threads. Its panic is
/// carried to the delivering task, which counts it as a failure.
pub(crate) fn blocking<E, F>(f: F) -> Deliver
where
    E: DomainEvent,
    F: Fn(&HandlerContext, E) -> HandlerResult + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: HandlerContext| {
        let event = E::decode(&ctx.event().payload)?;
        let f = f.clone();
        Ok(Box::pin(async move {
            match tokio::task::spawn_blocking(move || f(&ctx, event)).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(format!("blocking handler cancelled: {e}").into()),
            }
        }) as HandlerFuture)
    })
}
