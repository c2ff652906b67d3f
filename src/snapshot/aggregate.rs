//! Aggregates: state folded from a stream's events, loaded from the newest usable snapshot plus
//! the events after it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::event::{Direction, RecordedEvent};
use crate::store::Store;

use super::format::MAX_SNAPSHOT_BYTES;
use super::reason::{IgnoredReason, IgnoredSnapshot};
use super::store::{SnapshotInfo, SnapshotStore};

/// State folded from the events of one stream. Its serde form (bincode 2, standard
/// configuration) is what a snapshot stores.
///
/// ```
/// use evlog::RecordedEvent;
/// use evlog::snapshot::Aggregate;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct OrderTotal { total: u64, events: u64 }
///
/// impl Aggregate for OrderTotal {
///     const SCHEMA_VERSION: u32 = 1;
///     fn apply(&mut self, event: &RecordedEvent) {
///         self.events += 1;
///         self.total += event.payload.len() as u64;
///     }
/// }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// Version of the state's serialized form. Change it whenever the state's fields or their
    /// meaning change: snapshots of another schema version are ignored and the state is
    /// rebuilt from the events.
    const SCHEMA_VERSION: u32;

    /// Applies one event (events come in version order, each once).
    fn apply(&mut self, event: &RecordedEvent);
}

/// An aggregate loaded by [`SnapshotStore::load`] or [`SnapshotStore::load_and_snapshot`].
#[derive(Debug)]
pub struct Loaded<A> {
    /// The state after the stream's last event.
    pub state: A,
    /// Version of the last event the state includes (`None`: the stream has no events).
    pub version: Option<u64>,
    /// Events applied on top of the snapshot (all of them when none was used).
    pub events_applied: u64,
    /// Version of the snapshot the load started from, if one was used.
    pub snapshot_version: Option<u64>,
    /// Newer snapshot files that were skipped, newest first, each with its reason.
    pub ignored: Vec<IgnoredSnapshot>,
    /// Version of the snapshot this load saved, if it saved one.
    pub snapshot_saved: Option<u64>,
    /// Why saving a snapshot failed, if it did. The state is still correct: a snapshot is only
    /// a cache, so a failed save does not fail the load.
    pub snapshot_error: Option<Error>,
}

impl<A> Loaded<A> {
    /// True when the load started from a snapshot.
    pub fn used_snapshot(&self) -> bool {
        self.snapshot_version.is_some()
    }

    /// Why the newest snapshot was ignored, if it was.
    pub fn snapshot_ignored(&self) -> Option<IgnoredReason> {
        self.ignored.first().map(|i| i.reason)
    }
}

/// The bincode configuration of snapshot states: standard, and never reading past
/// [`MAX_SNAPSHOT_BYTES`] whatever a length prefix says.
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_SNAPSHOT_BYTES>()
}

/// Serializes a state as a snapshot stores it.
///
/// Errors: [`Error::InvalidArgument`] when the state does not serialize or is over
/// [`MAX_SNAPSHOT_BYTES`].
pub fn encode_state<A: Aggregate>(state: &A) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(state, bincode_config())
        .map_err(|e| Error::InvalidArgument(format!("aggregate state does not serialize: {e}")))
}

/// Deserializes a state; every byte must be used.
pub fn decode_state<A: Aggregate>(bytes: &[u8]) -> std::result::Result<A, IgnoredReason> {
    match bincode::serde::decode_from_slice::<A, _>(bytes, bincode_config()) {
        Ok((state, used)) if used == bytes.len() => Ok(state),
        _ => Err(IgnoredReason::Deserialize),
    }
}

impl SnapshotStore {
    /// Loads aggregate `A` of `stream`: the newest usable snapshot (one that passes every
    /// check, of `A::SCHEMA_VERSION`, not past the stream's end), then only the events after
    /// it. Snapshots that cannot be used are skipped and reported in [`Loaded::ignored`];
    /// with none usable the state is rebuilt from every event. Never writes.
    ///
    /// Errors: [`Error::Io`] (reading the snapshot directory or the log), and whatever reading
    /// the stream returns.
    pub fn load<A: Aggregate>(&self, store: &Store, stream: &str) -> Result<Loaded<A>> {
        self.load_to(store, stream, store.stream_version(stream))
    }

    /// The state of aggregate `A` of `stream` after its event `to` (`None`: no event), from the
    /// newest usable snapshot at or before `to` and the events after it up to `to`.
    pub(super) fn load_to<A: Aggregate>(
        &self,
        store: &Store,
        stream: &str,
        to: Option<u64>,
    ) -> Result<Loaded<A>> {
        let super::store::Found { found, ignored } =
            self.find(stream, A::SCHEMA_VERSION, to, |_: &SnapshotInfo, bytes| {
                decode_state::<A>(&bytes)
            })?;
        let (mut state, snapshot_version) = match found {
            Some((info, state)) => (state, Some(info.version)),
            None => (A::default(), None),
        };
        let mut version = snapshot_version;
        let mut events_applied = 0;
        if let (Some(from), Some(to)) = (version.map_or(Some(0), |v| v.checked_add(1)), to)
            && from <= to
        {
            let limit = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
            for event in store.read_stream(stream, from, Direction::Forward, limit) {
                let event = event?;
                if event.version > to {
                    break;
                }
                debug_assert_eq!(event.version, version.map_or(0, |v| v + 1));
                state.apply(&event);
                version = Some(event.version);
                events_applied += 1;
            }
        }
        Ok(Loaded {
            state,
            version,
            events_applied,
            snapshot_version,
            ignored,
            snapshot_saved: None,
            snapshot_error: None,
        })
    }

    /// [`SnapshotStore::load`], then, when the load applied at least the policy's
    /// `interval_versions` events (and that is not 0), saves a snapshot of the loaded state.
    /// A failed save is reported in [`Loaded::snapshot_error`], not returned.
    ///
    /// Errors: as [`SnapshotStore::load`].
    pub fn load_and_snapshot<A: Aggregate>(
        &self,
        store: &Store,
        stream: &str,
    ) -> Result<Loaded<A>> {
        let mut loaded = self.load::<A>(store, stream)?;
        let interval = self.policy().interval_versions;
        if let Some(version) = loaded.version
            && interval > 0
            && !store.is_read_only()
            && loaded.events_applied >= interval
        {
            match self.save_state(stream, version, &loaded.state) {
                Ok(_) => loaded.snapshot_saved = Some(version),
                Err(e) => loaded.snapshot_error = Some(e),
            }
        }
        Ok(loaded)
    }

    /// Saves `state`, the state of aggregate `A` of `stream` after its event `version`.
    ///
    /// Errors: as [`SnapshotStore::save`], and [`Error::InvalidArgument`] when the state does
    /// not serialize.
    pub fn save_state<A: Aggregate>(
        &self,
        stream: &str,
        version: u64,
        state: &A,
    ) -> Result<SnapshotInfo> {
        let bytes = encode_state(state)?;
        self.save(stream, version, A::SCHEMA_VERSION, &bytes)
    }
}
