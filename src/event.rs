//! The data an application appends and reads back.

use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Metadata carried with every event: correlation and causation ids (for tracing a chain of
/// events through sagas and handlers) and free user key/values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Id shared by every event of one business operation.
    pub correlation_id: Option<Uuid>,
    /// Id of the event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// User key/values ("user_id", "source", ...).
    pub extra: BTreeMap<String, String>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Adds a user key/value.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// An event to append. Every event has an id; [`EventData::new`] generates a random one, and
/// [`EventData::with_id`] sets the caller's (re-sending the same ids makes an append idempotent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    /// Unique id of the event.
    pub id: Uuid,
    /// Type name, e.g. `"AIResultCompletedEvent"`. Must not be empty.
    pub event_type: String,
    /// Opaque payload bytes (JSON, bincode, ...). May be empty.
    pub payload: Vec<u8>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
}

impl EventData {
    /// An event with a fresh random id and empty metadata.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        EventData {
            id: Uuid::new_v4(),
            event_type: event_type.into(),
            payload: payload.into(),
            metadata: Metadata::default(),
        }
    }

    /// Replaces the id.
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// An event as stored: the appended data plus where and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The stream (aggregate) it belongs to.
    pub stream: Arc<str>,
    /// Its version in the stream: 0 for the stream's first event, then dense.
    pub version: u64,
    /// Its global position: 0 for the store's first event, then dense across all streams.
    pub position: u64,
    /// Time of the append, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Unique id.
    pub id: Uuid,
    /// Type name.
    pub event_type: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Metadata.
    pub metadata: Metadata,
}

/// The optimistic-concurrency condition of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// True when a stream whose last version is `actual` (None: no events) satisfies this.
    pub fn matches(&self, actual: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(*v),
        }
    }
}

/// What an append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Global position of the first appended event.
    pub first_position: u64,
    /// Global position of the last appended event.
    pub last_position: u64,
    /// Version of the stream's last event now: pass it as `ExpectedVersion::Exact` next time.
    pub next_expected_version: u64,
}

/// Direction of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// Which events `read_all` returns. The default lets every event through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// Only events whose type is one of these (all types when `None`).
    pub event_types: Option<Vec<String>>,
    /// Only events whose stream id starts with this.
    pub stream_prefix: Option<String>,
}

impl ReadFilter {
    /// A filter that lets every event through.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these event types.
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Only streams whose id starts with `prefix`.
    pub fn stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.stream_prefix = Some(prefix.into());
        self
    }

    /// True when an event whose stream id and type have these bytes passes.
    pub fn matches_bytes(&self, stream: &[u8], event_type: &[u8]) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t.as_bytes() == event_type))
            && self
                .stream_prefix
                .as_ref()
                .is_none_or(|p| stream.starts_with(p.as_bytes()))
    }

    /// True when every event passes.
    pub fn is_all(&self) -> bool {
        self.event_types.is_none() && self.stream_prefix.is_none()
    }

    /// True when an event of `event_type` in `stream` passes.
    pub fn matches(&self, stream: &str, event_type: &str) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t == event_type))
            && self
                .stream_prefix
                .as_ref()
                .is_none_or(|p| stream.starts_with(p.as_str()))
    }
}
