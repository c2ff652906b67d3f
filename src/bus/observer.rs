//! [`BusObserver`]: what the bus reports as it works (publishes, deliveries, parked events), for
//! metrics. The bus holds at most one, set by [`crate::bus::EventBus::with_observer`]; without
//! one, nothing is timed or reported.
//!
//! A handler's observer ([`BusObserver::handler`]) is asked for once, when the handler is
//! registered, so that what it reports per delivery can be kept by the observer without
//! looking the handler up.

use std::sync::Arc;
use std::time::Duration;

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The handler handled the event.
    Handled,
    /// The handler skipped it.
    Skipped,
    /// It failed: an error, a panic, a payload that does not decode, or "retry later".
    Failed,
}

/// Receives what the bus does. Calls come from the bus's tasks, concurrently: keep them short.
pub trait BusObserver: Send + Sync + 'static {
    /// `events` (`bytes` of payload) were appended by one [`crate::bus::EventBus::publish`],
    /// which took `elapsed` (durable when it returned).
    fn published(&self, events: usize, bytes: u64, elapsed: Duration);

    /// The observer of the handler `name`, asked for once when it is registered.
    fn handler(&self, name: &str) -> Arc<dyn HandlerObserver>;
}

/// Receives what one handler does.
pub trait HandlerObserver: Send + Sync + 'static {
    /// One delivery of an event of type `event_type` (attempt 1 is the first; later ones are
    /// retries, redrives start at 1 again) ended as `result` after `elapsed` in the handler.
    fn delivered(&self, event_type: &str, attempt: u32, result: Attempt, elapsed: Duration);

    /// An event of type `event_type` was parked in the dead-letter stream.
    fn parked(&self, event_type: &str);
}
