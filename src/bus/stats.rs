//! [`HandlerStats`]: what a handler has done since the bus started it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of one handler since it was registered on this bus (not persisted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Events handled ([`crate::bus::Outcome::Handled`]), redriven ones included.
    pub handled: u64,
    /// Events the handler skipped ([`crate::bus::Outcome::Skip`]).
    pub skipped: u64,
    /// Failed deliveries: errors, panics, undecodable payloads and "retry later" answers.
    pub failures: u64,
    /// Of those, panics.
    pub panics: u64,
    /// Events parked in the dead-letter stream, held-back ones included.
    pub parked: u64,
    /// Parked events handled by a redrive.
    pub redriven: u64,
}

/// The live counters behind [`HandlerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub handled: AtomicU64,
    pub skipped: AtomicU64,
    pub failures: AtomicU64,
    pub panics: AtomicU64,
    pub parked: AtomicU64,
    pub redriven: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HandlerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HandlerStats {
            handled: get(&self.handled),
            skipped: get(&self.skipped),
            failures: get(&self.failures),
            panics: get(&self.panics),
            parked: get(&self.parked),
            redriven: get(&self.redriven),
        }
    }
}
