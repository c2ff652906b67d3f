//! [`BusError`]: what can go wrong in the bus.

use crate::bus::config::ConfigError;

/// Everything the bus can fail with.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The store refused a read or an append (see [`crate::Error`]).
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// A configuration variable does not parse.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An event could not be encoded.
    #[error("event {event_type} does not encode: {reason}")]
    Encode {
        /// The event's type.
        event_type: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// A handler name is empty, starts with `$` or is already taken on this bus.
    #[error("handler name {name:?}: {reason}")]
    HandlerName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No handler of that name runs on this bus (or it has stopped).
    #[error("no handler named {0:?} runs on this bus")]
    NoHandler(String),
    /// The bus was shut down: it runs no handler any more; make a new one.
    #[error("the bus is shut down; make a new EventBus to run handlers again")]
    ShutDown,
    /// Handlers run as tokio tasks: registering one needs a tokio runtime.
    #[error("register handlers from inside a tokio runtime (the handler runs as a tokio task)")]
    NoRuntime,
    /// A dead-letter call named a position that is not parked for the handler.
    #[error("position {position} is not parked for handler {handler:?}; list its dead letters")]
    NotParked {
        /// The handler.
        handler: String,
        /// The position.
        position: u64,
    },
    /// A redrive of one event that is not the first parked event of its stream.
    #[error(
        "position {position} of stream {stream:?} is parked behind position {first}: a stream's \
         events are redriven in order; redrive {first} first, or the whole stream"
    )]
    NotFirstInStream {
        /// The position asked for.
        position: u64,
        /// Its stream.
        stream: String,
        /// The stream's first parked position.
        first: u64,
    },
    /// The dead-letter stream holds an event that is not a dead-letter record.
    #[error(
        "dead-letter stream {stream:?} holds an event that is not a dead-letter record at \
         version {version}: {reason}"
    )]
    BadDeadLetter {
        /// The stream (`$dlq-HANDLER`).
        stream: String,
        /// Version of the event.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A handler's task ended with an error or was cancelled.
    #[error("handler {handler:?} stopped: {reason}")]
    HandlerStopped {
        /// The handler.
        handler: String,
        /// Why.
        reason: String,
    },
}
