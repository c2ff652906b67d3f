//! Finding sagas without reading their whole streams: a read of the saga streams' status
//! records only (started, compensating, completed, compensated, needs-attention, retry asked),
//! which each sealed segment's index serves without walking the other events.

use std::collections::BTreeMap;

use crate::event::{Direction, ReadFilter};
use crate::saga::error::SagaError;
use crate::saga::record::{SAGA_STREAM_PREFIX, SagaRecord, types};
use crate::saga::state::SagaStatus;
use crate::store::Store;

/// One saga as the scan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaSummary {
    /// Its stream, `$saga-TYPE-ID`.
    pub stream: String,
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// Where it is.
    pub status: SagaStatus,
    /// While needs-attention: the step whose compensation failed, and the last error.
    pub attention: Option<(String, String)>,
}

/// The status records the scan reads: one or two per saga.
const SCANNED: [&str; 6] = [
    types::STARTED,
    types::COMPENSATING,
    types::COMPLETED,
    types::COMPENSATED,
    types::NEEDS_ATTENTION,
    types::RETRY_REQUESTED,
];

/// Sagas by stream.
pub(crate) type Sagas = BTreeMap<String, SagaSummary>;
/// Saga streams that do not read as a saga, with the error.
pub(crate) type Malformed = BTreeMap<String, SagaError>;

/// Every saga of the store, by stream, and the saga streams whose records do not read as a
/// saga (a payload that does not decode, a status record before `SagaStarted`), each with the
/// error: one such stream does not hide the others. A read error of the store fails it all.
pub(crate) fn scan(store: &Store) -> Result<(Sagas, Malformed), SagaError> {
    let filter = ReadFilter::all()
        .stream_prefix(SAGA_STREAM_PREFIX)
        .event_types(SCANNED);
    let mut sagas: BTreeMap<String, SagaSummary> = BTreeMap::new();
    let mut malformed: BTreeMap<String, SagaError> = BTreeMap::new();
    for e in store.read_all(0, Direction::Forward, filter) {
        let e = e?;
        if malformed.contains_key(&*e.stream) {
            continue;
        }
        let record = match SagaRecord::from_event(&e) {
            Ok(r) => r,
            Err(err) => {
                sagas.remove(&*e.stream);
                malformed.insert(e.stream.to_string(), err);
                continue;
            }
        };
        if let SagaRecord::Started(s) = record {
            sagas.insert(
                e.stream.to_string(),
                SagaSummary {
                    stream: e.stream.to_string(),
                    saga_type: s.saga_type,
                    saga_id: s.saga_id,
                    status: SagaStatus::Running,
                    attention: None,
                },
            );
            continue;
        }
        let Some(s) = sagas.get_mut(&*e.stream) else {
            malformed.insert(
                e.stream.to_string(),
                SagaError::BadRecord {
                    stream: e.stream.to_string(),
                    version: e.version,
                    reason: "a status record before SagaStarted".into(),
                },
            );
            continue;
        };
        s.attention = None;
        s.status = match record {
            SagaRecord::Compensating { .. } | SagaRecord::RetryRequested { .. } => {
                SagaStatus::Compensating
            }
            SagaRecord::Completed => SagaStatus::Completed,
            SagaRecord::Compensated => SagaStatus::Compensated,
            SagaRecord::NeedsAttention { step, error } => {
                s.attention = Some((step.step, error));
                SagaStatus::NeedsAttention
            }
            _ => unreachable!("the filter lets only status records through"),
        };
    }
    Ok((sagas, malformed))
}
