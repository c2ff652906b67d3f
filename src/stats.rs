//! Store statistics for operators (`evlog stats`).
//!
//! [`stats_dir`] opens a store read-only (so it works while a writer runs, takes no lock and
//! changes no file), reads every event once, and adds up what is on disk. Segments stored
//! compressed (`NNN.zseg`, see [`crate::wire::zseg`]) count as segments, with their size on disk
//! in [`StoreStats::segment_bytes`] and the size of the `.seg` file they stand for in
//! [`StoreStats::image_bytes`]. Segments moved to the store's archive directory
//! ([`Store::archive_sealed`], named by the `archive.path` marker) count like the others, with
//! their index files; [`StoreStats::archived_segments`] and [`StoreStats::archive_bytes`] say
//! how much of it is in the archive.
//!
//! ```
//! use evlog::{EventData, ExpectedVersion, Store};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.append("order-1", ExpectedVersion::NoStream, &[EventData::new("OrderPlaced", b"{}".to_vec())])?;
//! store.close()?;
//! let stats = evlog::stats::stats_dir(dir.path())?;
//! assert_eq!(stats.events, 1);
//! assert_eq!(stats.event_types["OrderPlaced"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::event::ReadFilter;
use crate::store::Store;
use crate::wire::segment::{
    FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, parse_segment_file_name,
};
use crate::wire::zseg::{ZSEG_HEADER_BYTES, decode_zseg_header, parse_zseg_file_name};

/// What [`stats_dir`] found in a store directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Events in the store (the readable, checksummed log a read-only open sees).
    pub events: u64,
    /// Streams with at least one event.
    pub streams: u64,
    /// Segment files with a valid footer (immutable), compressed and archived ones included.
    pub segments_sealed: u64,
    /// Segment files without a footer: the active segment (0 or 1).
    pub segments_active: u64,
    /// Of the sealed segments, those stored compressed (`.zseg` files).
    pub compressed_segments: u64,
    /// Bytes of every file in the store directory: segments, indexes, checkpoint and anything
    /// else (`.corrupt`, `.tmp` and foreign files included), plus the segment and index files of
    /// the archive directory ([`StoreStats::archive_bytes`]). This is what a size goal counts;
    /// `bytes_on_disk - archive_bytes` is the store directory alone.
    pub bytes_on_disk: u64,
    /// Bytes of the segment files as they are on disk (a compressed segment's compressed size).
    pub segment_bytes: u64,
    /// Bytes the segments hold uncompressed: a `.seg` file's length, or the length of the image
    /// a `.zseg` file decompresses to. Equal to `segment_bytes` when nothing is compressed.
    pub image_bytes: u64,
    /// Bytes of the segments' `.idx` files (not `checkpoint.idx`), archived ones included.
    pub index_bytes: u64,
    /// The archive directory, when the store has one (named by its `archive.path` marker).
    pub archive_dir: Option<PathBuf>,
    /// Of the sealed segments, those read from the archive directory (compressed ones
    /// included). A segment file in the archive whose segment is also in the store directory (a
    /// copy left by an interrupted archive run: the store reads the store directory's) is not
    /// counted.
    pub archived_segments: u64,
    /// Bytes of the segment files (`.seg`, `.zseg`) and `.idx` files in the archive directory,
    /// leftover copies included (counted in `bytes_on_disk`; the counted segments' files are also
    /// in `segment_bytes` and `index_bytes`).
    pub archive_bytes: u64,
    /// Bytes of the events as an application sees them: payloads, event types, stream ids and
    /// user metadata (key and value bytes, and opaque metadata bytes), plus 16 per id (and per
    /// correlation and causation id) and 16 for version and timestamp.
    pub raw_event_bytes: u64,
    /// Number of events of each event type.
    pub event_types: BTreeMap<String, u64>,
    /// Smallest event timestamp, µs since the Unix epoch (`None` for an empty store).
    pub oldest_timestamp_us: Option<u64>,
    /// Largest event timestamp, µs since the Unix epoch (`None` for an empty store).
    pub newest_timestamp_us: Option<u64>,
    /// Position of the last event (`None` for an empty store).
    pub head_position: Option<u64>,
}

impl StoreStats {
    /// Segment files, sealed and active.
    pub fn segments(&self) -> u64 {
        self.segments_sealed + self.segments_active
    }

    /// Raw event bytes per segment byte on disk: below 1 while segments are not compressed
    /// (frame and record headers add bytes), above 1 once compression saves more than that.
    pub fn compression_ratio(&self) -> f64 {
        if self.segment_bytes == 0 {
            return 0.0;
        }
        self.raw_event_bytes as f64 / self.segment_bytes as f64
    }

    /// Bytes compression saves on disk: `image_bytes - segment_bytes`.
    pub fn compression_savings(&self) -> u64 {
        self.image_bytes.saturating_sub(self.segment_bytes)
    }
}

/// Computes the statistics of the store in `dir` without changing it.
///
/// Errors: [`Error::Io`] when the directory or a file cannot be read (a missing directory
/// included), [`Error::Corrupted`] when the store does not open or an event does not decode.
pub fn stats_dir(dir: &Path) -> Result<StoreStats> {
    let store = Store::open_read_only(dir)?;
    let mut s = StoreStats {
        streams: store.stream_count() as u64,
        head_position: store.head_position(),
        ..StoreStats::default()
    };
    // Borrowed events and metadata: nothing is allocated per event.
    store.replay(0, u64::MAX, &ReadFilter::all(), |e| {
        s.events += 1;
        let ids =
            1 + usize::from(e.correlation_id().is_some()) + usize::from(e.causation_id().is_some());
        let extra: usize = e
            .metadata_entries()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + e.metadata_bytes().len();
        s.raw_event_bytes +=
            (e.payload.len() + e.event_type.len() + e.stream.len() + extra + 16 * ids + 16) as u64;
        match s.event_types.get_mut(e.event_type) {
            Some(n) => *n += 1,
            None => {
                s.event_types.insert(e.event_type.to_owned(), 1);
            }
        }
        s.oldest_timestamp_us = Some(
            s.oldest_timestamp_us
                .map_or(e.timestamp_us, |t| t.min(e.timestamp_us)),
        );
        s.newest_timestamp_us = Some(
            s.newest_timestamp_us
                .map_or(e.timestamp_us, |t| t.max(e.timestamp_us)),
        );
        std::ops::ControlFlow::Continue(())
    })?;
    s.archive_dir = store.archive_dir()?;
    drop(store);
    // The store directory first, then the archive: a segment being archived meanwhile is copied
    // to the archive before it is removed from the store directory, so it is seen at least once.
    let files = list_files(dir)?;
    let store_has = |pos: u64, zseg: bool| {
        files.iter().any(|(n, _)| {
            parse_segment_file_name(n) == Some(pos)
                || (zseg && parse_zseg_file_name(n) == Some(pos))
        })
    };
    for (name, len) in &files {
        s.bytes_on_disk += len;
        // A `.zseg` next to a `.seg` of the same segment is a leftover of an interrupted
        // compression: the store reads the `.seg` file (and a writable open deletes it).
        let shadowed = |pos| store_has(pos, false);
        add_segment_file(&mut s, dir, name, *len, shadowed, false)?;
    }
    if let Some(archive) = s.archive_dir.clone() {
        let archived = list_files(&archive)?;
        for (name, len) in &archived {
            if parse_segment_file_name(name).is_none()
                && parse_zseg_file_name(name).is_none()
                && !is_index_name(name)
            {
                continue;
            }
            s.bytes_on_disk += len;
            s.archive_bytes += len;
            // Shadowed by a file of the same segment in the store directory (a copy left by an
            // interrupted archive run), or, for a `.zseg`, by a `.seg` in the archive.
            let shadowed = |pos| {
                store_has(pos, true)
                    || (parse_zseg_file_name(name).is_some()
                        && archived
                            .iter()
                            .any(|(n, _)| parse_segment_file_name(n) == Some(pos)))
            };
            add_segment_file(&mut s, &archive, name, *len, shadowed, true)?;
        }
    }
    Ok(s)
}

/// The files of `dir` (not directories) with their lengths.
fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed meanwhile (a writer's compression, archiving or retention).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("stat", &path)(e)),
        };
        if meta.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    Ok(files)
}

/// True for the name of a segment's index file (`NNN.idx`, not `checkpoint.idx`).
fn is_index_name(name: &str) -> bool {
    name.strip_suffix(".idx")
        .is_some_and(|stem| parse_segment_file_name(&format!("{stem}.seg")).is_some())
}

/// Counts one file of `dir` (the store directory, or the archive when `archived`) if it is a
/// segment that the store reads (not `shadowed` by another file of the same segment) or an index.
fn add_segment_file(
    s: &mut StoreStats,
    dir: &Path,
    name: &str,
    len: u64,
    shadowed: impl Fn(u64) -> bool,
    archived: bool,
) -> Result<()> {
    let path = dir.join(name);
    if let Some(pos) = parse_segment_file_name(name) {
        if archived && shadowed(pos) {
            return Ok(());
        }
        s.segment_bytes += len;
        s.image_bytes += len;
        if has_footer(&path, len)? {
            s.segments_sealed += 1;
            s.archived_segments += u64::from(archived);
        } else {
            s.segments_active += 1;
        }
    } else if let Some(pos) = parse_zseg_file_name(name) {
        if !shadowed(pos) {
            s.segment_bytes += len;
            s.image_bytes += zseg_image_len(&path)?;
            s.segments_sealed += 1;
            s.compressed_segments += 1;
            s.archived_segments += u64::from(archived);
        }
    } else if is_index_name(name) {
        s.index_bytes += len;
    }
    Ok(())
}

/// The length of the image a compressed segment stands for, from its (checked) header.
pub(crate) fn zseg_image_len(path: &Path) -> Result<u64> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        // Deleted meanwhile by the writer's retention: it holds nothing any more.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut buf = Vec::with_capacity(ZSEG_HEADER_BYTES);
    f.take(ZSEG_HEADER_BYTES as u64)
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    let (image_len, ..) = decode_zseg_header(&buf).map_err(|e| Error::corrupted(path, 0, e))?;
    Ok(image_len)
}

/// True when the segment file ends with a valid footer whose `data_end` is where it starts
/// (the test open uses, `format/FORMAT.md` § 4.2).
fn has_footer(path: &Path, len: u64) -> Result<bool> {
    if len < (SEGMENT_HEADER_BYTES + FOOTER_BYTES) as u64 {
        return Ok(false);
    }
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        // Replaced (compressed) or deleted meanwhile by the writer: only sealed segments are.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut buf = [0u8; FOOTER_BYTES];
    f.seek(SeekFrom::Start(len - FOOTER_BYTES as u64))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(io_err("read", path))?;
    Ok(SegmentFooter::decode(&buf).is_ok_and(|ft| ft.data_end == len - FOOTER_BYTES as u64))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}
