//! [`SagaGauges`]: the hook through which a saga manager reports its counts, so that metrics and
//! health do not depend on it.

/// How many sagas are in each state, as a saga manager reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SagaCounts {
    /// Started and not finished.
    pub active: u64,
    /// Finished with every step done.
    pub completed: u64,
    /// Finished by compensating the steps done.
    pub compensated: u64,
    /// Not moving: a step or a compensation that keeps failing or has waited too long. Any
    /// stuck saga makes the health degraded.
    pub stuck: u64,
}

/// Reports saga counts when metrics are scraped or health is checked. A saga manager
/// implements it (or a closure does: `Fn() -> SagaCounts` implements it), and
/// [`crate::metrics::Monitor::with_sagas`] takes it.
///
/// ```
/// use evlog::metrics::{SagaCounts, SagaGauges};
/// let gauges = || SagaCounts { active: 2, ..SagaCounts::default() };
/// assert_eq!(gauges.saga_counts().active, 2);
/// ```
pub trait SagaGauges: Send + Sync + 'static {
    /// The counts now.
    fn saga_counts(&self) -> SagaCounts;
}

impl<F: Fn() -> SagaCounts + Send + Sync + 'static> SagaGauges for F {
    fn saga_counts(&self) -> SagaCounts {
        self()
    }
}

/// A saga manager's counts ([`crate::saga::SagaManager::counts`]): parked (needs-attention)
/// sagas are the stuck ones.
impl SagaGauges for crate::saga::SagaManager {
    fn saga_counts(&self) -> SagaCounts {
        let c = self.counts();
        SagaCounts {
            active: c.active,
            completed: c.completed,
            compensated: c.compensated,
            stuck: c.needs_attention,
        }
    }
}
