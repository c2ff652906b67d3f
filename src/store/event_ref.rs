//! [`EventRef`]: one event borrowed from the log's bytes, as [`crate::Store::replay`] and
//! [`crate::Store::replay_stream`] hand it out.

use std::sync::Arc;

use uuid::Uuid;

use crate::event::{Metadata, RecordedEvent};
use crate::wire::record::RecordView;

/// One event, borrowed from the log for the duration of a [`Store::replay`] callback.
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

    /// The event's metadata (decoded on demand).
    pub fn metadata(&self) -> Metadata {
        self.record.metadata()
    }

    /// An owned copy, as [`Store::read_all`] returns it.
    pub fn to_owned_event(&self) -> RecordedEvent {
        self.record.to_recorded(
            self.position,
            Arc::from(self.stream),
            Arc::from(self.record.event_type),
        )
    }
}
