//! Durable checkpoints of named subscriptions, kept in the log itself: each is an event of type
//! [`CHECKPOINT_EVENT_TYPE`] in the system stream `$checkpoint-NAME`, whose JSON payload
//! `{"position":N}` says that every event before position `N` was handled.
//!
//! A handler that handles events out of order (the bus's, while an event waits for its retry
//! and other streams go on) stores `{"position":N,"read":R,"pending":[P1,P2,...]}`: every event
//! before `N` was handled, and so was every event before `R` except the positions listed (each
//! at least `N`, below `R`). After a restart it delivers only those between `N` and `R`. So a
//! checkpoint has
//! every promise of the log (durable when acknowledged, recovered after a crash, verified,
//! exported), and a handler can store its output and its checkpoint in one
//! [`Store::append_multi`].

use std::time::Instant;

use crate::error::{Error, Result};
use crate::event::{Direction, EventData, ExpectedVersion};
use crate::store::Store;

/// Prefix of the checkpoint streams: `$checkpoint-NAME`.
pub const CHECKPOINT_STREAM_PREFIX: &str = "$checkpoint-";
/// Type of the checkpoint events.
pub const CHECKPOINT_EVENT_TYPE: &str = "CheckpointStored";
/// Checkpoint events left visible per subscription (older ones are hidden by the stream's
/// retention and dropped by compaction): the last one is all a subscription reads; a few more
/// show its recent progress.
pub const CHECKPOINT_EVENTS_KEPT: u64 = 16;

/// The checkpoint stream of the subscription named `name`.
pub fn checkpoint_stream(name: &str) -> String {
    format!("{CHECKPOINT_STREAM_PREFIX}{name}")
}

/// A checkpoint event saying that every event before `position` was handled.
pub fn checkpoint_event(position: u64) -> EventData {
    payload_event(&Payload {
        position,
        read: None,
        pending: Vec::new(),
    })
}

/// A checkpoint event's payload (both forms: see the module's documentation).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    position: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<u64>,
}

fn payload_event(p: &Payload) -> EventData {
    let json = serde_json::to_vec(p).expect("numbers serialize");
    EventData::new(CHECKPOINT_EVENT_TYPE, json)
}

/// What a checkpoint holds beyond its position: events before `read` were handled, except
/// those at the `pending` positions (ascending, each at least the checkpoint's position).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DoneAbove {
    pub read: u64,
    pub pending: Vec<u64>,
}

/// A checkpoint event: every event before `position` was handled, and, with `above`, every
/// event before its `read` except the pending ones. Without pending events, or when `read` is
/// not past `position`, it is the plain `{"position":N}`.
#[cfg_attr(not(feature = "bus"), allow(dead_code))]
pub(crate) fn checkpoint_event_above(position: u64, above: &DoneAbove) -> EventData {
    if above.read <= position {
        return checkpoint_event(position);
    }
    payload_event(&Payload {
        position,
        read: Some(above.read),
        pending: above.pending.clone(),
    })
}

/// The position a checkpoint event's payload holds, and what it says of the events after it.
fn decode(payload: &[u8]) -> std::result::Result<(u64, Option<DoneAbove>), String> {
    let p = serde_json::from_slice::<Payload>(payload).map_err(|e| {
        format!("payload is not {{\"position\":N}} or {{\"position\":N,\"read\":R,\"pending\":[...]}}: {e}")
    })?;
    let Some(read) = p.read else {
        if !p.pending.is_empty() {
            return Err("pending positions without a read position".into());
        }
        return Ok((p.position, None));
    };
    if read < p.position {
        return Err(format!(
            "read position {read} is before the position {}",
            p.position
        ));
    }
    if p.pending.windows(2).any(|w| w[0] >= w[1])
        || p.pending.iter().any(|q| *q < p.position || *q >= read)
    {
        return Err(format!(
            "pending positions must ascend, from the position {} to below the read position {read}",
            p.position
        ));
    }
    Ok((
        p.position,
        Some(DoneAbove {
            read,
            pending: p.pending,
        }),
    ))
}

/// What a named subscription knows of its checkpoint stream.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    pub stream: String,
    /// The position stored last (`None`: no checkpoint yet).
    pub position: Option<u64>,
    /// What the last checkpoint stored (or loaded) said of the events after its position
    /// (`None`: the plain form).
    pub above: Option<DoneAbove>,
    /// Version of the stream's last event (for the next write's expected version).
    pub version: Option<u64>,
    /// When it was last written (or loaded).
    pub at: Instant,
}

impl Checkpoint {
    /// Loads the last checkpoint of `name`.
    pub fn load(store: &Store, name: &str, now: Instant) -> Result<Checkpoint> {
        if name.is_empty() {
            return Err(Error::InvalidArgument(
                "a subscription name must not be empty".into(),
            ));
        }
        let stream = checkpoint_stream(name);
        let last = store
            .read_stream(&stream, u64::MAX, Direction::Backward, 1)
            .next()
            .transpose()?;
        let (position, above, version) = match last {
            None => (None, None, store.stream_version(&stream)),
            Some(e) => {
                let bad = |reason: String| Error::BadCheckpoint {
                    stream: stream.clone(),
                    version: e.version,
                    reason,
                };
                if &*e.event_type != CHECKPOINT_EVENT_TYPE {
                    return Err(bad(format!("event type {:?}", e.event_type)));
                }
                let (position, above) = decode(&e.payload).map_err(bad)?;
                (Some(position), above, Some(e.version))
            }
        };
        Ok(Checkpoint {
            stream,
            position,
            above,
            version,
            at: now,
        })
    }

    /// The expected version of the next checkpoint write.
    pub fn expected(&self) -> ExpectedVersion {
        self.version
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
    }

    /// Records a write of `position` that left the stream at `version`.
    pub fn written(&mut self, position: u64, above: Option<DoneAbove>, version: u64, now: Instant) {
        self.position = Some(position);
        self.above = above;
        self.version = Some(version);
        self.at = now;
    }

    /// Before the stream's first checkpoint: sets its retention, so that only the last
    /// [`CHECKPOINT_EVENTS_KEPT`] checkpoints stay visible.
    pub fn prepare_first(&self, store: &Store) -> Result<()> {
        if self.version.is_none() {
            store.set_retention(&self.stream, None, Some(CHECKPOINT_EVENTS_KEPT))?;
        }
        Ok(())
    }

    /// Writes `position` (alone: see `Subscription::commit_with` for a write together with
    /// output events).
    pub fn write(&mut self, store: &Store, position: u64, now: Instant) -> Result<()> {
        self.prepare_first(store)?;
        let r = store.append(&self.stream, self.expected(), &[checkpoint_event(position)])?;
        self.written(position, None, r.next_expected_version, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_or_say_why_not() {
        let e = checkpoint_event(42);
        assert_eq!(decode(&e.payload), Ok((42, None)));
        let above = DoneAbove {
            read: 90,
            pending: vec![42, 57, 89],
        };
        let e = checkpoint_event_above(42, &above);
        assert_eq!(decode(&e.payload), Ok((42, Some(above))));
        let none = DoneAbove {
            read: 42,
            pending: vec![],
        };
        assert_eq!(
            checkpoint_event_above(42, &none).payload,
            checkpoint_event(42).payload
        );
        assert!(decode(br#"{"position":5,"read":4,"pending":[]}"#).is_err());
        assert!(decode(br#"{"position":5,"read":9,"pending":[4]}"#).is_err());
        assert!(decode(br#"{"position":5,"read":9,"pending":[9]}"#).is_err());
        assert!(decode(br#"{"position":5,"read":9,"pending":[6,6]}"#).is_err());
        assert!(decode(br#"{"position":5,"pending":[6]}"#).is_err());
        assert!(decode(b"{}").is_err());
        assert!(decode(br#"{"position":-1}"#).is_err());
        assert!(decode(br#"{"position":1,"x":2}"#).is_err());
        assert!(decode(b"not json").is_err());
    }
}
