//! Inspection of a store's files for operators (`evlog inspect`): what each segment, index and
//! checkpoint holds, decoded with the `wire` decoders straight from the files.
//!
//! Inspection takes no lock and writes nothing, so it works while a writer runs (a frame being
//! written at that moment may show as a torn tail). It does not open the store, so it also works
//! on a store that does not open. It reports what it finds in two kinds: **problems** (damage:
//! a structure that fails its checks) and **notes** (facts that open handles, such as a torn
//! tail of the active segment).
//!
//! ```
//! use evlog::{EventData, ExpectedVersion, Store};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.append("order-1", ExpectedVersion::NoStream, &[EventData::new("OrderPlaced", b"{}".to_vec())])?;
//! store.close()?;
//! let d = evlog::inspect::inspect_dir(dir.path())?;
//! assert_eq!(d.segments.len(), 1);
//! assert_eq!(d.segments[0].event_count, 1);
//! assert!(d.is_clean());
//! let seg = evlog::inspect::inspect_segment(&d.segments[0].path)?;
//! assert_eq!(seg.frames[0].first_position, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::segment::{durable_frame_after, scan_frames};
use crate::wire::DecodeError;
use crate::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint};
use crate::wire::index_file::{IndexHeader, IndexView, check_index_body};
use crate::wire::segment::{
    FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader, parse_segment_file_name,
};

/// The compression of event payloads. The format stores payloads uncompressed (format
/// version 1 has no compression); this names it for operators.
pub const COMPRESSION: &str = "none";

/// One frame of a segment, as listed by [`inspect_segment`]. Only frames that passed every
/// check (header, body checksum, trailer, records, position) are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Byte offset of the frame in the segment file.
    pub offset: u64,
    /// Length of the whole frame (header, body, trailer).
    pub len: u64,
    /// Events in the frame.
    pub count: u32,
    /// Global position of the frame's first event.
    pub first_position: u64,
    /// Positions before `first_position` not yet known durable when the frame was written.
    pub unsynced_before: u16,
    /// CRC-32 of the body (checked).
    pub body_crc: u32,
    /// CRC-32 of the header (checked).
    pub header_crc: u32,
}

/// Where and why the frames of a segment stop before its data ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameStop {
    /// Offset of the frame that failed (the end of the last good frame).
    pub frame_offset: u64,
    /// Offset of the failed check in the file.
    pub offset: u64,
    /// Which check failed.
    pub what: &'static str,
    /// Value the format requires, where one applies.
    pub expected: u64,
    /// Value found.
    pub found: u64,
    /// Bytes from `frame_offset` to the end of the segment's data.
    pub remaining_bytes: u64,
    /// True when this is a torn tail of an unsealed segment (no later frame says the damaged
    /// position was durable): open cuts it. False: damage, a problem.
    pub torn_tail: bool,
}

/// What [`inspect_segment`] (or [`inspect_dir`], per segment) found in one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInspection {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// The first position its name says (`None` for a name that is not a segment name).
    pub name_position: Option<u64>,
    /// The decoded header, or why it does not decode.
    pub header: std::result::Result<SegmentHeader, DecodeError>,
    /// The footer, when the segment is sealed (a valid footer whose `data_end` is where it starts).
    pub footer: Option<SegmentFooter>,
    /// End of the frame area: the footer's `data_end`, or the file length.
    pub data_end: u64,
    /// Frames: counted by reading them, or taken from the footer (see `counted_from_footer`).
    pub frame_count: u64,
    /// Events, counted the same way.
    pub event_count: u64,
    /// True when the counts come from the footer (sealed segments of [`inspect_dir`]).
    pub counted_from_footer: bool,
    /// Every good frame in order ([`inspect_segment`] only; empty in [`inspect_dir`]).
    pub frames: Vec<FrameInfo>,
    /// Where the frames stop early, if they do.
    pub stop: Option<FrameStop>,
    /// Damage found.
    pub problems: Vec<String>,
    /// Facts that are not damage.
    pub notes: Vec<String>,
}

impl SegmentInspection {
    /// True when the segment has a footer.
    pub fn sealed(&self) -> bool {
        self.footer.is_some()
    }
}

/// What an `.idx` file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInspection {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// The decoded header, or why it does not decode.
    pub header: std::result::Result<IndexHeader, DecodeError>,
    /// Whether the body checksum matches (`None` when the header did not decode).
    pub body_ok: Option<bool>,
    /// Damage found (an index is a cache: open rebuilds a damaged or stale one).
    pub problems: Vec<String>,
    /// Facts that are not damage.
    pub notes: Vec<String>,
}

/// What the checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// First position the checkpoint does not cover.
    pub next_position: u64,
    /// Header checksum of the last covered frame.
    pub last_frame_header_crc: u32,
    /// Streams in its stream table.
    pub streams: u64,
    /// Header of the embedded index of the active segment's covered prefix.
    pub index: std::result::Result<IndexHeader, DecodeError>,
}

/// What `checkpoint.idx` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInspection {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// The decoded checkpoint, or why it does not decode.
    pub checkpoint: std::result::Result<CheckpointInfo, DecodeError>,
    /// Damage found (the checkpoint is a cache: open drops a bad one and rescans).
    pub problems: Vec<String>,
}

/// What [`inspect_dir`] found in a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirInspection {
    /// The directory.
    pub dir: PathBuf,
    /// Segment files in order of their names (first position).
    pub segments: Vec<SegmentInspection>,
    /// `.idx` files of segments, in order of their names.
    pub indexes: Vec<IndexInspection>,
    /// The checkpoint, if there is one.
    pub checkpoint: Option<CheckpointInspection>,
    /// Every other file (`LOCK`, `*.corrupt`, `*.tmp`, foreign files) with its length.
    pub other_files: Vec<(String, u64)>,
    /// Problems of the directory as a whole (the segment chain).
    pub problems: Vec<String>,
}

impl DirInspection {
    /// Every problem of every file, each prefixed with its file name.
    pub fn all_problems(&self) -> Vec<String> {
        let name = |p: &Path| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        let mut v = self.problems.clone();
        for s in &self.segments {
            v.extend(s.problems.iter().map(|p| format!("{}: {p}", name(&s.path))));
        }
        for i in &self.indexes {
            v.extend(i.problems.iter().map(|p| format!("{}: {p}", name(&i.path))));
        }
        if let Some(c) = &self.checkpoint {
            v.extend(c.problems.iter().map(|p| format!("{}: {p}", name(&c.path))));
        }
        v
    }

    /// True when no file shows a problem.
    pub fn is_clean(&self) -> bool {
        self.all_problems().is_empty()
    }

    /// Events in the segments.
    pub fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.event_count).sum()
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

fn describe(e: &DecodeError, base: u64) -> String {
    format!(
        "{} at byte {} (expected {:#x}, found {:#x})",
        e.what,
        base + e.at as u64,
        e.expected,
        e.found
    )
}

/// Inspects one segment file in detail: header, footer and every frame, stopping at the first
/// frame that fails a check (the stop says where and why). Reads the whole file.
///
/// Errors: [`Error::Io`] when the file cannot be read.
pub fn inspect_segment(path: &Path) -> Result<SegmentInspection> {
    let buf = fs::read(path).map_err(io_err("read", path))?;
    Ok(segment_from_bytes(path, &buf, true))
}

/// Reads the header and the last 64 bytes of a segment, to decide whether it is sealed.
fn read_ends(path: &Path) -> Result<(u64, Vec<u8>, Vec<u8>)> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let len = f.metadata().map_err(io_err("stat", path))?.len();
    let mut head = vec![0u8; (len as usize).min(SEGMENT_HEADER_BYTES)];
    f.read_exact(&mut head).map_err(io_err("read", path))?;
    let mut tail = Vec::new();
    if len >= (SEGMENT_HEADER_BYTES + FOOTER_BYTES) as u64 {
        tail = vec![0u8; FOOTER_BYTES];
        f.seek(SeekFrom::Start(len - FOOTER_BYTES as u64))
            .and_then(|_| f.read_exact(&mut tail))
            .map_err(io_err("read", path))?;
    }
    Ok((len, head, tail))
}

/// The footer, if `tail` (the last 64 bytes of a file of `len` bytes) is one (FORMAT.md § 4.2).
fn footer_of(tail: &[u8], len: u64) -> Option<SegmentFooter> {
    if tail.len() != FOOTER_BYTES {
        return None;
    }
    SegmentFooter::decode(tail)
        .ok()
        .filter(|f| f.data_end == len - FOOTER_BYTES as u64)
}

fn name_position(path: &Path) -> Option<u64> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_file_name)
}

/// The parts of a segment inspection that need only its two ends.
fn segment_ends(path: &Path, len: u64, head: &[u8], tail: &[u8]) -> SegmentInspection {
    let mut s = SegmentInspection {
        path: path.to_path_buf(),
        bytes: len,
        name_position: name_position(path),
        header: SegmentHeader::decode(head),
        footer: footer_of(tail, len),
        data_end: len,
        frame_count: 0,
        event_count: 0,
        counted_from_footer: false,
        frames: Vec::new(),
        stop: None,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    match &s.header {
        Err(e) => s
            .problems
            .push(format!("segment header: {}", describe(e, 0))),
        Ok(h) => {
            if let Some(n) = s.name_position
                && n != h.first_position
            {
                s.problems.push(format!(
                    "header first position {} differs from the file name's {n}",
                    h.first_position
                ));
            }
        }
    }
    if let Some(f) = s.footer {
        s.data_end = f.data_end;
        if let Ok(h) = &s.header
            && h.first_position != f.first_position
        {
            s.problems.push(format!(
                "footer first position {} differs from the header's {}",
                f.first_position, h.first_position
            ));
        }
    }
    s
}

fn segment_from_bytes(path: &Path, buf: &[u8], keep_frames: bool) -> SegmentInspection {
    let len = buf.len() as u64;
    let head = &buf[..buf.len().min(SEGMENT_HEADER_BYTES)];
    let tail = if buf.len() >= SEGMENT_HEADER_BYTES + FOOTER_BYTES {
        &buf[buf.len() - FOOTER_BYTES..]
    } else {
        &[][..]
    };
    let mut s = segment_ends(path, len, head, tail);
    let Ok(h) = s.header else {
        return s;
    };
    let data = &buf[..s.data_end as usize];
    let mut frames = Vec::new();
    let mut events = 0u64;
    let end = scan_frames(
        data,
        0,
        SEGMENT_HEADER_BYTES,
        h.first_position,
        |off, fh, _| {
            events += u64::from(fh.count);
            frames.push(FrameInfo {
                offset: off,
                len: fh.frame_len() as u64,
                count: fh.count,
                first_position: fh.first_position,
                unsynced_before: fh.unsynced_before,
                body_crc: fh.body_crc,
                header_crc: fh.header_crc,
            });
            Ok(())
        },
    );
    s.frame_count = frames.len() as u64;
    s.event_count = events;
    if keep_frames {
        s.frames = frames;
    }
    if let Some(e) = end.error {
        let torn_tail = s.footer.is_none()
            && durable_frame_after(data, end.good_end as usize, end.next_position).is_none();
        let stop = FrameStop {
            frame_offset: end.good_end,
            offset: e.at as u64,
            what: e.what,
            expected: e.expected,
            found: e.found,
            remaining_bytes: s.data_end - end.good_end,
            torn_tail,
        };
        let msg = format!(
            "frames stop at byte {}: {} at byte {} (expected {:#x}, found {:#x}); {} byte(s) after it",
            stop.frame_offset,
            stop.what,
            stop.offset,
            stop.expected,
            stop.found,
            stop.remaining_bytes
        );
        if torn_tail {
            s.notes.push(format!(
                "{msg}: a torn tail (no later frame says it was durable); a writable open cuts it"
            ));
        } else {
            s.problems.push(msg);
        }
        s.stop = Some(stop);
    }
    if let Some(f) = s.footer {
        if s.stop.is_none() && (f.frame_count, f.event_count) != (s.frame_count, s.event_count) {
            s.problems.push(format!(
                "footer counts {} frame(s), {} event(s); the frames hold {} and {}",
                f.frame_count, f.event_count, s.frame_count, s.event_count
            ));
        }
        let crc = crc32fast::hash(data);
        if crc != f.data_crc {
            s.problems.push(format!(
                "footer data checksum {:#x} does not match the segment's bytes ({crc:#x})",
                f.data_crc
            ));
        }
    }
    s
}

/// Inspects an `.idx` file: header, body checksum. Errors: [`Error::Io`].
pub fn inspect_index(path: &Path) -> Result<IndexInspection> {
    let buf = fs::read(path).map_err(io_err("read", path))?;
    let mut i = IndexInspection {
        path: path.to_path_buf(),
        bytes: buf.len() as u64,
        header: IndexView::new(&buf).map(|v| v.header),
        body_ok: None,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    match &i.header {
        Err(e) => i.problems.push(format!("index header: {}", describe(e, 0))),
        Ok(h) => {
            let ok = check_index_body(&buf, h).is_ok();
            i.body_ok = Some(ok);
            if !ok {
                i.problems.push(
                    "index body checksum does not match (open rebuilds the index)".to_string(),
                );
            }
        }
    }
    Ok(i)
}

/// Inspects `checkpoint.idx`. Errors: [`Error::Io`].
pub fn inspect_checkpoint(path: &Path) -> Result<CheckpointInspection> {
    let buf = fs::read(path).map_err(io_err("read", path))?;
    let checkpoint = decode_checkpoint(&buf).map(|c| CheckpointInfo {
        next_position: c.next_position,
        last_frame_header_crc: c.last_frame_header_crc,
        streams: c.streams.len() as u64,
        index: IndexView::new(c.index).map(|v| v.header),
    });
    let mut problems = Vec::new();
    match &checkpoint {
        Err(e) => problems.push(format!(
            "checkpoint: {} (open drops it and rescans the log)",
            describe(e, 0)
        )),
        Ok(c) => {
            if let Err(e) = &c.index {
                problems.push(format!("checkpoint index: {}", describe(e, 0)));
            }
        }
    }
    Ok(CheckpointInspection {
        path: path.to_path_buf(),
        bytes: buf.len() as u64,
        checkpoint,
        problems,
    })
}

/// Inspects a store directory: every segment (header, footer, sealed or active, frame and event
/// counts, bytes), every `.idx` file and the checkpoint, and the segment chain. Sealed segments
/// are counted from their footers (only their two ends are read); unsealed ones are read whole.
///
/// Errors: [`Error::Io`] when the directory or a file cannot be read.
pub fn inspect_dir(dir: &Path) -> Result<DirInspection> {
    let mut seg_names = Vec::new();
    let mut idx_names = Vec::new();
    let mut other_files = Vec::new();
    let mut has_checkpoint = false;
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().map_err(io_err("stat", &entry.path()))?;
        if !meta.is_file() {
            continue;
        }
        if let Some(pos) = parse_segment_file_name(&name) {
            seg_names.push((pos, name));
        } else if name == CHECKPOINT_FILE_NAME {
            has_checkpoint = true;
        } else if let Some(pos) = name
            .strip_suffix(".idx")
            .and_then(|s| parse_segment_file_name(&format!("{s}.seg")))
        {
            idx_names.push((pos, name));
        } else {
            other_files.push((name, meta.len()));
        }
    }
    seg_names.sort();
    idx_names.sort();
    other_files.sort();
    let mut segments = Vec::new();
    let last = seg_names.len().saturating_sub(1);
    for (i, (_, name)) in seg_names.iter().enumerate() {
        let path = dir.join(name);
        let (len, head, tail) = read_ends(&path)?;
        let sealed = footer_of(&tail, len).is_some();
        let mut s = if sealed {
            let mut s = segment_ends(&path, len, &head, &tail);
            let f = s.footer.expect("sealed");
            s.frame_count = f.frame_count;
            s.event_count = f.event_count;
            s.counted_from_footer = true;
            s
        } else {
            let buf = fs::read(&path).map_err(io_err("read", &path))?;
            segment_from_bytes(&path, &buf, false)
        };
        if !sealed && i != last {
            s.problems.push(
                "no footer, but it is not the last segment (only the last one may be active)"
                    .to_string(),
            );
        }
        segments.push(s);
    }
    let problems = chain_problems(&segments);
    let mut indexes = Vec::new();
    for (pos, name) in &idx_names {
        let mut i = inspect_index(&dir.join(name))?;
        match segments.iter().find(|s| s.name_position == Some(*pos)) {
            None => i
                .notes
                .push("no segment of this number: a leftover index, never read".to_string()),
            Some(s) => {
                if let (Ok(h), Some(f)) = (&i.header, s.footer) {
                    if h.first_position != *pos {
                        i.problems.push(format!(
                            "index first position {} differs from the file name's {pos}",
                            h.first_position
                        ));
                    }
                    if (
                        u64::from(h.covered_len),
                        u64::from(h.event_count),
                        u64::from(h.frame_count),
                    ) != (f.data_end, f.event_count, f.frame_count)
                    {
                        i.problems.push(format!(
                            "index covers {} byte(s), {} event(s), {} frame(s); the segment's footer says {}, {}, {} (open rebuilds it)",
                            h.covered_len, h.event_count, h.frame_count, f.data_end, f.event_count, f.frame_count
                        ));
                    }
                } else if s.footer.is_none() {
                    i.notes.push(
                        "its segment is not sealed: a leftover index, ignored until the segment is sealed"
                            .to_string(),
                    );
                }
            }
        }
        indexes.push(i);
    }
    let checkpoint = if has_checkpoint {
        let mut c = inspect_checkpoint(&dir.join(CHECKPOINT_FILE_NAME))?;
        if let Ok(info) = &c.checkpoint
            && let Ok(ih) = &info.index
            && !segments
                .iter()
                .any(|s| s.name_position == Some(ih.first_position))
        {
            c.problems.push(format!(
                "names segment {} which does not exist",
                crate::wire::segment::segment_file_name(ih.first_position)
            ));
        }
        Some(c)
    } else {
        None
    };
    Ok(DirInspection {
        dir: dir.to_path_buf(),
        segments,
        indexes,
        checkpoint,
        other_files,
        problems,
    })
}

/// Checks that segments follow each other: `seq` + 1, positions continuing the previous footer.
fn chain_problems(segments: &[SegmentInspection]) -> Vec<String> {
    let mut v = Vec::new();
    for w in segments.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (Ok(ha), Ok(hb)) = (&a.header, &b.header) else {
            continue;
        };
        let name = |s: &SegmentInspection| {
            s.path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        if hb.seq != ha.seq.wrapping_add(1) {
            v.push(format!(
                "{}: seq {} does not follow {}'s seq {}",
                name(b),
                hb.seq,
                name(a),
                ha.seq
            ));
        }
        if let Some(f) = a.footer {
            let last = f.last_position();
            if hb.prev_last_position != Some(last) || hb.first_position != last + 1 {
                v.push(format!(
                    "{}: does not follow {} (its last position is {last}; this one starts at {} and names {:?} as the previous last position)",
                    name(b),
                    name(a),
                    hb.first_position,
                    hb.prev_last_position
                ));
            }
        }
    }
    if let Some(Ok(h)) = segments.first().map(|s| &s.header)
        && h.prev_last_position.is_some()
        && h.first_position == 0
    {
        v.push("the first segment names a predecessor".to_string());
    }
    v
}
