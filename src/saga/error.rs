//! [`SagaError`]: what can go wrong in the saga layer.

/// Everything the saga layer can fail with.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// The store refused a read or an append (see [`crate::Error`]).
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// A bus call failed (registering the handler that starts sagas from events).
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// A saga definition is not valid: its type name, a step name, or no steps.
    #[error("saga definition {saga_type:?}: {reason}")]
    Definition {
        /// The saga type.
        saga_type: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A saga id is empty.
    #[error("saga id {saga_id:?} of type {saga_type:?}: {reason}")]
    BadId {
        /// The saga type.
        saga_type: String,
        /// The id.
        saga_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A saga type is already registered on this manager.
    #[error("saga type {0:?} is already registered on this manager")]
    AlreadyRegistered(String),
    /// The events of this type are routed already on this manager.
    #[error("the events {0:?} are routed already on this manager (one route per event type)")]
    AlreadyRouted(String),
    /// No saga of that type is registered on this manager.
    #[error("no saga type {0:?} is registered on this manager; register its definition first")]
    UnknownType(String),
    /// A saga with this id was started before (it runs, or ran, once).
    #[error(
        "saga {saga_type}/{saga_id} was already started (stream {stream:?}): a saga id runs \
         once; wait for it, or start a new id"
    )]
    AlreadyStarted {
        /// The saga type.
        saga_type: String,
        /// The id.
        saga_id: String,
        /// Its stream.
        stream: String,
    },
    /// No saga with this id was ever started.
    #[error("no saga {saga_type}/{saga_id} (stream {stream:?} is empty)")]
    NotFound {
        /// The saga type.
        saga_type: String,
        /// The id.
        saga_id: String,
        /// Its stream.
        stream: String,
    },
    /// An operator retry of a saga that is not parked as needing attention.
    #[error("saga {stream:?} is {status}, not needs-attention: only a parked saga is retried")]
    NotParked {
        /// Its stream.
        stream: String,
        /// Its status.
        status: crate::saga::SagaStatus,
    },
    /// A saga whose recorded steps differ from its registered definition's (the definition
    /// changed since it started): it is not driven by this definition (its steps and
    /// compensations are found by their number).
    #[error(
        "saga {stream:?} recorded the steps {recorded:?}, its definition now has {defined:?}: \
         it is not driven by a changed definition"
    )]
    ChangedDefinition {
        /// Its stream.
        stream: String,
        /// The steps its `SagaStarted` record names.
        recorded: Vec<String>,
        /// The steps of the registered definition.
        defined: Vec<String>,
    },
    /// Another manager advanced the saga first (an append found another version): this
    /// manager stopped driving it, the other one goes on.
    #[error(
        "saga {stream:?} is driven by another manager (its stream moved past version {expected:?})"
    )]
    Lost {
        /// Its stream.
        stream: String,
        /// The version this manager expected.
        expected: Option<u64>,
    },
    /// An input or output does not encode or decode as JSON.
    #[error("saga {stream:?}: {what} does not (de)serialize: {reason}")]
    Serde {
        /// The saga's stream.
        stream: String,
        /// What: the input, or a step's output.
        what: String,
        /// The serde message.
        reason: String,
    },
    /// A saga stream holds an event that is not a saga record, or records out of order.
    #[error("saga stream {stream:?} at version {version}: {reason}")]
    BadRecord {
        /// The stream.
        stream: String,
        /// Version of the event.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The manager was shut down.
    #[error("the saga manager is shut down; make a new one to run sagas again")]
    ShutDown,
    /// A saga's task ended without a result (it panicked or was cancelled).
    #[error("saga {stream:?}: its task stopped: {reason}")]
    TaskStopped {
        /// Its stream.
        stream: String,
        /// Why.
        reason: String,
    },
}
