//! [`Health`]: ok, degraded or failing, with the reasons.

use serde::Serialize;

/// Overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything is as it should be.
    Ok,
    /// Working, but something needs an operator: parked events, a lagging subscription, stuck
    /// sagas, a disk filling up.
    Degraded,
    /// Not working: the store is poisoned (appends fail until it is reopened) or the disk is
    /// full.
    Failing,
}

impl Status {
    /// 0 ok, 1 degraded, 2 failing (the `evlog_health_status` gauge).
    pub fn code(self) -> i64 {
        match self {
            Status::Ok => 0,
            Status::Degraded => 1,
            Status::Failing => 2,
        }
    }
}

/// One check that is not ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check: `store`, `disk`, `subscription_lag`, `dead_letters`, `sagas`.
    pub check: &'static str,
    /// Degraded or failing.
    pub status: Status,
    /// What is wrong, for an operator.
    pub message: String,
}

/// The health report: the worst status of the checks, and every check that is not ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The worst status found.
    pub status: Status,
    /// The checks that are not ok (empty when the status is ok).
    pub reasons: Vec<Check>,
}

/// Thresholds of the health checks.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// A named subscription more events than this behind the head makes the health degraded
    /// (10,000).
    pub max_lag_events: u64,
    /// More parked events than this in one handler's dead-letter stream make the health
    /// degraded (0: any parked event does).
    pub max_dead_letters: u64,
    /// Less available disk than this share of the file system makes the health degraded (0.10).
    pub disk_degraded_ratio: f64,
    /// Less available disk than this share makes it failing (0.02).
    pub disk_failing_ratio: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            max_lag_events: 10_000,
            max_dead_letters: 0,
            disk_degraded_ratio: 0.10,
            disk_failing_ratio: 0.02,
        }
    }
}

impl Health {
    pub(crate) fn from_checks(reasons: Vec<Check>) -> Health {
        let status = reasons.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
        Health { status, reasons }
    }
}
