//! When snapshots are taken and how long they are kept.

use std::time::Duration;

use crate::error::{Error, Result};

/// Environment variable that sets [`SnapshotPolicy::interval_versions`].
pub const SNAPSHOT_INTERVAL_VERSIONS_ENV: &str = "SNAPSHOT_INTERVAL_VERSIONS";

/// Environment variable that sets [`SnapshotPolicy::retention`], in whole days.
pub const SNAPSHOT_RETENTION_DAYS_ENV: &str = "SNAPSHOT_RETENTION_DAYS";

/// Default snapshot interval: a load replays at most about this many events past a snapshot.
/// 100 keeps replay short while writing one snapshot per hundred events.
pub const SNAPSHOT_INTERVAL_VERSIONS_DEFAULT: u64 = 100;

/// Default retention of superseded snapshots, in days.
pub const SNAPSHOT_RETENTION_DAYS_DEFAULT: u64 = 30;

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// When [`SnapshotStore::load_and_snapshot`](super::SnapshotStore::load_and_snapshot) writes a
/// snapshot, and what [`SnapshotStore::prune`](super::SnapshotStore::prune) deletes.
///
/// ```
/// use evlog::snapshot::SnapshotPolicy;
/// let p = SnapshotPolicy::from_lookup(|name| match name {
///     "SNAPSHOT_INTERVAL_VERSIONS" => Some("50".to_string()),
///     _ => None,
/// })?;
/// assert_eq!(p.interval_versions, 50);
/// assert_eq!(p.retention, SnapshotPolicy::default().retention);
/// # Ok::<(), evlog::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// A load that applied at least this many events on top of its starting point (the snapshot
    /// it used, or the start of the stream) saves a new snapshot. 0 turns automatic snapshots
    /// off.
    pub interval_versions: u64,
    /// Snapshots older than this are deleted by `prune`, except the latest of each stream.
    pub retention: Duration,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            interval_versions: SNAPSHOT_INTERVAL_VERSIONS_DEFAULT,
            retention: Duration::from_secs(SNAPSHOT_RETENTION_DAYS_DEFAULT * SECONDS_PER_DAY),
        }
    }
}

impl SnapshotPolicy {
    /// The defaults, overridden by `SNAPSHOT_INTERVAL_VERSIONS` and `SNAPSHOT_RETENTION_DAYS`
    /// when they are set and not blank.
    ///
    /// Errors: [`Error::InvalidArgument`] naming the variable when a value is not a whole
    /// number (or the retention overflows).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`SnapshotPolicy::from_env`], reading variables through `lookup` (for tests and for
    /// configuration that does not come from the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut p = SnapshotPolicy::default();
        if let Some(n) = parse_var(&lookup, SNAPSHOT_INTERVAL_VERSIONS_ENV, "versions")? {
            p.interval_versions = n;
        }
        if let Some(days) = parse_var(&lookup, SNAPSHOT_RETENTION_DAYS_ENV, "days")? {
            let secs = days.checked_mul(SECONDS_PER_DAY).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{SNAPSHOT_RETENTION_DAYS_ENV}={days} is too large; use a number of days \
                     such as {SNAPSHOT_RETENTION_DAYS_DEFAULT}"
                ))
            })?;
            p.retention = Duration::from_secs(secs);
        }
        Ok(p)
    }
}

fn parse_var(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    unit: &str,
) -> Result<Option<u64>> {
    let Some(raw) = lookup(name) else {
        return Ok(None);
    };
    let v = raw.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>().map(Some).map_err(|_| {
        Error::InvalidArgument(format!(
            "{name}={raw:?} is not a whole number of {unit}; set it to e.g. 100 or unset it"
        ))
    })
}
