//! Inspection of a store's files for operators (`evlog inspect`): what each segment, index and
//! checkpoint holds, decoded with the `wire` decoders straight from the files.
//!
//! Inspection takes no lock and writes nothing, so it works while a writer runs (a frame being
//! written at that moment may show as a torn tail). It does not open the store, so it also works
//! on a store that does not open. It reports what it finds in two kinds: **problems** (damage:
//! a structure that fails its checks) and **notes** (facts that open handles, such as a torn
//! tail of the active segment).
//!
//! A sealed segment stored compressed (`NNN.zseg`, [`crate::wire::zseg`]) is inspected as the
//! `.seg` file it stands for (its *image*), after its compressed form: its header, block table
//! and (in [`inspect_segment`]) every block, each block's checksum checked before it is
//! decompressed. Offsets of blocks are offsets in the `.zseg` file; offsets of frames, of the
//! frame stop and of the segment's own problems are offsets in the image.
//!
//! Segments moved to the store's archive directory (`Store::archive_sealed`; the store
//! directory's `archive.path` marker names it) are part of the store: [`inspect_dir`] lists them
//! with the store directory's, with their paths in the archive, and their index files
//! ([`DirInspection::is_archived`] tells them apart).
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
use crate::wire::archive::{ARCHIVE_FILE_NAME, decode_archive_marker};
use crate::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint};
use crate::wire::index_file::{IndexHeader, IndexView, check_index_body, check_index_tables};
use crate::wire::index_names::INDEX_FLAG_NAMES;
use crate::wire::segment::{
    FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader, parse_segment_file_name,
};
use crate::wire::zseg::{
    ZSEG_BLOCK_ENTRY_BYTES, ZSEG_HEADER_BYTES, ZSEG_MAGIC, ZSEG_PREFIX_BYTES, ZsegLayout,
    decode_zseg, decode_zseg_header, decompress_block, parse_zseg_file_name,
};

/// The compression of event payloads inside segments. The segment format stores payloads
/// uncompressed (format version 1 has no compression); this names it for operators. Whole
/// sealed segments may be stored compressed (`.zseg` files, [`COMPRESSION_ZSEG`]).
pub const COMPRESSION: &str = "none";

/// The compression of compressed segment files (`.zseg`): zstd blocks.
pub const COMPRESSION_ZSEG: &str = "zstd";

/// [`FrameStop::what`] when the frames of a compressed segment stop at a damaged block (its
/// image offset is in [`FrameStop::offset`]; `expected` and `found` are 0).
pub const STOP_DAMAGED_BLOCK: &str = "frame reaches a damaged compressed block";

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
    /// True when that torn tail is all zeros, as the zeros a durable writer writes ahead of its
    /// frames are (`format/FORMAT.md` § 4). Open cuts them like any torn tail.
    pub zeros: bool,
}

/// The header of a compressed segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZsegHeader {
    /// Length of the image: the `.seg` file the compressed segment stands for.
    pub image_len: u64,
    /// Uncompressed bytes per block (the last block may hold fewer).
    pub block_raw_bytes: u32,
    /// Blocks.
    pub block_count: u32,
}

/// A block of a compressed segment that fails its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDamage {
    /// Block number, from 0.
    pub index: u32,
    /// Offset of its compressed bytes in the `.zseg` file.
    pub offset: u64,
    /// Length of its compressed bytes.
    pub compressed_len: u32,
    /// Offset of its bytes in the image.
    pub image_offset: u64,
    /// Length of its bytes in the image.
    pub raw_len: u32,
    /// Which check failed (the block checksum, checked before decompressing, or decompression).
    pub what: &'static str,
    /// Value the format requires, where one applies.
    pub expected: u64,
    /// Value found.
    pub found: u64,
}

/// What the compressed form of a `.zseg` segment holds (see [`SegmentInspection::compressed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZsegInspection {
    /// Length of the `.zseg` file.
    pub file_bytes: u64,
    /// The decoded compressed-segment header, or why it does not decode.
    pub header: std::result::Result<ZsegHeader, DecodeError>,
    /// Bytes of the compressed blocks (the file less its header, the copies of the segment's
    /// header and footer, and the block table); `None` when the block table does not decode.
    pub compressed_bytes: Option<u64>,
    /// True when every block was checked and decompressed ([`inspect_segment`]); false when
    /// only the header and the block table were read ([`inspect_dir`]).
    pub blocks_checked: bool,
    /// Blocks that fail their checksum or do not decompress to their length.
    pub damaged_blocks: Vec<BlockDamage>,
}

impl ZsegInspection {
    /// Image bytes per file byte (above 1 when compression saves space); `None` when the header
    /// does not decode.
    pub fn ratio(&self) -> Option<f64> {
        let h = self.header.as_ref().ok()?;
        Some(h.image_len as f64 / self.file_bytes.max(1) as f64)
    }
}

/// What [`inspect_segment`] (or [`inspect_dir`], per segment) found in one segment file.
///
/// For a compressed segment (`compressed` is `Some`), `header`, `footer`, `data_end`, the
/// frames and the stop describe its image (the `.seg` file it stands for), with image offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInspection {
    /// The file.
    pub path: PathBuf,
    /// Its length (for a compressed segment, the length of the `.zseg` file).
    pub bytes: u64,
    /// The compressed form, for a compressed segment (`.zseg`); `None` for a `.seg` file.
    pub compressed: Option<ZsegInspection>,
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

    /// True for a compressed segment (`.zseg`).
    pub fn is_compressed(&self) -> bool {
        self.compressed.is_some()
    }

    /// The length of the segment's bytes uncompressed: the image length of a compressed
    /// segment (0 when its header does not decode), the file length of a `.seg` file.
    pub fn image_bytes(&self) -> u64 {
        match &self.compressed {
            None => self.bytes,
            Some(z) => z.header.as_ref().map_or(0, |h| h.image_len),
        }
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
    /// The archive directory named by the store's `archive.path` marker (a relative path joined
    /// to `dir`), when there is a marker that decodes.
    pub archive_dir: Option<PathBuf>,
    /// Segment files (`.seg`, and `.zseg` of segments without a `.seg`) of the store directory
    /// and of the archive, in order of their names (first position). Where both hold a file of
    /// the same segment, the store directory's is listed, as the store reads it.
    pub segments: Vec<SegmentInspection>,
    /// `.idx` files of segments (the store directory's and the archive's), in order of their
    /// names (first position).
    pub indexes: Vec<IndexInspection>,
    /// The checkpoint, if there is one.
    pub checkpoint: Option<CheckpointInspection>,
    /// Every other file (`LOCK`, `archive.path`, `*.corrupt`, `*.tmp`, a `.zseg` left next to
    /// the `.seg` of the same segment by an interrupted compression, foreign files) with its
    /// length. Files of the store directory are named by their file name; files of the archive
    /// directory (a segment file left there by an interrupted archive run when the store
    /// directory holds the same segment, `*.tmp`, foreign files) by their path.
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

    /// Segments stored compressed (`.zseg`).
    pub fn compressed_segments(&self) -> usize {
        self.segments.iter().filter(|s| s.is_compressed()).count()
    }

    /// True when `path` (a segment's or an index's) is in the archive directory.
    pub fn is_archived(&self, path: &Path) -> bool {
        self.archive_dir
            .as_deref()
            .is_some_and(|a| path.parent() == Some(a))
    }

    /// Segments read from the archive directory.
    pub fn archived_segments(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| self.is_archived(&s.path))
            .count()
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
/// A compressed segment (a `.zseg` file, also as `*.zseg*.corrupt`, or any file that starts
/// with the compressed segment magic) is checked first: header, block table, and every block,
/// each block's checksum before it is decompressed (a damaged block is a problem, with its file
/// offset). Its image is then inspected frame by frame like a `.seg` file, offsets being image
/// offsets; frames stop at the first one that reaches a damaged block.
///
/// Errors: [`Error::Io`] when the file cannot be read.
pub fn inspect_segment(path: &Path) -> Result<SegmentInspection> {
    let buf = fs::read(path).map_err(io_err("read", path))?;
    if zseg_named(path) || buf.starts_with(&ZSEG_MAGIC) {
        return Ok(zseg_from_bytes(path, &buf));
    }
    Ok(segment_from_bytes(path, &buf, true))
}

/// True for a file named as a compressed segment, or as one moved aside (`NNN.zseg.corrupt`).
fn zseg_named(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".zseg") || n.contains(".zseg."))
}

/// The copies of the segment header and footer in a compressed segment, when it is long
/// enough to hold them.
fn zseg_copies(buf: &[u8]) -> (&[u8], &[u8]) {
    if buf.len() < ZSEG_PREFIX_BYTES {
        return (&[], &[]);
    }
    (
        ZsegLayout::segment_header(buf),
        ZsegLayout::segment_footer(buf),
    )
}

/// The inspection of a compressed segment whose header does not decode.
fn zseg_undecodable(path: &Path, file_len: u64, e: DecodeError) -> SegmentInspection {
    let mut s = segment_ends(path, file_len, &[], &[]);
    // Nothing of the image can be read: its header's problem would only repeat this one.
    s.problems.clear();
    s.problems
        .push(format!("compressed segment header: {}", describe(&e, 0)));
    s.header = Err(e.clone());
    s.compressed = Some(ZsegInspection {
        file_bytes: file_len,
        header: Err(e),
        compressed_bytes: None,
        blocks_checked: false,
        damaged_blocks: Vec::new(),
    });
    s
}

/// The parts of a compressed segment's inspection that need only its header and its copies of
/// the segment header and footer: counts are the footer's.
fn zseg_ends(path: &Path, file_len: u64, prefix: &[u8], zh: ZsegHeader) -> SegmentInspection {
    let (head, tail) = zseg_copies(prefix);
    let mut s = segment_ends(path, zh.image_len, head, tail);
    s.bytes = file_len;
    if prefix.len() < ZSEG_PREFIX_BYTES {
        s.problems.push(format!(
            "compressed segment is {file_len} byte(s) long, shorter than its {ZSEG_PREFIX_BYTES}-byte header and copies"
        ));
    } else if s.footer.is_none() {
        s.problems.push(format!(
            "the compressed segment's copy of the footer is not the footer of a {}-byte image (a compressed segment is always sealed)",
            zh.image_len
        ));
    }
    if let Some(f) = s.footer {
        s.frame_count = f.frame_count;
        s.event_count = f.event_count;
        s.counted_from_footer = true;
    }
    s.compressed = Some(ZsegInspection {
        file_bytes: file_len,
        header: Ok(zh),
        compressed_bytes: None,
        blocks_checked: false,
        damaged_blocks: Vec::new(),
    });
    s
}

fn zseg_header(buf: &[u8]) -> std::result::Result<ZsegHeader, DecodeError> {
    decode_zseg_header(buf).map(|(image_len, block_raw_bytes, block_count, _)| ZsegHeader {
        image_len,
        block_raw_bytes,
        block_count,
    })
}

fn zseg_from_bytes(path: &Path, buf: &[u8]) -> SegmentInspection {
    let file_len = buf.len() as u64;
    let zh = match zseg_header(buf) {
        Ok(h) => h,
        Err(e) => return zseg_undecodable(path, file_len, e),
    };
    let layout = match decode_zseg(buf) {
        Ok(l) => l,
        Err(e) => {
            let mut s = zseg_ends(path, file_len, buf, zh);
            s.problems.push(format!(
                "compressed segment: {} (no block can be read)",
                describe(&e, 0)
            ));
            return s;
        }
    };
    // Every block: its checksum, then its decompression, into a block-sized buffer first. A
    // damaged block's image bytes stay zero (never written: a header that claims a large image
    // costs memory only for the blocks that really decompress), so that the frames reaching it
    // fail their checks.
    let mut image = vec![0u8; layout.image_len as usize];
    let mut block = Vec::new();
    let mut damaged = Vec::new();
    match zstd::bulk::Decompressor::new() {
        Ok(mut dec) => {
            for (i, b) in layout.blocks.iter().enumerate() {
                let at = b.image_offset as usize;
                block.resize(b.raw_len as usize, 0);
                match decompress_block(buf, b, &mut block, &mut dec) {
                    Ok(()) => image[at..at + block.len()].copy_from_slice(&block),
                    Err(e) => damaged.push(BlockDamage {
                        index: i as u32,
                        offset: b.offset,
                        compressed_len: b.compressed_len,
                        image_offset: b.image_offset,
                        raw_len: b.raw_len,
                        what: e.what,
                        expected: e.expected,
                        found: e.found,
                    }),
                }
            }
        }
        Err(_) => {
            let mut s = zseg_ends(path, file_len, buf, zh);
            s.problems
                .push("could not create a zstd decompressor: blocks not checked".to_string());
            return s;
        }
    }
    let (head, tail) = zseg_copies(buf);
    let mut s = segment_ends(path, layout.image_len, head, tail);
    s.bytes = file_len;
    if s.footer.is_none() {
        s.problems.push(format!(
            "the compressed segment's copy of the footer is not the footer of a {}-byte image (a compressed segment is always sealed)",
            layout.image_len
        ));
    }
    for d in &damaged {
        s.problems.push(format!(
            "compressed block {} of {} at file byte {} ({} compressed byte(s), image bytes {}..{}): {} (expected {:#x}, found {:#x})",
            d.index,
            layout.blocks.len(),
            d.offset,
            d.compressed_len,
            d.image_offset,
            d.image_offset + u64::from(d.raw_len),
            d.what,
            d.expected,
            d.found
        ));
    }
    let unreadable: Vec<(u64, u64)> = damaged
        .iter()
        .map(|d| (d.image_offset, d.image_offset + u64::from(d.raw_len)))
        .collect();
    if damaged.is_empty()
        && (image[..SEGMENT_HEADER_BYTES] != *head || image[image.len() - FOOTER_BYTES..] != *tail)
    {
        s.problems.push(
            "the compressed segment's copies of the segment header and footer differ from the image"
                .to_string(),
        );
    }
    s.compressed = Some(ZsegInspection {
        file_bytes: file_len,
        header: Ok(zh),
        compressed_bytes: Some(
            layout
                .blocks
                .iter()
                .map(|b| u64::from(b.compressed_len))
                .sum(),
        ),
        blocks_checked: true,
        damaged_blocks: damaged,
    });
    scan_segment(s, &image, true, &unreadable)
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
    let name = path.file_name().and_then(|n| n.to_str())?;
    parse_segment_file_name(name).or_else(|| parse_zseg_file_name(name))
}

/// The parts of a segment inspection that need only its two ends.
fn segment_ends(path: &Path, len: u64, head: &[u8], tail: &[u8]) -> SegmentInspection {
    let mut s = SegmentInspection {
        path: path.to_path_buf(),
        bytes: len,
        compressed: None,
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
    let s = segment_ends(path, len, head, tail);
    scan_segment(s, buf, keep_frames, &[])
}

/// Scans the frames of `buf` (a segment file, or a compressed segment's image) for `s`, whose
/// header and footer are decoded. `unreadable` lists image ranges whose bytes could not be read
/// (damaged compressed blocks): frames stop at the first one that reaches them, and the footer's
/// data checksum is not checked.
fn scan_segment(
    mut s: SegmentInspection,
    buf: &[u8],
    keep_frames: bool,
    unreadable: &[(u64, u64)],
) -> SegmentInspection {
    let Ok(h) = s.header else {
        return s;
    };
    let data = &buf[..(s.data_end as usize).min(buf.len())];
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
            && unreadable.is_empty()
            && durable_frame_after(data, end.good_end as usize, end.next_position).is_none();
        // With a damaged block at or after the frame that failed, the frame reaches bytes that
        // could not be read: that, not the check its zeroed bytes failed, is why frames stop.
        let lost = unreadable
            .iter()
            .find(|(_, block_end)| *block_end > end.good_end);
        let stop = match lost {
            Some((block_start, _)) => FrameStop {
                frame_offset: end.good_end,
                offset: (*block_start).max(end.good_end),
                what: STOP_DAMAGED_BLOCK,
                expected: 0,
                found: 0,
                remaining_bytes: s.data_end - end.good_end,
                torn_tail: false,
                zeros: false,
            },
            None => FrameStop {
                frame_offset: end.good_end,
                offset: e.at as u64,
                what: e.what,
                expected: e.expected,
                found: e.found,
                remaining_bytes: s.data_end - end.good_end,
                torn_tail,
                zeros: torn_tail && data[end.good_end as usize..].iter().all(|&b| b == 0),
            },
        };
        let msg = if lost.is_some() {
            format!(
                "frames stop at byte {}: the frame reaches a damaged compressed block (image bytes from {} cannot be read); {} byte(s) from the frame on are not listed",
                stop.frame_offset, stop.offset, stop.remaining_bytes
            )
        } else {
            format!(
                "frames stop at byte {}: {} at byte {} (expected {:#x}, found {:#x}); {} byte(s) after it",
                stop.frame_offset,
                stop.what,
                stop.offset,
                stop.expected,
                stop.found,
                stop.remaining_bytes
            )
        };
        if stop.zeros {
            s.notes.push(format!(
                "frames end at byte {}: {} zero byte(s) after them (a durable writer writes zeros ahead of its frames); a writable open cuts them",
                stop.frame_offset, stop.remaining_bytes
            ));
        } else if stop.torn_tail {
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
        if unreadable.is_empty() && crc != f.data_crc {
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
        Err(e) if e.unsupported => i.notes.push(format!(
            "index of another version: {} (open rebuilds it)",
            describe(e, 0)
        )),
        Err(e) => i.problems.push(format!("index header: {}", describe(e, 0))),
        Ok(h) => {
            let ok = check_index_body(&buf, h).is_ok();
            i.body_ok = Some(ok);
            if !ok {
                i.problems.push(
                    "index body checksum does not match (open rebuilds the index)".to_string(),
                );
            } else if let Err(e) = check_index_tables(&buf, h) {
                i.problems.push(format!(
                    "index tables: {} (open rebuilds the index)",
                    describe(&e, 0)
                ));
            }
            if h.flags & INDEX_FLAG_NAMES == 0 {
                i.notes.push(
                    "no name tables (a sealed segment's index has them: open rebuilds it)"
                        .to_string(),
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
/// Compressed segments (`.zseg`) are read at their header, their copies of the segment header
/// and footer, and their block table (checked against its checksum and the file length); their
/// blocks are not read ([`inspect_segment`] checks them). A `.zseg` file next to the `.seg` file
/// of the same segment (left by an interrupted compression; the store reads the `.seg`) is
/// listed among the other files.
///
/// When the store has an archive (its `archive.path` marker names one), the archive's segment
/// and index files are inspected with the store directory's, in one chain. A segment file in the
/// archive whose segment the store directory also holds (left by an interrupted archive run;
/// the store reads the store directory's) is listed among the other files, by its path. A marker
/// that does not decode, or an archive directory that cannot be read, is a problem of the
/// directory (the store does not open); the store directory is inspected all the same.
///
/// Errors: [`Error::Io`] when the directory or a file cannot be read.
pub fn inspect_dir(dir: &Path) -> Result<DirInspection> {
    let mut problems = Vec::new();
    let archive_dir = archive_of(dir, &mut problems)?;
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(a) = &archive_dir {
        match fs::read_dir(a) {
            Ok(_) => dirs.push(a.clone()),
            Err(e) => problems.push(format!(
                "archive directory {} (named by {ARCHIVE_FILE_NAME}) cannot be read: {e}; its segments are not listed (the store does not open and verify fails until it is back)",
                a.display()
            )),
        }
    }
    // Segment files by preference (as the store reads them): the store directory's over the
    // archive's, `.seg` over `.zseg`; a file of a segment already listed is another file.
    let mut candidates: Vec<(u64, PathBuf, u64)> = Vec::new();
    let mut idx_names = Vec::new();
    let mut other_files = Vec::new();
    let mut has_checkpoint = false;
    for (k, d) in dirs.iter().enumerate() {
        let archived = k > 0;
        let shown = |name: &str| {
            if archived {
                d.join(name).display().to_string()
            } else {
                name.to_string()
            }
        };
        let (mut segs, mut zsegs) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(d).map_err(io_err("read directory", d))? {
            let entry = entry.map_err(io_err("read directory", d))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata().map_err(io_err("stat", &entry.path()))?;
            if !meta.is_file() {
                continue;
            }
            if let Some(pos) = parse_segment_file_name(&name) {
                segs.push((pos, d.join(&name), meta.len()));
            } else if let Some(pos) = parse_zseg_file_name(&name) {
                zsegs.push((pos, d.join(&name), meta.len()));
            } else if name == CHECKPOINT_FILE_NAME && !archived {
                has_checkpoint = true;
            } else if let Some(pos) = name
                .strip_suffix(".idx")
                .and_then(|s| parse_segment_file_name(&format!("{s}.seg")))
            {
                idx_names.push((pos, d.join(&name)));
            } else {
                other_files.push((shown(&name), meta.len()));
            }
        }
        for (pos, path, len) in segs.into_iter().chain(zsegs) {
            if candidates.iter().any(|(p, ..)| *p == pos) {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                other_files.push((shown(&name), len));
            } else {
                candidates.push((pos, path, len));
            }
        }
    }
    candidates.sort();
    idx_names.sort();
    other_files.sort();
    let mut segments = Vec::new();
    let last = candidates.len().saturating_sub(1);
    for (i, (_, path, _)) in candidates.iter().enumerate() {
        if is_zseg_path(path) {
            segments.push(zseg_summary(path)?);
            continue;
        }
        let (len, head, tail) = read_ends(path)?;
        let sealed = footer_of(&tail, len).is_some();
        let mut s = if sealed {
            let mut s = segment_ends(path, len, &head, &tail);
            let f = s.footer.expect("sealed");
            s.frame_count = f.frame_count;
            s.event_count = f.event_count;
            s.counted_from_footer = true;
            s
        } else {
            let buf = fs::read(path).map_err(io_err("read", path))?;
            segment_from_bytes(path, &buf, false)
        };
        if !sealed && i != last {
            s.problems.push(
                "no footer, but it is not the last segment (only the last one may be active)"
                    .to_string(),
            );
        }
        segments.push(s);
    }
    problems.extend(chain_problems(&segments));
    let mut indexes = Vec::new();
    for (pos, path) in &idx_names {
        let mut i = inspect_index(path)?;
        match segments.iter().find(|s| s.name_position == Some(*pos)) {
            None => i
                .notes
                .push("no segment of this number: a leftover index, never read".to_string()),
            Some(s) if s.path.parent() != path.parent() => i.notes.push(format!(
                "its segment is {} (the index beside it is read): a leftover index, never read",
                s.path.display()
            )),
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
        archive_dir,
        segments,
        indexes,
        checkpoint,
        other_files,
        problems,
    })
}

/// The archive directory the store's marker names, if it has one. A marker that does not decode
/// is a problem (the store does not open), and no archive is listed.
fn archive_of(dir: &Path, problems: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let path = dir.join(ARCHIVE_FILE_NAME);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    match decode_archive_marker(&buf) {
        Ok(p) => Ok(Some(dir.join(p))),
        Err(e) => {
            problems.push(format!(
                "{ARCHIVE_FILE_NAME}: {}: the archive it names is unknown, its segments are not listed (the store does not open)",
                describe(&e, 0)
            ));
            Ok(None)
        }
    }
}

fn is_zseg_path(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| parse_zseg_file_name(n).is_some())
}

/// A compressed segment as [`inspect_dir`] shows it: its header, its copies of the segment
/// header and footer, and its block table, checked without reading the blocks.
fn zseg_summary(path: &Path) -> Result<SegmentInspection> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let file_len = f.metadata().map_err(io_err("stat", path))?.len();
    let mut prefix = Vec::new();
    (&mut f)
        .take(ZSEG_PREFIX_BYTES as u64)
        .read_to_end(&mut prefix)
        .map_err(io_err("read", path))?;
    let zh = match zseg_header(&prefix[..prefix.len().min(ZSEG_HEADER_BYTES)]) {
        Ok(h) => h,
        Err(e) => return Ok(zseg_undecodable(path, file_len, e)),
    };
    let mut s = zseg_ends(path, file_len, &prefix, zh);
    if prefix.len() < ZSEG_PREFIX_BYTES {
        return Ok(s);
    }
    let table_len = zh.block_count as u64 * ZSEG_BLOCK_ENTRY_BYTES as u64;
    let table_end = ZSEG_PREFIX_BYTES as u64 + table_len;
    if file_len < table_end {
        s.problems.push(format!(
            "compressed segment block table length at byte {ZSEG_PREFIX_BYTES} (expected {table_end:#x} byte(s) of file, found {file_len:#x})"
        ));
        return Ok(s);
    }
    let mut table = Vec::new();
    f.take(table_len)
        .read_to_end(&mut table)
        .map_err(io_err("read", path))?;
    let table_crc = crate::wire::bytes::u32_at(&prefix, 28);
    let crc = crc32fast::hash(&table);
    if crc != table_crc {
        s.problems.push(format!(
            "compressed segment block table checksum at byte 28 (expected {table_crc:#x}, found {crc:#x}) (no block can be read)"
        ));
        return Ok(s);
    }
    let compressed: u64 = table
        .chunks_exact(ZSEG_BLOCK_ENTRY_BYTES)
        .map(|e| u64::from(crate::wire::bytes::u32_at(e, 0)))
        .sum();
    if table_end + compressed != file_len {
        s.problems.push(format!(
            "compressed segment blocks end at byte {} but the file is {file_len} byte(s) long",
            table_end + compressed
        ));
    }
    if let Some(z) = &mut s.compressed {
        z.compressed_bytes = Some(compressed);
    }
    Ok(s)
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
