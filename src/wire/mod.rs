//! Byte encoding of every on-disk structure: pure functions over byte slices. The format is
//! specified in `format/FORMAT.md`; `tests/format_spec.rs` pins these constants to it.

pub mod archive;
pub mod bytes;
pub mod checkpoint;
pub mod frame;
pub mod index_file;
pub mod index_names;
pub mod limits;
pub mod record;
pub mod segment;
pub mod settings;
pub mod zseg;

pub use bytes::{DecodeError, stream_hash};
