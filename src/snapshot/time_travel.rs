//! Time travel: an aggregate as it was at an earlier version of its stream, or at an earlier
//! time (the original design's `EventReplayService` "time-travel debugging").

use std::ops::ControlFlow;

use crate::error::Result;
use crate::store::Store;

use super::aggregate::{Aggregate, Loaded};
use super::reason::IgnoredReason;
use super::store::SnapshotStore;

/// A point in a stream's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// After the event of this version (past the stream's end: its end).
    Version(u64),
    /// After the last event appended at or before this time, in microseconds since the Unix
    /// epoch: the events are taken in version order up to the first one stamped later.
    TimeUs(u64),
}

impl SnapshotStore {
    /// Aggregate `A` of `stream` as it was at `at`: from the newest usable snapshot at or before
    /// that point (never a newer one), then the events after the snapshot up to the point.
    /// [`Loaded::version`] is the last event included (`None`: none was, the default state).
    /// Snapshots after the point are passed over without being reported in
    /// [`Loaded::ignored`]. Never writes.
    ///
    /// ```
    /// use evlog::{EventData, ExpectedVersion, RecordedEvent, Store};
    /// use evlog::snapshot::{Aggregate, At, SnapshotStore};
    ///
    /// #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// struct Count(u64);
    /// impl Aggregate for Count {
    ///     const SCHEMA_VERSION: u32 = 1;
    ///     fn apply(&mut self, _event: &RecordedEvent) { self.0 += 1; }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let events: Vec<_> = (0..30).map(|_| EventData::new("Tick", Vec::new())).collect();
    /// store.append("clock", ExpectedVersion::NoStream, &events)?;
    /// let snapshots = SnapshotStore::open(&store);
    /// snapshots.save_state("clock", 19, &Count(20))?;
    ///
    /// let then = snapshots.load_at::<Count>(&store, "clock", At::Version(24))?;
    /// assert_eq!((then.state.0, then.version, then.snapshot_version), (25, Some(24), Some(19)));
    /// let early = snapshots.load_at::<Count>(&store, "clock", At::Version(5))?;
    /// assert_eq!((early.state.0, early.snapshot_version), (6, None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Errors: as [`SnapshotStore::load`].
    pub fn load_at<A: Aggregate>(&self, store: &Store, stream: &str, at: At) -> Result<Loaded<A>> {
        let current = store.stream_version(stream);
        let to = match at {
            At::Version(v) => current.map(|c| c.min(v)),
            At::TimeUs(t) => version_at_time(store, stream, t)?,
        };
        let mut loaded = self.load_to::<A>(store, stream, to)?;
        loaded
            .ignored
            .retain(|i| i.reason != IgnoredReason::VersionAhead);
        Ok(loaded)
    }
}

/// The version of the last event of `stream` before the first one stamped after `t`.
fn version_at_time(store: &Store, stream: &str, t: u64) -> Result<Option<u64>> {
    let mut last = None;
    store.replay_stream(stream, 0, |e| {
        if e.timestamp_us > t {
            return ControlFlow::Break(());
        }
        last = Some(e.version);
        ControlFlow::Continue(())
    })?;
    Ok(last)
}
