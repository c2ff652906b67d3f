//! Indexes: the in-memory index of the active segment. Sealed segments' indexes are files
//! (`wire::index_file`) mapped by the segment layer; the checkpoint (`wire::checkpoint`) holds
//! the stream table. All of them are caches rebuilt from the log when missing or stale.

pub mod active;
pub mod fasthash;

pub use active::{ActiveIndex, BaseIndex};
pub use fasthash::FastMap;
