//! [`SagaState`]: a saga as its stream's records fold into it, checked for order as they fold.

use serde_json::Value;

use crate::event::{Direction, RecordedEvent};
use crate::saga::error::SagaError;
use crate::saga::record::{SagaRecord, Started, StepRef};
use crate::store::Store;

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SagaStatus {
    /// Its steps run, in order.
    Running,
    /// A step failed: its completed steps are being undone, last first.
    Compensating,
    /// Every step succeeded (final).
    Completed,
    /// Every completed step was undone (final).
    Compensated,
    /// A compensation failed after its retries: parked until
    /// [`SagaManager::retry`](crate::saga::SagaManager::retry).
    NeedsAttention,
}

impl SagaStatus {
    /// True for a saga no manager drives any more: completed, compensated or needs-attention.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::NeedsAttention
        )
    }
}

impl std::fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::NeedsAttention => "needs-attention",
        })
    }
}

/// A saga, folded from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaState {
    /// Its stream (`$saga-TYPE-ID`).
    pub stream: String,
    /// How it began: type, id, input, step names.
    pub started: Started,
    /// Where it is.
    pub status: SagaStatus,
    /// Outputs of the completed steps: step `i` completed when `i < outputs.len()` (steps
    /// complete in order).
    pub outputs: Vec<Value>,
    /// How many of the completed steps were undone, counted from the last one.
    pub compensated: usize,
    /// The step that failed and its last error, once one has.
    pub failed: Option<(StepRef, String)>,
    /// The compensation that failed and its last error, while needs-attention.
    pub attention: Option<(StepRef, String)>,
    /// Version of the stream's last event: the next transition expects it.
    pub version: u64,
    /// Global position of its `SagaStarted` record: the events a step waits for come after it.
    pub started_position: u64,
    /// Time of its last record (microseconds since the Unix epoch, as the store's
    /// timestamps): the step (or compensation) that runs next began then, and its
    /// [`wait_for_event`](crate::saga::StepContext::wait_for_event) deadline counts from it.
    pub last_record_us: u64,
}

impl SagaState {
    /// A saga just started, its `SagaStarted` record at `version`.
    pub(crate) fn new(
        stream: String,
        started: Started,
        version: u64,
        started_position: u64,
        at_us: u64,
    ) -> SagaState {
        SagaState {
            stream,
            started,
            status: SagaStatus::Running,
            outputs: Vec::new(),
            compensated: 0,
            failed: None,
            attention: None,
            version,
            started_position,
            last_record_us: at_us,
        }
    }

    /// The state after the first record, which must be `Started`.
    fn begin(e: &RecordedEvent) -> Result<SagaState, SagaError> {
        match SagaRecord::from_event(e)? {
            SagaRecord::Started(started) => Ok(SagaState::new(
                e.stream.to_string(),
                started,
                e.version,
                e.position,
                e.timestamp_us,
            )),
            other => Err(SagaError::BadRecord {
                stream: e.stream.to_string(),
                version: e.version,
                reason: format!("the first record must be SagaStarted, not {other:?}"),
            }),
        }
    }

    /// The index of the next completed step to undo, while compensating.
    pub fn next_to_compensate(&self) -> Option<usize> {
        self.outputs.len().checked_sub(self.compensated + 1)
    }

    /// Applies one more event of the stream, checking that it may follow.
    fn apply(&mut self, e: &RecordedEvent) -> Result<(), SagaError> {
        let record = SagaRecord::from_event(e)?;
        self.apply_record(record, e.version)
            .map_err(|reason| SagaError::BadRecord {
                stream: e.stream.to_string(),
                version: e.version,
                reason,
            })?;
        self.last_record_us = e.timestamp_us;
        Ok(())
    }

    /// Applies one record stored at `version`, checking that it may follow; the error says
    /// why not.
    pub(crate) fn apply_record(&mut self, record: SagaRecord, version: u64) -> Result<(), String> {
        use SagaStatus::*;
        // A record names a step of the saga's list, by its number and name.
        let named = match &record {
            SagaRecord::StepCompleted { step, .. }
            | SagaRecord::StepFailed { step, .. }
            | SagaRecord::StepCompensated(step)
            | SagaRecord::NeedsAttention { step, .. } => Some(step),
            _ => None,
        };
        if let Some(step) = named
            && self.started.steps.get(step.index) != Some(&step.step)
        {
            return Err(format!(
                "{record:?} names step {} {:?}, not one of the saga's steps {:?}",
                step.index, step.step, self.started.steps
            ));
        }
        match (self.status, record) {
            (Running, SagaRecord::StepCompleted { step, output }) => {
                if step.index != self.outputs.len() {
                    return Err(format!(
                        "step {} completed, but step {} is the next",
                        step.index,
                        self.outputs.len()
                    ));
                }
                self.outputs.push(output);
            }
            (Running, SagaRecord::StepFailed { step, error }) => {
                self.failed = Some((step, error));
            }
            (Running, SagaRecord::Compensating { .. }) => self.status = Compensating,
            (Running, SagaRecord::Completed) => self.status = Completed,
            (Compensating, SagaRecord::StepCompensated(step)) => {
                if Some(step.index) != self.next_to_compensate() {
                    return Err(format!(
                        "step {} compensated, but {:?} is the next to undo",
                        step.index,
                        self.next_to_compensate()
                    ));
                }
                self.compensated += 1;
            }
            (Compensating, SagaRecord::Compensated) => self.status = Compensated,
            (Compensating, SagaRecord::NeedsAttention { step, error }) => {
                self.attention = Some((step, error));
                self.status = NeedsAttention;
            }
            (NeedsAttention, SagaRecord::RetryRequested { .. }) => {
                self.attention = None;
                self.status = Compensating;
            }
            (status, record) => {
                return Err(format!("{record:?} cannot follow status {status}"));
            }
        }
        self.version = version;
        Ok(())
    }

    /// Folds the saga stream `stream` from the store; `None` when it has no events.
    pub fn load(store: &Store, stream: &str) -> Result<Option<SagaState>, SagaError> {
        let mut state: Option<SagaState> = None;
        for e in store.read_stream(stream, 0, Direction::Forward, usize::MAX) {
            let e = e?;
            match &mut state {
                None => state = Some(SagaState::begin(&e)?),
                Some(s) => s.apply(&e)?,
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: usize) -> StepRef {
        StepRef {
            step: format!("s{index}"),
            index,
            attempts: 1,
        }
    }

    fn started() -> SagaState {
        let s = Started {
            saga_type: "t".into(),
            saga_id: "1".into(),
            input: Value::Null,
            steps: vec!["s0".into(), "s1".into()],
        };
        SagaState::new("$saga-t-1".into(), s, 0, 0, 0)
    }

    #[test]
    fn records_fold_in_order_and_out_of_order_ones_are_refused() {
        let mut s = started();
        let completed = |i| SagaRecord::StepCompleted {
            step: step(i),
            output: Value::from(i),
        };
        assert!(
            s.apply_record(completed(1), 1).is_err(),
            "step 1 before step 0"
        );
        s.apply_record(completed(0), 1).unwrap();
        assert!(
            s.apply_record(SagaRecord::StepCompensated(step(0)), 2)
                .is_err(),
            "no compensation while running"
        );
        s.apply_record(
            SagaRecord::StepFailed {
                step: step(1),
                error: "no".into(),
            },
            2,
        )
        .unwrap();
        s.apply_record(SagaRecord::Compensating { reason: "r".into() }, 3)
            .unwrap();
        assert_eq!(
            (s.status, s.next_to_compensate()),
            (SagaStatus::Compensating, Some(0))
        );
        assert!(
            s.apply_record(SagaRecord::StepCompensated(step(1)), 4)
                .is_err(),
            "step 1 never completed"
        );
        assert!(s.apply_record(SagaRecord::Completed, 4).is_err());
        assert!(
            s.apply_record(SagaRecord::RetryRequested { by: "x".into() }, 4)
                .is_err(),
            "only a parked saga is retried"
        );
        s.apply_record(SagaRecord::StepCompensated(step(0)), 4)
            .unwrap();
        assert_eq!(s.next_to_compensate(), None);
        s.apply_record(SagaRecord::Compensated, 5).unwrap();
        assert_eq!((s.status, s.version), (SagaStatus::Compensated, 5));
        assert!(s.status.is_settled());
        assert!(
            s.apply_record(completed(1), 6).is_err(),
            "nothing after the end"
        );
    }
}
