//! [`DomainEvent`]: a Rust type that is an event type of the log, so that handlers receive it
//! decoded.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::EventData;

/// A typed domain event: its type name in the log and its payload encoding (JSON by default,
/// through serde). Override [`DomainEvent::encode`] and [`DomainEvent::decode`] together for
/// another encoding.
///
/// ```
/// use evlog::bus::DomainEvent;
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct OrderPlaced { order: String, total: u64 }
/// impl DomainEvent for OrderPlaced {
///     const EVENT_TYPE: &'static str = "OrderPlaced";
/// }
/// let e = OrderPlaced { order: "o-1".into(), total: 12 };
/// let data = e.to_event_data().unwrap();
/// assert_eq!(data.event_type, "OrderPlaced");
/// assert_eq!(OrderPlaced::decode(&data.payload).unwrap(), e);
/// assert!(OrderPlaced::decode(b"{}").is_err());
/// ```
pub trait DomainEvent: Serialize + DeserializeOwned + Send + 'static {
    /// The event type name stored in the log (e.g. `"AIResultCompletedEvent"`).
    const EVENT_TYPE: &'static str;

    /// The payload bytes of this event (JSON by default).
    fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| e.to_string())
    }

    /// The event from payload bytes; the error says why they are not one (a payload that does
    /// not decode is parked in the handler's dead-letter stream with this reason).
    fn decode(payload: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }

    /// An event to append: this type, the encoded payload, a fresh id, no metadata.
    fn to_event_data(&self) -> Result<EventData, String> {
        Ok(EventData::new(Self::EVENT_TYPE, self.encode()?))
    }
}

/// A JSON payload decoded as `T`, the error as text (the system streams' record decoders).
pub(crate) fn json_payload<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}
