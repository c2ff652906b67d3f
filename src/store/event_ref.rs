//! [`EventRef`]: one event borrowed from the log's bytes, as [`crate::Store::replay`] and
//! [`crate::Store::replay_stream`] hand it out.

use std::sync::Arc;

use uuid::Uuid;

use crate::event::{Metadata, RecordedEvent};
use crate::wire::record::{MetaEntries, RecordView};

/// One event, borrowed from the log for the duration of a [`crate::Store::replay`] callback.
///
/// Its metadata is read in place, without allocating: [`EventRef::correlation_id`],
/// [`EventRef::causation_id`], [`EventRef::metadata_value`] (one key/value),
/// [`EventRef::metadata_entries`] (all of them), [`EventRef::metadata_bytes`] (opaque bytes
/// stored with [`Metadata::with_bytes`]) and [`EventRef::metadata_raw`] (the encoded entries).
/// [`EventRef::metadata`] builds the owned [`Metadata`] for who wants to keep it.
///
/// ```
/// use std::ops::ControlFlow;
/// use evlog::{EventData, ExpectedVersion, Metadata, ReadFilter, Store, Uuid};
///
/// # let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let correlation = Uuid::new_v4();
/// let meta = Metadata::new()
///     .with_correlation_id(correlation)
///     .with("meta", r#"{"ts":1767225600000}"#)
///     .with_bytes(vec![0x08, 0x96, 0x01]); // a protobuf message, say
/// store.append("order-1", ExpectedVersion::NoStream,
///              &[EventData::new("OrderPlaced", b"{}".to_vec()).with_metadata(meta)])?;
///
/// store.replay(0, u64::MAX, &ReadFilter::all(), |e| {
///     assert_eq!(e.correlation_id(), Some(correlation));
///     assert_eq!(e.metadata_value("meta"), Some(r#"{"ts":1767225600000}"#));
///     assert_eq!(e.metadata_entries().count(), 1);
///     assert_eq!(e.metadata_bytes(), &[0x08, 0x96, 0x01]);
///     ControlFlow::Continue(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// Global position.
    pub position: u64,
    /// Version in its stream.
    pub version: u64,
    /// Time of the append, µs since the Unix epoch.
    pub timestamp_us: u64,
    /// Event id.
    pub id: Uuid,
    /// Stream id.
    pub stream: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// Payload bytes.
    pub payload: &'a [u8],
    record: RecordView<'a>,
}

impl<'a> EventRef<'a> {
    /// The event of record `r`, at position `position`.
    pub(crate) fn new(position: u64, r: RecordView<'a>) -> Self {
        EventRef {
            position,
            version: r.version,
            timestamp_us: r.timestamp_us,
            id: r.id,
            stream: r.stream,
            event_type: r.event_type,
            payload: r.payload,
            record: r,
        }
    }

    /// The event's metadata as an owned value (decoded and copied on each call; the borrowed
    /// accessors below allocate nothing).
    pub fn metadata(&self) -> Metadata {
        self.record.metadata()
    }

    /// The correlation id, if the event has one.
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.record.correlation_id
    }

    /// The causation id, if the event has one.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.record.causation_id
    }

    /// The value of the user metadata key `key`, borrowed from the log.
    pub fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.record.meta_value(key)
    }

    /// The user metadata key/values, borrowed, in the order the record holds them: key order,
    /// as every writer writes them (a record written otherwise is handed out as it is, where
    /// [`EventRef::metadata`] sorts it and keeps the last value of a repeated key).
    pub fn metadata_entries(&self) -> MetaEntries<'a> {
        self.record.meta_entries()
    }

    /// The opaque metadata bytes the event was appended with ([`Metadata::bytes`]); empty when
    /// it has none.
    pub fn metadata_bytes(&self) -> &'a [u8] {
        self.record.meta_bytes
    }

    /// The user metadata key/values as they are encoded in the log: `count` times key length
    /// (u16 LE), key, value length (u32 LE), value (`format/FORMAT.md` § 6), without the count.
    pub fn metadata_raw(&self) -> &'a [u8] {
        self.record.meta_raw()
    }

    /// An owned copy whose stream id and event type come from `names` (shared with the other
    /// events of a batch of the same type or stream, not allocated for each).
    pub(crate) fn owned_with(&self, names: &mut crate::store::Names) -> RecordedEvent {
        names.recorded(self.position, &self.record)
    }

    /// An owned copy, as [`crate::Store::read_all`] returns it.
    pub fn to_owned_event(&self) -> RecordedEvent {
        self.record.to_recorded(
            self.position,
            Arc::from(self.stream),
            Arc::from(self.record.event_type),
        )
    }
}
