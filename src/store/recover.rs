//! Opening a store directory: check every segment's header and footer, load or rebuild the
//! indexes, read the stream table from the checkpoint, and scan the log after it, cutting a torn
//! tail. Damage followed by valid data is corruption: it fails the open, or, with repair, the log
//! is cut there and the damaged bytes are moved to `*.corrupt` files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::{ActiveIndex, BaseIndex, FastMap};
use crate::io::{
    Vfs, fsync_data, fsync_dir, read_at, read_file, remove_file_durable, write_file_atomic,
};
use crate::segment::{
    ActiveFile, FileBytes, SealedSegment, SegmentIndex, build_index, durable_frame_after, map_file,
    scan_frames,
};
use crate::store::state::State;
use crate::store::streams::StreamTable;
use crate::wire::bytes::{stream_hash, u32_at};
use crate::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint};
use crate::wire::frame::{FRAME_TRAILER_BYTES, FrameHeader};
use crate::wire::index_file::{IndexHeader, IndexView, StreamEntry};
use crate::wire::record::RecordView;
use crate::wire::segment::{
    FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader, index_file_name,
    parse_segment_file_name, segment_file_name,
};

/// What the writer needs to go on appending to the active segment.
pub(crate) struct ActiveTail {
    pub path: PathBuf,
    /// The segment opened once for open, the writer (writable unless read-only) and readers.
    pub file: Arc<dyn crate::io::VfsFile>,
    pub header: SegmentHeader,
    pub len: u64,
    /// End of the zeros after the last frame that open kept (the file's length), or `len`.
    pub zeroed_to: u64,
    pub crc: crc32fast::Hasher,
    pub next_position: u64,
    pub last_header_crc: u32,
}

/// The result of opening a directory.
pub(crate) struct Recovered {
    pub state: State,
    /// `None` for a read-only open of an empty directory.
    pub tail: Option<ActiveTail>,
    pub next_position: u64,
}

/// Why one recovery attempt stopped.
enum Stop {
    /// An error to return as it is.
    Fail(Error),
    /// Damage in segment `seg` at `offset`: with repair the log is cut there and recovery runs
    /// again; without, `err` is returned.
    Cut { seg: usize, offset: u64, err: Error },
    /// Durable data the checkpoint vouches for is gone (a segment deleted or truncated below
    /// it): with repair the checkpoint is dropped and recovery runs again; without, `err`.
    Lost { err: Error },
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fail(e)
    }
}

struct Meta {
    path: PathBuf,
    header: SegmentHeader,
    /// Length of the segment's bytes (for a compressed segment, of its image).
    len: u64,
    footer: Option<SegmentFooter>,
    /// Stored as a `.zseg` file.
    compressed: bool,
}

impl Meta {
    /// The whole segment's bytes: the file, or the image a compressed segment decompresses to.
    fn bytes(&self, vfs: &dyn Vfs) -> Result<Vec<u8>> {
        if self.compressed {
            crate::segment::read_zseg_image(vfs, &self.path)
        } else {
            read_file(vfs, &self.path)
        }
    }

    /// [`Meta::bytes`] of sealed segment `i`, at least as long as its footer says. Damage is
    /// a cut at the segment's start; an I/O error fails the open (it is not damage). Bytes
    /// shorter than the footer read at first (the file was replaced meanwhile, by a writer's
    /// compaction beside a read-only open) are reported as such.
    fn sealed_bytes(&self, vfs: &dyn Vfs, i: usize) -> Result<Vec<u8>, Stop> {
        let data = match self.bytes(vfs) {
            Ok(d) => d,
            Err(e @ Error::Io { .. }) => return Err(Stop::Fail(e)),
            Err(e) => {
                return Err(Stop::Cut {
                    seg: i,
                    offset: 0,
                    err: e,
                });
            }
        };
        let end = self.footer.map_or(0, |f| f.data_end);
        if (data.len() as u64) < end {
            return Err(Stop::Fail(corrupted(
                &self.path,
                data.len() as u64,
                "segment is shorter than its footer said when open read it (replaced meanwhile?)",
                end,
                data.len() as u64,
            )));
        }
        Ok(data)
    }
}

/// True for the path of a compressed segment file.
pub(crate) fn is_zseg(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zseg")
}

/// Opens the store in `dir`, repairing if asked (never when read-only).
pub(crate) fn recover(
    shared_vfs: &Arc<dyn Vfs>,
    dir: &Path,
    repair: bool,
    read_only: bool,
) -> Result<Recovered> {
    let vfs: &dyn Vfs = &**shared_vfs;
    // Each cut removes bytes from the log, so this ends; the bound is a guard.
    for _ in 0..10_000 {
        match recover_once(shared_vfs, dir, read_only, repair) {
            Ok(r) => return Ok(r),
            Err(Stop::Fail(e)) => return Err(e),
            Err(Stop::Lost { err }) => {
                if !repair || read_only {
                    return Err(err);
                }
                remove_file_durable(vfs, dir, CHECKPOINT_FILE_NAME)?;
            }
            Err(Stop::Cut {
                err: err @ Error::UnsupportedFormat { .. },
                ..
            }) => return Err(err),
            Err(Stop::Cut { seg, offset, err }) => {
                if !repair || read_only {
                    return Err(err);
                }
                let names = list_segments(vfs, dir)?;
                cut_log(vfs, dir, &names, seg, offset)?;
            }
        }
    }
    Err(Error::InvalidArgument("repair did not converge".into()))
}

/// Segment files in `dir`, ascending by first position: `.seg` files, and `.zseg` files of the
/// segments that have no `.seg` file. (Both exist only after a crash between writing a
/// compressed segment and removing the file it replaces; the `.seg` file is then used, and a
/// writable open removes the `.zseg`, to be compressed again.)
pub(crate) fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    Ok(list_segments_and_stale(vfs, dir)?.0)
}

/// Segment files by first position.
type SegmentNames = Vec<(u64, PathBuf)>;

/// What a listing of the store's directories found besides the segments to use.
#[derive(Default)]
pub(crate) struct Leftovers {
    /// Files that another file of the same segment overrides, each with the file that
    /// overrides it.
    pub stale: Vec<(PathBuf, PathBuf)>,
    /// Temporary files a crash left in the archive directory while copying a segment or its
    /// index there (`NNN.seg.tmp`, `NNN.zseg.tmp`, `NNN.idx.tmp`); other files are not listed.
    pub archive_temps: Vec<PathBuf>,
}

/// True for the name of a temporary file of a segment, compressed segment or index copy.
fn is_segment_temp(name: &str) -> bool {
    let Some(file) = name.strip_suffix(".tmp") else {
        return false;
    };
    let idx_as_seg = file.strip_suffix(".idx").map(|stem| format!("{stem}.seg"));
    parse_segment_file_name(file).is_some()
        || crate::wire::zseg::parse_zseg_file_name(file).is_some()
        || idx_as_seg.is_some_and(|n| parse_segment_file_name(&n).is_some())
}

/// [`list_segments`], and the [`Leftovers`] beside them.
pub(crate) fn list_segments_and_stale(
    vfs: &dyn Vfs,
    dir: &Path,
) -> Result<(SegmentNames, Leftovers)> {
    // Preference, when a segment is in more than one file: the store directory over the
    // archive (a crash while moving a segment leaves both copies), `.seg` over `.zseg`.
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(archive) = archive_dir_of(vfs, dir)? {
        dirs.push(archive);
    }
    let mut out: Vec<(u64, PathBuf)> = Vec::new();
    let mut left = Leftovers::default();
    for (k, d) in dirs.iter().enumerate() {
        let names = vfs.list(d).map_err(Error::io("read directory", d))?;
        if k > 0 {
            refuse_store_dir_as_archive(dir, d, &names)?;
            left.archive_temps.extend(
                names
                    .iter()
                    .filter(|n| is_segment_temp(n))
                    .map(|n| d.join(n)),
            );
        }
        let parsers: [fn(&str) -> Option<u64>; 2] = [
            parse_segment_file_name,
            crate::wire::zseg::parse_zseg_file_name,
        ];
        for parse in parsers {
            for n in &names {
                if let Some(pos) = parse(n) {
                    if let Some((_, winner)) = out.iter().find(|(p, _)| *p == pos) {
                        left.stale.push((d.join(n), winner.clone()));
                    } else {
                        out.push((pos, d.join(n)));
                    }
                }
            }
        }
    }
    out.sort();
    Ok((out, left))
}

/// The archive directory named by the store's archive marker, if it has one.
pub(crate) fn archive_dir_of(vfs: &dyn Vfs, dir: &Path) -> Result<Option<PathBuf>> {
    let path = dir.join(crate::wire::archive::ARCHIVE_FILE_NAME);
    let bytes = match read_file(vfs, &path) {
        Ok(b) => b,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let p = crate::wire::archive::decode_archive_marker(&bytes)
        .map_err(|e| Error::corrupted(&path, e.at as u64, e))?;
    // A relative path is relative to the store directory.
    Ok(Some(dir.join(p)))
}

/// Refuses an archive directory that is a store directory (this store's own, under another
/// name, or another store's): its segments would be taken for copies of this store's.
pub(crate) fn check_archive_dir(vfs: &dyn Vfs, dir: &Path, archive: &Path) -> Result<()> {
    refuse_store_dir_as_archive(dir, archive, &vfs.list(archive).unwrap_or_default())
}

/// [`check_archive_dir`] given the names in the archive directory.
fn refuse_store_dir_as_archive(dir: &Path, archive: &Path, names: &[String]) -> Result<()> {
    let same = normalize(archive) == normalize(dir)
        || names.iter().any(|n| n == crate::store::LOCK_FILE_NAME);
    if same {
        return Err(Error::InvalidArgument(format!(
            "archive directory {} is a store directory (it holds a {} file)",
            archive.display(),
            crate::store::LOCK_FILE_NAME
        )));
    }
    Ok(())
}

/// `p` without `.` components and with `..` applied, lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The index file of the segment stored at `segment_path` (beside it).
pub(crate) fn index_path_of(segment_path: &Path, first_position: u64) -> PathBuf {
    segment_path.with_file_name(index_file_name(first_position))
}

fn corrupt_name(vfs: &dyn Vfs, dir: &Path, base: &str) -> Result<PathBuf> {
    let names = vfs.list(dir).map_err(Error::io("read directory", dir))?;
    let mut name = format!("{base}.corrupt");
    let mut n = 1;
    while names.contains(&name) {
        name = format!("{base}.{n}.corrupt");
        n += 1;
    }
    Ok(dir.join(name))
}

/// Cuts the log at `offset` of segment `seg`: the bytes from there and every later segment are
/// moved to `*.corrupt` files beside them (in the store directory, or in the archive for an
/// archived segment; nothing is deleted); their indexes and the checkpoint are dropped.
fn cut_log(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[(u64, PathBuf)],
    seg: usize,
    offset: u64,
) -> Result<()> {
    let file_name = |pos: u64, path: &Path| {
        if is_zseg(path) {
            crate::wire::zseg::zseg_file_name(pos)
        } else {
            segment_file_name(pos)
        }
    };
    let seg_dir = |path: &Path| path.parent().unwrap_or(dir).to_path_buf();
    for (pos, path) in names.iter().skip(seg + 1) {
        let d = seg_dir(path);
        let to = corrupt_name(vfs, &d, &file_name(*pos, path))?;
        vfs.rename(path, &to).map_err(Error::io("rename", path))?;
        remove_file_durable(vfs, &d, &index_file_name(*pos))?;
        fsync_dir(vfs, &d)?;
    }
    if let Some((pos, path)) = names.get(seg) {
        let d = seg_dir(path);
        // A compressed segment is moved whole: its blocks cannot be cut at an image offset.
        if offset <= SEGMENT_HEADER_BYTES as u64 || is_zseg(path) {
            let to = corrupt_name(vfs, &d, &file_name(*pos, path))?;
            vfs.rename(path, &to).map_err(Error::io("rename", path))?;
        } else {
            let f = vfs.open(path, true).map_err(Error::io("open", path))?;
            let len = f.len().map_err(Error::io("stat", path))?;
            let tail = read_at(&*f, path, offset, (len - offset.min(len)) as usize)?;
            let to = corrupt_name(vfs, &d, &format!("{}.{offset}", segment_file_name(*pos)))?;
            let name = to
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            write_file_atomic(vfs, &d, &name, &tail)?;
            f.set_len(offset).map_err(Error::io("truncate", path))?;
            fsync_data(&*f, path)?;
        }
        remove_file_durable(vfs, &d, &index_file_name(*pos))?;
        fsync_dir(vfs, &d)?;
    }
    remove_file_durable(vfs, dir, CHECKPOINT_FILE_NAME)?;
    fsync_dir(vfs, dir)
}

fn corrupted(path: &Path, offset: u64, what: &'static str, expected: u64, found: u64) -> Error {
    Error::Corrupted {
        file: path.to_path_buf(),
        offset,
        what,
        expected,
        found,
    }
}

/// Creates a segment file crash-safely (header written to a temp file, fsynced, renamed).
pub(crate) fn create_segment(vfs: &dyn Vfs, dir: &Path, header: &SegmentHeader) -> Result<PathBuf> {
    let name = segment_file_name(header.first_position);
    write_file_atomic(vfs, dir, &name, &header.encode())?;
    Ok(dir.join(name))
}

fn read_metas(vfs: &dyn Vfs, names: &[(u64, PathBuf)]) -> Result<Vec<Meta>, Stop> {
    let mut metas: Vec<Meta> = Vec::with_capacity(names.len());
    let last = names.len() - 1;
    for (i, (pos, path)) in names.iter().enumerate() {
        // A `.seg` file listed a moment ago may have been replaced by its `.zseg` since (a
        // writer compressing beside a read-only open): read that one.
        let (path, f) = match vfs.open(path, false) {
            Ok(f) => (path.clone(), f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_zseg(path) => {
                let z = path.with_file_name(crate::wire::zseg::zseg_file_name(*pos));
                let f = vfs.open(&z, false).map_err(Error::io("open", &z))?;
                (z, f)
            }
            Err(e) => return Err(Error::io("open", path)(e).into()),
        };
        let path = &path;
        let file_len = f.len().map_err(Error::io("stat", path))?;
        let cut = |offset, err| Stop::Cut {
            seg: i,
            offset,
            err,
        };
        let compressed = is_zseg(path);
        // A compressed segment keeps copies of the segment header and footer after its own
        // header, so that open reads them without decompressing anything.
        let (hb, len, zseg_footer) = if compressed {
            use crate::wire::zseg::{ZSEG_PREFIX_BYTES, ZsegLayout, decode_zseg_header};
            let p = read_at(&*f, path, 0, ZSEG_PREFIX_BYTES.min(file_len as usize))?;
            let (image_len, ..) =
                decode_zseg_header(&p).map_err(|e| cut(0, Error::corrupted(path, 0, e)))?;
            if p.len() < ZSEG_PREFIX_BYTES {
                return Err(cut(
                    0,
                    corrupted(
                        path,
                        0,
                        "compressed segment is shorter than its header",
                        ZSEG_PREFIX_BYTES as u64,
                        p.len() as u64,
                    ),
                ));
            }
            (
                ZsegLayout::segment_header(&p).to_vec(),
                image_len,
                Some(ZsegLayout::segment_footer(&p).to_vec()),
            )
        } else {
            (read_at(&*f, path, 0, SEGMENT_HEADER_BYTES)?, file_len, None)
        };
        let header =
            SegmentHeader::decode(&hb).map_err(|e| cut(0, Error::corrupted(path, 0, e)))?;
        if header.first_position != *pos {
            return Err(cut(
                0,
                corrupted(
                    path,
                    24,
                    "segment header first position differs from file name",
                    *pos,
                    header.first_position,
                ),
            ));
        }
        match metas.last() {
            Some(prev) => {
                let prev_last = prev.footer.map(|f| f.last_position());
                if prev.header.seq.checked_add(1) != Some(header.seq) {
                    return Err(cut(
                        0,
                        corrupted(
                            path,
                            16,
                            "segment sequence gap: a segment is missing",
                            prev.header.seq.wrapping_add(1),
                            header.seq,
                        ),
                    ));
                }
                if header.prev_last_position != prev_last
                    || Some(header.first_position) != prev_last.map(|l| l + 1)
                {
                    return Err(cut(
                        0,
                        corrupted(
                            path,
                            32,
                            "segment does not follow the previous one: a segment is missing or truncated",
                            prev_last.map_or(0, |l| l + 1),
                            header.first_position,
                        ),
                    ));
                }
            }
            None => {
                if header.prev_last_position.is_some() {
                    return Err(cut(
                        0,
                        corrupted(
                            path,
                            32,
                            "first segment names a predecessor that is missing",
                            0,
                            header.prev_last_position.unwrap_or(0),
                        ),
                    ));
                }
            }
        }
        let mut footer = None;
        if len >= (SEGMENT_HEADER_BYTES + FOOTER_BYTES) as u64 {
            let fb = match &zseg_footer {
                Some(b) => b.clone(),
                None => read_at(&*f, path, len - FOOTER_BYTES as u64, FOOTER_BYTES)?,
            };
            if let Ok(ft) = SegmentFooter::decode(&fb)
                && ft.data_end == len - FOOTER_BYTES as u64
                && ft.first_position == header.first_position
            {
                footer = Some(ft);
            }
        }
        if compressed && footer.is_none() {
            return Err(cut(
                0,
                corrupted(
                    path,
                    128,
                    "compressed segment's copy of the footer is not valid",
                    0,
                    0,
                ),
            ));
        }
        if i < last && footer.is_none() {
            // An unreadable next file is the damage, not this segment's missing footer.
            let (_, next) = &names[i + 1];
            let nf = vfs.open(next, false).map_err(Error::io("open", next))?;
            // (A compressed segment keeps its segment header's copy after its own header.)
            let nh = if is_zseg(next) {
                let p = read_at(&*nf, next, 0, crate::wire::zseg::ZSEG_PREFIX_BYTES)?;
                if p.len() < crate::wire::zseg::ZSEG_PREFIX_BYTES {
                    p
                } else {
                    crate::wire::zseg::ZsegLayout::segment_header(&p).to_vec()
                }
            } else {
                read_at(&*nf, next, 0, SEGMENT_HEADER_BYTES)?
            };
            if let Err(e) = SegmentHeader::decode(&nh) {
                return Err(Stop::Cut {
                    seg: i + 1,
                    offset: 0,
                    err: Error::corrupted(next, 0, e),
                });
            }
            // A sealed segment lost its footer: cut where its valid frames end.
            let data = read_at(&*f, path, 0, len as usize)?;
            let end = scan_frames(
                &data,
                0,
                SEGMENT_HEADER_BYTES,
                header.first_position,
                |_, _, _| Ok(()),
            )
            .good_end;
            return Err(cut(
                end,
                corrupted(path, end, "sealed segment has no valid footer", 0, 0),
            ));
        }
        metas.push(Meta {
            path: path.clone(),
            header,
            len,
            footer,
            compressed,
        });
    }
    Ok(metas)
}

/// Loads the index of sealed segment `i`, rebuilding it from the segment when it is missing or
/// does not match the footer. Read-only opens keep a rebuilt index in memory.
/// Loads the index of sealed segment `i`, rebuilding it from the segment when it is missing or
/// does not match the footer (with `full_check`, also when its body checksum fails; otherwise
/// the body is checked on first use). Read-only opens keep a rebuilt index in memory.
fn load_index(
    shared: &Arc<dyn Vfs>,
    dir: &Path,
    i: usize,
    m: &Meta,
    read_only: bool,
    full_check: bool,
) -> Result<SegmentIndex, Stop> {
    let vfs: &dyn Vfs = &**shared;
    let footer = m.footer.expect("sealed");
    let idx_path = index_path_of(&m.path, m.header.first_position);
    let seg_dir = idx_path.parent().unwrap_or(dir).to_path_buf();
    if let Ok(map) = map_file(vfs, &idx_path)
        && let Ok(h) = IndexHeader::decode(&map)
        && h.flags & crate::wire::index_names::INDEX_FLAG_NAMES != 0
        && h.first_position == m.header.first_position
        && u64::from(h.covered_len) == footer.data_end
        && h.covered_crc == footer.data_crc
        && u64::from(h.event_count) == footer.event_count
        && u64::from(h.frame_count) == footer.frame_count
        && (!full_check
            || (crate::wire::index_file::check_index_body(&map, &h).is_ok()
                && crate::wire::index_file::check_index_tables(&map, &h).is_ok()))
    {
        return Ok(SegmentIndex::new(shared.clone(), idx_path, map)?);
    }
    let data = m.sealed_bytes(vfs, i)?;
    let data = &data[..footer.data_end as usize];
    let first = m.header.first_position;
    let (bytes, next_position, frames) = build_index(data, first).map_err(|(at, e)| Stop::Cut {
        seg: i,
        offset: at,
        err: Error::corrupted(&m.path, 0, e),
    })?;
    let crc = crc32fast::hash(data);
    if crc != footer.data_crc
        || next_position != first + footer.event_count
        || u64::from(frames) != footer.frame_count
    {
        let at = footer.data_end;
        return Err(Stop::Cut {
            seg: i,
            offset: at,
            err: corrupted(
                &m.path,
                at + 40,
                "segment footer does not match the segment's frames",
                u64::from(footer.data_crc),
                u64::from(crc),
            ),
        });
    }
    if read_only {
        return Ok(SegmentIndex::new(
            shared.clone(),
            idx_path,
            FileBytes::Owned(bytes),
        )?);
    }
    write_file_atomic(vfs, &seg_dir, &index_file_name(first), &bytes)?;
    Ok(SegmentIndex::new(
        shared.clone(),
        idx_path.clone(),
        map_file(vfs, &idx_path)?,
    )?)
}

/// Loads the stream settings file; it is data, not a cache, so damage is corruption.
pub(crate) fn load_settings(
    vfs: &dyn Vfs,
    dir: &Path,
) -> Result<FastMap<Arc<str>, crate::wire::settings::StreamSettings>> {
    use crate::wire::settings::{SETTINGS_FILE_NAME, decode_settings};
    let path = dir.join(SETTINGS_FILE_NAME);
    let Some(bytes) = crate::io::read_optional(vfs, &path)? else {
        return Ok(FastMap::default());
    };
    let entries = decode_settings(&bytes).map_err(|e| Error::corrupted(&path, 0, e))?;
    Ok(entries
        .into_iter()
        .map(|(s, st)| (Arc::<str>::from(s), st))
        .collect())
}

pub(crate) fn entry_for(r: &RecordView<'_>, rel_pos: u64, frame_offset: u64) -> StreamEntry {
    StreamEntry {
        hash: stream_hash(r.stream),
        version: r.version,
        rel_pos: rel_pos as u32,
        frame_offset: frame_offset as u32,
    }
}

/// Applies one frame's records to the stream table, checking that versions are dense. Checks
/// everything before changing anything, so a rejected frame leaves the table as it was.
pub(crate) fn apply_versions(
    streams: &mut StreamTable,
    recs: &[(u64, RecordView<'_>)],
) -> Result<(), &'static str> {
    let mut pending: HashMap<&str, u64> = HashMap::new();
    for (_, r) in recs {
        let cur = pending
            .get(r.stream)
            .copied()
            .or_else(|| streams.get(r.stream));
        let want = cur.map_or(0, |v| v + 1);
        if r.version != want {
            return Err("event version is not the next version of its stream");
        }
        pending.insert(r.stream, r.version);
    }
    for (s, v) in pending {
        streams.set(s, v);
    }
    Ok(())
}

/// Where the scan of the log starts: from a checkpoint, or from the first segment.
struct Start {
    seg: usize,
    offset: u64,
    next_position: u64,
    streams: StreamTable,
    /// Index of the covered prefix of `seg` and the CRC of that prefix, when `seg` is active.
    active: Option<(ActiveIndex, crc32fast::Hasher, u32)>,
    /// The checkpoint's copy of a sealed segment's id filter.
    id_filter: Option<(u64, Arc<[u8]>)>,
}

/// Reads the checkpoint. `Ok(None)` when there is none or it fails its own checksums (it is
/// then removed by a writable open and the log is rescanned). A checkpoint that is intact but
/// disagrees with the log means durable data was lost or damaged: that is an error.
fn start_from_checkpoint(
    vfs: &dyn Vfs,
    dir: &Path,
    ckpt: Option<Arc<FileBytes>>,
    metas: &[Meta],
    read_only: bool,
) -> Result<Option<Start>, Stop> {
    let Some(bytes) = ckpt else {
        return Ok(None);
    };
    let intact = decode_checkpoint(&bytes).ok().and_then(|c| {
        let v = IndexView::new(c.index).ok()?;
        crate::wire::index_file::check_index_body(c.index, &v.header).ok()?;
        crate::wire::index_file::check_index_tables(c.index, &v.header).ok()?;
        // A stream cannot have more versions than the log has events.
        let versions_ok = c.streams.max_version().is_none_or(|v| v < c.next_position);
        (versions_ok
            && c.next_position == v.header.first_position + u64::from(v.header.event_count))
        .then_some((c, v.header))
    });
    let Some((c, h)) = intact else {
        if !read_only {
            remove_file_durable(vfs, dir, CHECKPOINT_FILE_NAME)?;
        }
        return Ok(None);
    };
    let lost =
        |what: &'static str, file: PathBuf, offset: u64, expected: u64, found: u64| Stop::Lost {
            err: corrupted(&file, offset, what, expected, found),
        };
    let Some(k) = metas
        .iter()
        .position(|m| m.header.first_position == h.first_position)
    else {
        let name = dir.join(crate::wire::segment::segment_file_name(h.first_position));
        return Err(lost(
            "segment named by the checkpoint is missing: durable events are gone",
            name,
            0,
            h.first_position,
            metas.last().map_or(0, |m| m.header.first_position),
        ));
    };
    let m = &metas[k];
    if m.compressed {
        // The checkpoint's segment was sealed and compressed since: the checkpoint is only a
        // cache, and the log is rescanned instead.
        if !read_only {
            remove_file_durable(vfs, dir, CHECKPOINT_FILE_NAME)?;
        }
        return Ok(None);
    }
    let end = m.footer.map_or(m.len, |f| f.data_end);
    let covered = u64::from(h.covered_len);
    if covered > end && m.footer.is_none() && k + 1 == metas.len() {
        // The active segment lost bytes the checkpoint covered (the file was cut short). Its
        // tail is treated like a torn write: the log is rescanned and cut back to its last
        // whole frame, and this checkpoint, which no longer matches, is dropped.
        if !read_only {
            remove_file_durable(vfs, dir, CHECKPOINT_FILE_NAME)?;
        }
        return Ok(None);
    }
    // A checkpoint names a sealed segment only after a crash in a roll; compaction may have
    // rewritten that segment since (its footer and index prove it whole). Such a checkpoint
    // is stale, not evidence of loss: it is dropped and the log rescanned.
    let stale = |vfs: &dyn Vfs| -> Result<Option<Start>, Stop> {
        if !read_only {
            remove_file_durable(vfs, dir, CHECKPOINT_FILE_NAME)?;
        }
        Ok(None)
    };
    if (covered < SEGMENT_HEADER_BYTES as u64 || covered > end) && m.footer.is_some() {
        return stale(vfs);
    }
    if covered < SEGMENT_HEADER_BYTES as u64 || covered > end {
        return Err(lost(
            "segment is shorter than the checkpoint says was durable",
            m.path.clone(),
            end,
            covered,
            end,
        ));
    }
    if covered > SEGMENT_HEADER_BYTES as u64 {
        // The log must still hold the last covered frame where the checkpoint says; if not,
        // find the damage below the covered length and report it there.
        let f = vfs
            .open(&m.path, false)
            .map_err(Error::io("open", &m.path))?;
        let t = read_at(
            &*f,
            &m.path,
            covered - FRAME_TRAILER_BYTES as u64,
            FRAME_TRAILER_BYTES,
        )?;
        let frame_at = covered.checked_sub(u64::from(u32_at(&t, 0)));
        let frame_ok = u32_at(&t, 4) == c.last_frame_header_crc
            && frame_at.is_some_and(|at| {
                read_at(&*f, &m.path, at, 32)
                    .ok()
                    .and_then(|hb| FrameHeader::decode(&hb).ok())
                    .is_some_and(|fh| {
                        fh.end_position() == c.next_position
                            && fh.header_crc == c.last_frame_header_crc
                            && at + fh.frame_len() as u64 == covered
                    })
            });
        if !frame_ok && m.footer.is_some() {
            return stale(vfs);
        }
        if !frame_ok {
            let data = read_at(&*f, &m.path, 0, covered as usize)?;
            let scan = scan_frames(
                &data,
                0,
                SEGMENT_HEADER_BYTES,
                h.first_position,
                |_, _, _| Ok(()),
            );
            return Err(match scan.error {
                Some(e) => Stop::Cut {
                    seg: k,
                    offset: scan.good_end,
                    err: Error::corrupted(&m.path, 0, e),
                },
                None => lost(
                    "checkpoint does not match the segment's frames",
                    m.path.clone(),
                    covered,
                    u64::from(c.last_frame_header_crc),
                    u64::from(u32_at(&t, 4)),
                ),
            });
        }
    }
    let streams = StreamTable::from_checkpoint(&bytes, &c.streams);
    let index_at = c.index.as_ptr() as usize - bytes.as_ptr() as usize;
    let range = index_at..index_at + c.index.len();
    let last_frame_header_crc = c.last_frame_header_crc;
    let next_position = c.next_position;
    let active = match m.footer {
        Some(_) => None,
        None => BaseIndex::new(bytes.clone(), range).map(|b| {
            (
                ActiveIndex::with_base(b),
                crc32fast::Hasher::new_with_initial_len(h.covered_crc, covered),
                last_frame_header_crc,
            )
        }),
    };
    let id_filter = c
        .id_filter
        .map(|f| (f.segment_first_position, Arc::<[u8]>::from(f.blocks)));
    Ok(Some(Start {
        seg: k,
        offset: covered,
        next_position,
        streams,
        active,
        id_filter,
    }))
}

fn recover_once(
    shared_vfs: &Arc<dyn Vfs>,
    dir: &Path,
    read_only: bool,
    repair: bool,
) -> Result<Recovered, Stop> {
    let vfs: &dyn Vfs = &**shared_vfs;
    if !read_only {
        for name in vfs.list(dir).map_err(Error::io("read directory", dir))? {
            if name.ends_with(".tmp") {
                let _ = vfs.remove(&dir.join(name));
            }
        }
    }
    // The checkpoint is read before the segments are listed: a writer creates a segment before
    // it writes a checkpoint naming it, so a concurrent roll cannot make a read-only open see a
    // checkpoint naming a segment it has not listed. It is replaced only by rename, so a map of
    // it never changes.
    let ckpt_path = dir.join(CHECKPOINT_FILE_NAME);
    let ckpt = match map_file(vfs, &ckpt_path) {
        Ok(m) => Some(Arc::new(m)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let (mut names, left) = list_segments_and_stale(vfs, dir)?;
    if !read_only {
        for (p, winner) in left.stale {
            // A copy in the archive is removed only if it holds the same segment: another
            // store's segment there means two stores share the archive, which is refused.
            if p.parent() != winner.parent() {
                let image = |path: &Path| {
                    if is_zseg(path) {
                        crate::segment::read_zseg_image(vfs, path)
                    } else {
                        read_file(vfs, path)
                    }
                };
                if image(&p).ok() != Some(image(&winner)?) {
                    return Err(Stop::Fail(Error::InvalidArgument(format!(
                        "{} is not a copy of {}: the archive directory holds another store's \
                         segments (two stores must not share an archive)",
                        p.display(),
                        winner.display()
                    ))));
                }
            }
            vfs.remove(&p).map_err(Error::io("remove", &p))?;
        }
        // Only now that every segment in both directories proved the same (a difference
        // means two stores share the archive, refused above): a shared archive whose stores
        // hold no segment in common is not detected, and another store's copy in progress
        // would then fail (its segment stays in its own directory).
        for p in left.archive_temps {
            let _ = vfs.remove(&p);
        }
    }
    if names.is_empty() {
        if read_only {
            return Ok(Recovered {
                state: State {
                    settings: Arc::new(load_settings(vfs, dir)?),
                    sealed: vec![],
                    active: None,
                    active_index: ActiveIndex::new(0),
                    streams: StreamTable::default(),
                    id_filter: None,
                },
                tail: None,
                next_position: 0,
            });
        }
        let h = SegmentHeader {
            seq: 0,
            first_position: 0,
            prev_last_position: None,
            created_us: crate::store::now_us(),
        };
        names.push((0, create_segment(vfs, dir, &h)?));
    }
    let metas = read_metas(vfs, &names)?;
    let last = metas.len() - 1;
    let last_sealed = metas[last].footer.is_some();
    let sealed_n = if last_sealed { metas.len() } else { last };

    let mut indexes = Vec::with_capacity(sealed_n);
    for (i, m) in metas.iter().enumerate().take(sealed_n) {
        indexes.push(load_index(shared_vfs, dir, i, m, read_only, repair)?);
    }

    let start = match start_from_checkpoint(vfs, dir, ckpt, &metas, read_only)? {
        Some(s) => s,
        None => Start {
            seg: 0,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_position: metas[0].header.first_position,
            streams: StreamTable::default(),
            active: None,
            id_filter: None,
        },
    };
    let id_filter = start.id_filter;
    let mut streams = start.streams;
    let mut next_position = start.next_position;
    let mut tail = None;
    let mut active_index = ActiveIndex::new(metas[last].header.first_position);
    for (j, m) in metas.iter().enumerate().skip(start.seg) {
        let from = if j == start.seg {
            start.offset
        } else {
            SEGMENT_HEADER_BYTES as u64
        };
        if next_position != m.header.first_position && from == SEGMENT_HEADER_BYTES as u64 {
            return Err(Stop::Cut {
                seg: j,
                offset: 0,
                err: corrupted(
                    &m.path,
                    24,
                    "segment first position does not follow the log",
                    next_position,
                    m.header.first_position,
                ),
            });
        }
        // The active segment is opened writable once, for recovery, the writer and readers.
        let f = vfs
            .open(&m.path, !read_only && m.footer.is_none())
            .map_err(Error::io("open", &m.path))?;
        if let Some(footer) = m.footer {
            // Sealed: its frames were checked when its index was built or verified; the scan
            // here only rebuilds the stream table.
            let data = if m.compressed {
                let img = m.sealed_bytes(vfs, j)?;
                img[from as usize..footer.data_end as usize].to_vec()
            } else {
                read_at(&*f, &m.path, from, (footer.data_end - from) as usize)?
            };
            let end = scan_frames(&data, from, 0, next_position, |_, _, recs| {
                apply_versions(&mut streams, recs)
            });
            if let Some(e) = end.error {
                return Err(Stop::Cut {
                    seg: j,
                    offset: end.good_end,
                    err: Error::corrupted(&m.path, from, e),
                });
            }
            next_position = end.next_position;
            continue;
        }
        // The active segment: extend its index from where the checkpoint stopped.
        let first = m.header.first_position;
        let (mut idx, mut crc, mut last_crc) = match (j == start.seg, start.active.as_ref()) {
            (true, Some((i, c, l))) => (i.clone(), c.clone(), *l),
            _ => {
                let mut c = crc32fast::Hasher::new();
                c.update(&read_at(&*f, &m.path, 0, SEGMENT_HEADER_BYTES)?);
                (ActiveIndex::new(first), c, 0)
            }
        };
        let data = read_at(&*f, &m.path, from, (m.len - from) as usize)?;
        let end = scan_frames(&data, from, 0, next_position, |off, h, recs| {
            apply_versions(&mut streams, recs)?;
            idx.push_frame((h.first_position - first) as u32, off as u32);
            for (pos, r) in recs {
                idx.push_event(entry_for(r, pos - first, off), *r.id.as_bytes());
            }
            Ok(())
        });
        let good = (end.good_end - from) as usize;
        crc.update(&data[..good]);
        if let Some(h) = end.last_header_crc {
            last_crc = h;
        }
        if let Some(e) = &end.error {
            if e.unsupported {
                return Err(Stop::Fail(Error::corrupted(&m.path, from, e.clone())));
            }
            if durable_frame_after(&data, good, end.next_position).is_some() {
                return Err(Stop::Cut {
                    seg: j,
                    offset: end.good_end,
                    err: Error::corrupted(&m.path, from, e.clone()),
                });
            }
        }
        // A tail of zeros only is the zeros a durable writer writes ahead of its frames (a
        // clean close keeps a few KiB of them): a writable open keeps them, so that the first
        // append writes over them (FORMAT.md § 4).
        let zeros_only = end.error.is_some() && data[good..].iter().all(|b| *b == 0);
        let mut zeroed_to = end.good_end;
        if !read_only {
            // Cut a torn tail (an incomplete last write) back to the last whole frame, and make
            // what remains durable: appends after this open record everything before them as
            // durable (see `durable_frame_after`).
            // A file that ends where the checkpoint's covered prefix ends (a clean close, maybe
            // followed by zeros) needs no fsync: a checkpoint is written only once what it
            // covers is durable.
            if zeros_only {
                zeroed_to = m.len;
            } else if end.error.is_some() {
                f.set_len(end.good_end)
                    .map_err(Error::io("truncate", &m.path))?;
            }
            if (end.error.is_some() && !zeros_only) || good > 0 {
                fsync_data(&*f, &m.path)?;
            }
        }
        next_position = end.next_position;
        active_index = idx;
        tail = Some(ActiveTail {
            path: m.path.clone(),
            file: f,
            header: m.header,
            len: end.good_end,
            zeroed_to,
            crc,
            next_position,
            last_header_crc: last_crc,
        });
    }

    let mut sealed = Vec::with_capacity(sealed_n);
    for (m, index) in metas.iter().zip(indexes) {
        sealed.push(Arc::new(SealedSegment::new(
            shared_vfs.clone(),
            m.path.clone(),
            m.header,
            m.footer.expect("sealed"),
            index,
        )));
    }
    if last_sealed {
        let prev = &metas[last];
        let header = SegmentHeader {
            seq: prev.header.seq.checked_add(1).ok_or_else(|| {
                Stop::Fail(corrupted(
                    &prev.path,
                    16,
                    "segment sequence number exhausted",
                    0,
                    prev.header.seq,
                ))
            })?,
            first_position: next_position,
            prev_last_position: Some(next_position - 1),
            created_us: crate::store::now_us(),
        };
        active_index = ActiveIndex::new(next_position);
        if read_only {
            tail = None;
        } else {
            let path = create_segment(vfs, dir, &header)?;
            let file = vfs.open(&path, true).map_err(Error::io("open", &path))?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&header.encode());
            tail = Some(ActiveTail {
                path,
                file,
                header,
                len: SEGMENT_HEADER_BYTES as u64,
                zeroed_to: SEGMENT_HEADER_BYTES as u64,
                crc,
                next_position,
                last_header_crc: 0,
            });
        }
    }
    let active = tail.as_ref().map(|t| {
        Arc::new(ActiveFile::new(
            t.path.clone(),
            t.header,
            t.file.clone(),
            t.len,
        ))
    });
    // The checkpoint's copy of a sealed segment's id filter serves while that segment is the
    // last sealed one (compaction and compression keep its ids).
    let id_filter = id_filter.filter(|(first, _)| {
        sealed
            .last()
            .is_some_and(|s| s.header.first_position == *first)
    });
    Ok(Recovered {
        state: State {
            settings: Arc::new(load_settings(vfs, dir)?),
            sealed,
            active,
            active_index,
            streams,
            id_filter,
        },
        tail,
        next_position,
    })
}
