//! Why a snapshot file was not used. A snapshot is a cache of what the events say: one that
//! cannot be trusted is skipped, never an error, and the state is rebuilt from the events.

use std::fmt;
use std::path::PathBuf;

/// Why a snapshot file was ignored: the first check that failed. The checks run in about the
/// order of the variants; `format/FORMAT.md` § 20.4 gives the exact order.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoredReason {
    /// The file is shorter than its header says (or than a header): a torn or cut file.
    Truncated,
    /// Bytes 0..8 are not `EVLOGSNP`.
    BadMagic,
    /// The header's CRC-32 does not match its bytes.
    HeaderChecksum,
    /// The header is intact but of a format version this build does not know (a newer evlog
    /// wrote it).
    UnsupportedVersion,
    /// A length field is zero where it may not be, or above its limit
    /// ([`MAX_SNAPSHOT_BYTES`](super::MAX_SNAPSHOT_BYTES) and friends).
    LengthOverLimit,
    /// The file is longer than its header says.
    TrailingBytes,
    /// The stored stream id fails its CRC-32, is not UTF-8, or does not hash to the header's
    /// stream hash.
    StreamIdDamaged,
    /// The file name's stream hash or version disagrees with the header.
    NameMismatch,
    /// The snapshot belongs to another stream whose id has the same hash.
    OtherStream,
    /// The snapshot's version is past the stream's last event (the log was cut by a repair, or
    /// the snapshot comes from another store).
    VersionAhead,
    /// The state was written under another schema version of the aggregate.
    SchemaMismatch,
    /// The compressed state fails its CRC-32.
    BodyChecksum,
    /// The compressed state does not decompress to exactly the recorded length.
    Decompress,
    /// The decompressed state does not deserialize into the aggregate's type (or leaves bytes
    /// over).
    Deserialize,
}

impl IgnoredReason {
    /// A short, stable description, e.g. `"body checksum"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IgnoredReason::Truncated => "truncated",
            IgnoredReason::BadMagic => "bad magic",
            IgnoredReason::HeaderChecksum => "header checksum",
            IgnoredReason::UnsupportedVersion => "unsupported format version",
            IgnoredReason::LengthOverLimit => "length over limit",
            IgnoredReason::TrailingBytes => "trailing bytes",
            IgnoredReason::StreamIdDamaged => "stream id damaged",
            IgnoredReason::NameMismatch => "file name disagrees with header",
            IgnoredReason::OtherStream => "other stream",
            IgnoredReason::VersionAhead => "version past the stream's end",
            IgnoredReason::SchemaMismatch => "schema version mismatch",
            IgnoredReason::BodyChecksum => "body checksum",
            IgnoredReason::Decompress => "does not decompress",
            IgnoredReason::Deserialize => "does not deserialize",
        }
    }

    /// True when the file's own bytes are damaged (as opposed to an intact file that does not
    /// fit this reader, stream or aggregate).
    pub fn is_damage(&self) -> bool {
        !matches!(
            self,
            IgnoredReason::UnsupportedVersion
                | IgnoredReason::OtherStream
                | IgnoredReason::VersionAhead
                | IgnoredReason::SchemaMismatch
                | IgnoredReason::Deserialize
        )
    }
}

impl fmt::Display for IgnoredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot file a load skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredSnapshot {
    /// The file.
    pub file: PathBuf,
    /// The stream version its name gives.
    pub version: u64,
    /// Why it was skipped.
    pub reason: IgnoredReason,
}
