//! The dead-letter stream `$dlq-HANDLER`: the records a handler's dead letters are made of, and
//! the state they fold into (which events are parked, per stream, in position order, and which
//! redrives are asked for).
//!
//! Every change is an event of that stream, so the queue has every promise of the log and its
//! whole history (who redrove or discarded what, and when) stays readable:
//!
//! | event type | payload | meaning |
//! |---|---|---|
//! | `DeadLetterParked` | [`DeadLetter`] | the handler gave up on an event, or held it back behind an earlier parked event of its stream |
//! | `DeadLetterRedriveRequested` | stream / position / all, who, when | deliver these parked events again, in order |
//! | `DeadLetterRedriven` | position, attempts, when | a parked event was handled by a redrive |
//! | `DeadLetterRedriveFailed` | position, attempts, error, when | a redrive failed again: the event stays parked, the stream's redrive stops |
//! | `DeadLetterDiscarded` | position, who, when | a parked event is dropped for good |

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bus::error::BusError;
use crate::event::{EventData, RecordedEvent};

/// Prefix of the dead-letter streams: `$dlq-HANDLER`.
pub const DEAD_LETTER_STREAM_PREFIX: &str = "$dlq-";

/// The dead-letter stream of the handler `handler`.
pub fn dead_letter_stream(handler: &str) -> String {
    format!("{DEAD_LETTER_STREAM_PREFIX}{handler}")
}

/// Why an event was parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// The handler returned an error on every attempt.
    Failed,
    /// The handler panicked on the last attempt.
    Panicked,
    /// The payload does not decode as the handler's event type (not retried).
    BadPayload,
    /// The handler asked to retry later on every attempt.
    RetryLater,
    /// Not delivered: an earlier event of its stream is parked for this handler, and a stream's
    /// events are handled in order.
    HeldBack,
}

/// One parked event of a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event's global position.
    pub position: u64,
    /// Its stream.
    pub stream: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its type.
    pub event_type: String,
    /// Its id.
    pub event_id: String,
    /// The handler.
    pub handler: String,
    /// Why it was parked.
    pub reason: ParkReason,
    /// Deliveries made (0 for a held-back event), redrives included.
    pub attempts: u32,
    /// The last error (or what it is held back behind).
    pub last_error: String,
    /// When it was parked, µs since the Unix epoch.
    pub parked_at_us: u64,
}

/// What a redrive request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedriveTarget {
    /// One event: the first parked event of its stream.
    Position(u64),
    /// Every parked event of one stream.
    Stream(String),
    /// Every parked event.
    All,
}

/// One event of a dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterRecord {
    /// An event was parked.
    Parked(DeadLetter),
    /// Someone asked for a redrive.
    RedriveRequested {
        /// What to redrive.
        target: RedriveTarget,
        /// Who asked.
        by: String,
        /// When, µs since the Unix epoch.
        at_us: u64,
    },
    /// A parked event was handled by a redrive.
    Redriven {
        /// Its position.
        position: u64,
        /// Deliveries of that redrive.
        attempts: u32,
        /// When, µs since the Unix epoch.
        at_us: u64,
    },
    /// A redrive failed again.
    RedriveFailed {
        /// Its position.
        position: u64,
        /// Why it failed.
        reason: ParkReason,
        /// Deliveries of that redrive.
        attempts: u32,
        /// The last error.
        last_error: String,
        /// When, µs since the Unix epoch.
        at_us: u64,
    },
    /// A parked event was dropped.
    Discarded {
        /// Its position.
        position: u64,
        /// Who dropped it.
        by: String,
        /// When, µs since the Unix epoch.
        at_us: u64,
    },
}

/// The JSON payloads of the records other than `Parked`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Requested {
    target: RedriveTarget,
    by: String,
    at_us: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Redriven {
    position: u64,
    attempts: u32,
    at_us: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveFailed {
    position: u64,
    reason: ParkReason,
    attempts: u32,
    last_error: String,
    at_us: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Discarded {
    position: u64,
    by: String,
    at_us: u64,
}

const PARKED: &str = "DeadLetterParked";
const REQUESTED: &str = "DeadLetterRedriveRequested";
const REDRIVEN: &str = "DeadLetterRedriven";
const REDRIVE_FAILED: &str = "DeadLetterRedriveFailed";
const DISCARDED: &str = "DeadLetterDiscarded";

impl DeadLetterRecord {
    /// The event that stores this record.
    pub fn to_event(&self) -> EventData {
        let json = |v: Result<Vec<u8>, serde_json::Error>| v.expect("plain structs encode");
        let (ty, payload) = match self.clone() {
            DeadLetterRecord::Parked(l) => (PARKED, json(serde_json::to_vec(&l))),
            DeadLetterRecord::RedriveRequested { target, by, at_us } => (
                REQUESTED,
                json(serde_json::to_vec(&Requested { target, by, at_us })),
            ),
            DeadLetterRecord::Redriven {
                position,
                attempts,
                at_us,
            } => (
                REDRIVEN,
                json(serde_json::to_vec(&Redriven {
                    position,
                    attempts,
                    at_us,
                })),
            ),
            DeadLetterRecord::RedriveFailed {
                position,
                reason,
                attempts,
                last_error,
                at_us,
            } => (
                REDRIVE_FAILED,
                json(serde_json::to_vec(&RedriveFailed {
                    position,
                    reason,
                    attempts,
                    last_error,
                    at_us,
                })),
            ),
            DeadLetterRecord::Discarded {
                position,
                by,
                at_us,
            } => (
                DISCARDED,
                json(serde_json::to_vec(&Discarded {
                    position,
                    by,
                    at_us,
                })),
            ),
        };
        EventData::new(ty, payload)
    }

    /// The record an event of a dead-letter stream stores.
    pub fn from_event(e: &RecordedEvent) -> Result<DeadLetterRecord, BusError> {
        let bad = |reason: String| BusError::BadDeadLetter {
            stream: e.stream.to_string(),
            version: e.version,
            reason,
        };
        use crate::bus::event::json_payload as de;
        let p = &e.payload;
        Ok(match &*e.event_type {
            PARKED => DeadLetterRecord::Parked(de(p).map_err(bad)?),
            REQUESTED => {
                let r: Requested = de(p).map_err(bad)?;
                DeadLetterRecord::RedriveRequested {
                    target: r.target,
                    by: r.by,
                    at_us: r.at_us,
                }
            }
            REDRIVEN => {
                let r: Redriven = de(p).map_err(bad)?;
                DeadLetterRecord::Redriven {
                    position: r.position,
                    attempts: r.attempts,
                    at_us: r.at_us,
                }
            }
            REDRIVE_FAILED => {
                let r: RedriveFailed = de(p).map_err(bad)?;
                DeadLetterRecord::RedriveFailed {
                    position: r.position,
                    reason: r.reason,
                    attempts: r.attempts,
                    last_error: r.last_error,
                    at_us: r.at_us,
                }
            }
            DISCARDED => {
                let r: Discarded = de(p).map_err(bad)?;
                DeadLetterRecord::Discarded {
                    position: r.position,
                    by: r.by,
                    at_us: r.at_us,
                }
            }
            other => return Err(bad(format!("unknown event type {other:?}"))),
        })
    }
}

/// The parked events of one handler, folded from its dead-letter stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeadLetterState {
    /// Parked events by position.
    pub letters: BTreeMap<u64, DeadLetter>,
    /// Parked positions of each stream that has any.
    pub streams: BTreeMap<String, BTreeSet<u64>>,
    /// Streams whose parked events are to be redriven, all of them in order.
    pub redrive_streams: BTreeSet<String>,
    /// Single parked events to redrive.
    pub redrive_positions: BTreeSet<u64>,
    /// Positions parked once and since redriven or discarded: a read that comes to them
    /// again (its checkpoint was before them) passes them over.
    pub settled: BTreeSet<u64>,
    /// The dead-letter stream's next version to fold.
    pub next_version: u64,
}

impl DeadLetterState {
    /// Applies one record.
    pub fn apply(&mut self, record: DeadLetterRecord) {
        match record {
            DeadLetterRecord::Parked(l) => {
                self.streams
                    .entry(l.stream.clone())
                    .or_default()
                    .insert(l.position);
                self.letters.insert(l.position, l);
            }
            DeadLetterRecord::RedriveRequested { target, .. } => match target {
                RedriveTarget::Position(p) => {
                    if self.letters.contains_key(&p) {
                        self.redrive_positions.insert(p);
                    }
                }
                RedriveTarget::Stream(s) => {
                    if self.streams.contains_key(&s) {
                        self.redrive_streams.insert(s);
                    }
                }
                RedriveTarget::All => self.redrive_streams.extend(self.streams.keys().cloned()),
            },
            DeadLetterRecord::Redriven { position, .. }
            | DeadLetterRecord::Discarded { position, .. } => self.remove(position),
            DeadLetterRecord::RedriveFailed {
                position,
                reason,
                attempts,
                last_error,
                ..
            } => {
                self.redrive_positions.remove(&position);
                if let Some(l) = self.letters.get_mut(&position) {
                    l.reason = reason;
                    l.attempts = l.attempts.saturating_add(attempts);
                    l.last_error = last_error;
                    let stream = l.stream.clone();
                    self.redrive_streams.remove(&stream);
                }
            }
        }
    }

    fn remove(&mut self, position: u64) {
        self.redrive_positions.remove(&position);
        let Some(l) = self.letters.remove(&position) else {
            return;
        };
        self.settled.insert(position);
        if let Some(set) = self.streams.get_mut(&l.stream) {
            set.remove(&position);
            if set.is_empty() {
                self.streams.remove(&l.stream);
                self.redrive_streams.remove(&l.stream);
            }
        }
    }

    /// True when the event at `position` was parked (and may since have been redriven or
    /// discarded): it is not delivered again.
    pub fn was_parked(&self, position: u64) -> bool {
        self.letters.contains_key(&position) || self.settled.contains(&position)
    }

    /// Forgets the settled positions before `next`, which no read comes back to.
    pub fn forget_settled_before(&mut self, next: u64) {
        self.settled = self.settled.split_off(&next);
    }

    /// The first parked position of `stream`, if it has any: its later events are held back.
    pub fn first_of(&self, stream: &str) -> Option<u64> {
        self.streams.get(stream).and_then(|s| s.first().copied())
    }

    /// The next parked event a redrive asks for: the first of its stream, always.
    pub fn next_redrive(&self) -> Option<&DeadLetter> {
        let by_stream = self.redrive_streams.iter().filter_map(|s| self.first_of(s));
        let single = self.redrive_positions.iter().copied().filter(|p| {
            self.letters
                .get(p)
                .is_some_and(|l| self.first_of(&l.stream) == Some(*p))
        });
        by_stream
            .chain(single)
            .min()
            .and_then(|p| self.letters.get(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(position: u64, stream: &str) -> DeadLetter {
        DeadLetter {
            position,
            stream: stream.into(),
            version: position,
            event_type: "T".into(),
            event_id: "id".into(),
            handler: "h".into(),
            reason: ParkReason::Failed,
            attempts: 4,
            last_error: "boom".into(),
            parked_at_us: 1,
        }
    }

    fn recorded(data: EventData) -> RecordedEvent {
        RecordedEvent::stored_as("$dlq-h", data)
    }

    #[test]
    fn records_round_trip_and_foreign_events_are_refused() {
        let records = [
            DeadLetterRecord::Parked(letter(3, "a")),
            DeadLetterRecord::RedriveRequested {
                target: RedriveTarget::Stream("a".into()),
                by: "ops".into(),
                at_us: 2,
            },
            DeadLetterRecord::RedriveRequested {
                target: RedriveTarget::All,
                by: "ops".into(),
                at_us: 2,
            },
            DeadLetterRecord::Redriven {
                position: 3,
                attempts: 1,
                at_us: 3,
            },
            DeadLetterRecord::RedriveFailed {
                position: 3,
                reason: ParkReason::Panicked,
                attempts: 4,
                last_error: "again".into(),
                at_us: 4,
            },
            DeadLetterRecord::Discarded {
                position: 3,
                by: "ops".into(),
                at_us: 5,
            },
        ];
        for r in records {
            assert_eq!(
                DeadLetterRecord::from_event(&recorded(r.to_event())).unwrap(),
                r
            );
        }
        let foreign = recorded(EventData::new("OrderPlaced", b"{}".to_vec()));
        assert!(matches!(
            DeadLetterRecord::from_event(&foreign),
            Err(BusError::BadDeadLetter { .. })
        ));
        let garbled = recorded(EventData::new(PARKED, b"{\"position\":1}".to_vec()));
        assert!(DeadLetterRecord::from_event(&garbled).is_err());
    }

    fn request(target: RedriveTarget) -> DeadLetterRecord {
        DeadLetterRecord::RedriveRequested {
            target,
            by: "x".into(),
            at_us: 0,
        }
    }

    fn redriven(position: u64) -> DeadLetterRecord {
        DeadLetterRecord::Redriven {
            position,
            attempts: 1,
            at_us: 0,
        }
    }

    #[test]
    fn redrives_go_stream_by_stream_in_position_order() {
        let mut s = DeadLetterState::default();
        for (p, stream) in [(1, "a"), (2, "b"), (5, "a"), (7, "b")] {
            s.apply(DeadLetterRecord::Parked(letter(p, stream)));
        }
        assert_eq!(s.first_of("a"), Some(1));
        assert!(s.next_redrive().is_none());
        // One event that is not its stream's first is never picked.
        s.apply(request(RedriveTarget::Position(5)));
        assert!(s.next_redrive().is_none());
        s.apply(request(RedriveTarget::Stream("b".into())));
        assert_eq!(s.next_redrive().map(|l| l.position), Some(2));
        s.apply(redriven(2));
        assert_eq!(s.next_redrive().map(|l| l.position), Some(7));
        s.apply(DeadLetterRecord::RedriveFailed {
            position: 7,
            reason: ParkReason::Failed,
            attempts: 2,
            last_error: "still".into(),
            at_us: 0,
        });
        assert!(s.next_redrive().is_none());
        assert_eq!(s.letters[&7].attempts, 6);
        // Discarding a's first makes 5 its first, and the single redrive of 5 goes ahead.
        s.apply(DeadLetterRecord::Discarded {
            position: 1,
            by: "x".into(),
            at_us: 0,
        });
        assert_eq!(s.next_redrive().map(|l| l.position), Some(5));
        s.apply(redriven(5));
        assert_eq!(s.first_of("a"), None);
        assert_eq!(s.letters.keys().copied().collect::<Vec<_>>(), [7]);
    }
}
