//! The saga stream `$saga-TYPE-ID`: the records a saga's history is made of.
//!
//! Every transition of a saga is one append of one or two of these events, checked against the
//! exact version the driving manager last saw:
//!
//! | event type | payload | meaning |
//! |---|---|---|
//! | `SagaStarted` | type, id, input, step names | the saga exists; its first step runs |
//! | `SagaStepCompleted` | step, index, attempts, output | a step succeeded; its output is kept |
//! | `SagaStepFailed` | step, index, attempts, error | a step failed after its retries (always followed by `SagaCompensating`) |
//! | `SagaCompensating` | reason | compensation runs, in reverse order over the completed steps |
//! | `SagaStepCompensated` | step, index, attempts | a completed step was undone |
//! | `SagaCompleted` | | every step succeeded (final) |
//! | `SagaCompensated` | | every completed step was undone (final) |
//! | `SagaNeedsAttention` | step, index, attempts, error | a compensation failed after its retries: parked until an operator retries it |
//! | `SagaRetryRequested` | by | an operator asked to run the parked compensation again |

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{EventData, Metadata, RecordedEvent};
use crate::saga::error::SagaError;

/// Prefix of the saga streams: `$saga-TYPE-ID`.
pub const SAGA_STREAM_PREFIX: &str = "$saga-";

/// The metadata key of each saga record naming the manager that appended it
/// ([`crate::saga::SagaManager::id`]).
pub const MANAGER_METADATA_KEY: &str = "saga_manager";

/// The stream of the saga `saga_id` of type `saga_type`.
pub fn saga_stream(saga_type: &str, saga_id: &str) -> String {
    format!("{SAGA_STREAM_PREFIX}{saga_type}-{saga_id}")
}

/// The metadata of each record the manager `manager` appends.
pub(crate) fn manager_metadata(manager: &str) -> Metadata {
    Metadata::new().with(MANAGER_METADATA_KEY, manager)
}

/// A fresh random (version 4) id for a record's event, as [`EventData::new`] gives, without
/// asking the operating system for random bytes each time (a system call per event): each
/// thread draws a 128-bit seed once and derives the ids from it and a counter with the
/// SplitMix64 generator (two streams, one per half).
fn record_id() -> uuid::Uuid {
    use std::cell::Cell;
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    thread_local! {
        static STATE: Cell<Option<(u64, u64, u64)>> = const { Cell::new(None) };
    }
    STATE.with(|state| {
        let (k0, k1, n) = state.get().unwrap_or_else(|| {
            let (k0, k1) = uuid::Uuid::new_v4().as_u64_pair();
            (k0, k1, 0)
        });
        let n = n.wrapping_add(1);
        state.set(Some((k0, k1, n)));
        let step = n.wrapping_mul(GOLDEN);
        let (lo, hi) = (mix(k0.wrapping_add(step)), mix(k1.wrapping_add(step)));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&lo.to_le_bytes());
        bytes[8..].copy_from_slice(&hi.to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

/// Type names of the saga records.
pub(crate) mod types {
    pub const STARTED: &str = "SagaStarted";
    pub const STEP_COMPLETED: &str = "SagaStepCompleted";
    pub const STEP_FAILED: &str = "SagaStepFailed";
    pub const COMPENSATING: &str = "SagaCompensating";
    pub const STEP_COMPENSATED: &str = "SagaStepCompensated";
    pub const COMPLETED: &str = "SagaCompleted";
    pub const COMPENSATED: &str = "SagaCompensated";
    pub const NEEDS_ATTENTION: &str = "SagaNeedsAttention";
    pub const RETRY_REQUESTED: &str = "SagaRetryRequested";
}

/// How a saga began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Started {
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// The input, as JSON.
    pub input: Value,
    /// The definition's step names, in order, when it started.
    pub steps: Vec<String>,
}

/// A step, by name and place, and how many attempts it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRef {
    /// The step's name.
    pub step: String,
    /// Its place in the definition (0-based).
    pub index: usize,
    /// Attempts made (retries included).
    pub attempts: u32,
}

/// One event of a saga stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SagaRecord {
    /// The saga exists.
    Started(Started),
    /// A step succeeded with this output.
    StepCompleted {
        /// The step.
        step: StepRef,
        /// Its output, as JSON.
        output: Value,
    },
    /// A step failed after its retries.
    StepFailed {
        /// The step.
        step: StepRef,
        /// The last error.
        error: String,
    },
    /// Compensation begins.
    Compensating {
        /// Why.
        reason: String,
    },
    /// A completed step was undone.
    StepCompensated(StepRef),
    /// Every step succeeded.
    Completed,
    /// Every completed step was undone.
    Compensated,
    /// A compensation failed after its retries.
    NeedsAttention {
        /// The step whose compensation failed.
        step: StepRef,
        /// The last error.
        error: String,
    },
    /// An operator asked to run the compensation again.
    RetryRequested {
        /// Who asked.
        by: String,
    },
}

/// A step and its output (serde's `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    step: String,
    index: usize,
    attempts: u32,
    output: Value,
}

/// A step and its last error.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Failure {
    step: String,
    index: usize,
    attempts: u32,
    error: String,
}

impl Failure {
    fn new(s: &StepRef, error: &str) -> Failure {
        Failure {
            step: s.step.clone(),
            index: s.index,
            attempts: s.attempts,
            error: error.to_owned(),
        }
    }

    fn split(self) -> (StepRef, String) {
        let step = StepRef {
            step: self.step,
            index: self.index,
            attempts: self.attempts,
        };
        (step, self.error)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct By {
    by: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl SagaRecord {
    /// The event that stores this record.
    pub fn to_event(&self) -> EventData {
        fn json<T: Serialize>(v: &T) -> Vec<u8> {
            serde_json::to_vec(v).expect("plain structs and JSON values encode")
        }
        let (ty, payload) = match self {
            SagaRecord::Started(s) => (types::STARTED, json(s)),
            SagaRecord::StepCompleted { step, output } => (
                types::STEP_COMPLETED,
                json(&Output {
                    step: step.step.clone(),
                    index: step.index,
                    attempts: step.attempts,
                    output: output.clone(),
                }),
            ),
            SagaRecord::StepFailed { step, error } => {
                (types::STEP_FAILED, json(&Failure::new(step, error)))
            }
            SagaRecord::Compensating { reason } => (
                types::COMPENSATING,
                json(&Reason {
                    reason: reason.clone(),
                }),
            ),
            SagaRecord::StepCompensated(step) => (types::STEP_COMPENSATED, json(step)),
            SagaRecord::Completed => (types::COMPLETED, json(&Empty {})),
            SagaRecord::Compensated => (types::COMPENSATED, json(&Empty {})),
            SagaRecord::NeedsAttention { step, error } => {
                (types::NEEDS_ATTENTION, json(&Failure::new(step, error)))
            }
            SagaRecord::RetryRequested { by } => {
                (types::RETRY_REQUESTED, json(&By { by: by.clone() }))
            }
        };
        EventData {
            id: record_id(),
            event_type: ty.to_owned(),
            payload,
            metadata: Metadata::default(),
        }
    }

    /// The event that stores this record, with `metadata` (see [`manager_metadata`]).
    pub(crate) fn to_event_with(&self, metadata: Metadata) -> EventData {
        self.to_event().with_metadata(metadata)
    }

    /// The record an event of a saga stream stores.
    pub fn from_event(e: &RecordedEvent) -> Result<SagaRecord, SagaError> {
        let bad = |reason: String| SagaError::BadRecord {
            stream: e.stream.to_string(),
            version: e.version,
            reason,
        };
        use crate::bus::event::json_payload as de;
        let p = &e.payload;
        Ok(match &*e.event_type {
            types::STARTED => SagaRecord::Started(de(p).map_err(bad)?),
            types::STEP_COMPLETED => {
                let o: Output = de(p).map_err(bad)?;
                SagaRecord::StepCompleted {
                    step: StepRef {
                        step: o.step,
                        index: o.index,
                        attempts: o.attempts,
                    },
                    output: o.output,
                }
            }
            types::STEP_FAILED => {
                let (step, error) = de::<Failure>(p).map_err(bad)?.split();
                SagaRecord::StepFailed { step, error }
            }
            types::COMPENSATING => SagaRecord::Compensating {
                reason: de::<Reason>(p).map_err(bad)?.reason,
            },
            types::STEP_COMPENSATED => SagaRecord::StepCompensated(de(p).map_err(bad)?),
            types::COMPLETED => {
                de::<Empty>(p).map_err(bad)?;
                SagaRecord::Completed
            }
            types::COMPENSATED => {
                de::<Empty>(p).map_err(bad)?;
                SagaRecord::Compensated
            }
            types::NEEDS_ATTENTION => {
                let (step, error) = de::<Failure>(p).map_err(bad)?.split();
                SagaRecord::NeedsAttention { step, error }
            }
            types::RETRY_REQUESTED => SagaRecord::RetryRequested {
                by: de::<By>(p).map_err(bad)?.by,
            },
            other => return Err(bad(format!("unknown event type {other:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(data: EventData) -> RecordedEvent {
        RecordedEvent::stored_as("$saga-t-1", data)
    }

    #[test]
    fn records_round_trip_and_foreign_events_are_refused() {
        let step = StepRef {
            step: "reserve".into(),
            index: 1,
            attempts: 2,
        };
        let records = [
            SagaRecord::Started(Started {
                saga_type: "t".into(),
                saga_id: "1".into(),
                input: serde_json::json!({"n": 1}),
                steps: vec!["a".into(), "reserve".into()],
            }),
            SagaRecord::StepCompleted {
                step: step.clone(),
                output: serde_json::json!([1, "x"]),
            },
            SagaRecord::StepFailed {
                step: step.clone(),
                error: "boom".into(),
            },
            SagaRecord::Compensating {
                reason: "step reserve failed".into(),
            },
            SagaRecord::StepCompensated(step.clone()),
            SagaRecord::Completed,
            SagaRecord::Compensated,
            SagaRecord::NeedsAttention {
                step,
                error: "refund refused".into(),
            },
            SagaRecord::RetryRequested { by: "ops".into() },
        ];
        for r in records {
            assert_eq!(SagaRecord::from_event(&recorded(r.to_event())).unwrap(), r);
        }
        let foreign = recorded(EventData::new("OrderPlaced", b"{}".to_vec()));
        assert!(matches!(
            SagaRecord::from_event(&foreign),
            Err(SagaError::BadRecord { .. })
        ));
        let garbled = recorded(EventData::new(
            types::STEP_COMPLETED,
            b"{\"step\":1}".to_vec(),
        ));
        assert!(SagaRecord::from_event(&garbled).is_err());
    }

    #[test]
    fn record_ids_are_distinct_random_uuids_on_every_thread() {
        let draw = || (0..10_000).map(|_| record_id()).collect::<Vec<_>>();
        let other = std::thread::spawn(draw).join().unwrap();
        let mut ids = draw();
        ids.extend(other);
        assert!(
            ids.iter()
                .all(|id| id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122)
        );
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
        // Each record's event gets its own.
        assert_ne!(
            SagaRecord::Completed.to_event().id,
            SagaRecord::Completed.to_event().id
        );
    }

    #[test]
    fn stream_names_carry_type_and_id() {
        assert_eq!(saga_stream("ai_scoring", "r-1"), "$saga-ai_scoring-r-1");
        assert!(saga_stream("t", "x").starts_with(SAGA_STREAM_PREFIX));
    }
}
