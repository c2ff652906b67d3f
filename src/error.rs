//! The one error type of the library.

use std::io;
use std::path::PathBuf;

use uuid::Uuid;

use crate::event::ExpectedVersion;

/// Everything that can go wrong in evlog. Corruption carries the file and byte offset.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Stored bytes failed a check.
    #[error(
        "corrupted {file}: {what} at byte offset {offset} (expected {expected:#x}, found {found:#x}); \
         `evlog verify DIR` lists every problem and `evlog repair DIR` cuts the log there \
         (the damaged bytes are kept in a .corrupt file)"
    )]
    Corrupted {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// Which check failed.
        what: &'static str,
        /// Value the format requires, where one applies.
        expected: u64,
        /// Value found.
        found: u64,
    },
    /// Intact bytes of a format version this build does not know: a newer evlog wrote them.
    /// Nothing is cut or repaired; upgrade to open the store.
    #[error(
        "{file}: {what} {found} at byte offset {offset} is newer than this evlog reads ({expected}); \
         upgrade evlog to open this store (nothing was changed)"
    )]
    UnsupportedFormat {
        /// The file.
        file: PathBuf,
        /// Byte offset of the version field.
        offset: u64,
        /// Which version field.
        what: &'static str,
        /// The version this build reads.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// Another process holds the store's write lock.
    #[error(
        "store {dir} is locked by another writer: stop that process, or open this one read-only"
    )]
    Locked {
        /// The store directory.
        dir: PathBuf,
    },
    /// The stream was not at the version the append expected; nothing was written.
    #[error("wrong expected version for stream {stream:?}: expected {expected}, stream is at {}",
        .actual.map_or("no stream".to_string(), |v| format!("version {v}")))]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's last version (`None`: no events).
        actual: Option<u64>,
    },
    /// The stream was hard-deleted (tombstoned); it can never be written again.
    #[error("stream {stream:?} is deleted for good (tombstoned); use another stream id")]
    StreamDeleted {
        /// The stream.
        stream: String,
    },
    /// Bad input to an API call; nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An event id was reused with different content, or in a different append.
    #[error(
        "event id {id} is already stored with other content or in another append; \
         use a new id for a new event"
    )]
    DuplicateEventId {
        /// The reused id.
        id: Uuid,
    },
    /// An earlier write or fsync failed; appends are refused until the store is reopened.
    #[error(
        "store refuses appends after a failed write or fsync; reopen it (open cuts any torn tail)"
    )]
    Poisoned,
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The store was opened read-only.
    #[error("store is opened read-only; open it with Store::open to append")]
    ReadOnly,
    /// A subscription's checkpoint stream holds an event that is not a checkpoint.
    #[error(
        "checkpoint stream {stream:?} holds an event that is not a checkpoint at version \
         {version}: {reason}; give the subscription another name, or delete the stream to start over"
    )]
    BadCheckpoint {
        /// The checkpoint stream (`$checkpoint-NAME`).
        stream: String,
        /// Version of the event that is not a checkpoint.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path` while doing `op`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// A decode error found in `file`, whose decoded slice started at byte `base`.
    pub(crate) fn corrupted(
        file: impl Into<PathBuf>,
        base: u64,
        e: crate::wire::DecodeError,
    ) -> Error {
        if e.unsupported {
            return Error::UnsupportedFormat {
                file: file.into(),
                offset: base + e.at as u64,
                what: e.what,
                expected: e.expected,
                found: e.found,
            };
        }
        Error::Corrupted {
            file: file.into(),
            offset: base + e.at as u64,
            what: e.what,
            expected: e.expected,
            found: e.found,
        }
    }
}
