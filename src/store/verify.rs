//! Verify: read every byte of a store directory, check every checksum, the order of positions
//! and versions, and the indexes against the log. Works on a store that does not open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::index::ActiveIndex;
use crate::io::{Vfs, read_file, read_optional};
use crate::segment::{durable_frame_after, scan_frames};
use crate::store::recover::{apply_versions, entry_for, is_zseg, list_segments};
use crate::wire::checkpoint::{CHECKPOINT_FILE_NAME, decode_checkpoint};
use crate::wire::index_file::IndexView;
use crate::wire::index_names::{EventAt, NamesBuilder};
use crate::wire::segment::{FOOTER_BYTES, SEGMENT_HEADER_BYTES, SegmentFooter, SegmentHeader};

/// One problem found by verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Byte offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.file.display(),
            self.offset,
            self.what
        )
    }
}

/// What verify read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: usize,
    /// Frames checked.
    pub frames: u64,
    /// Events checked.
    pub events: u64,
    /// Streams seen.
    pub streams: usize,
    /// Bytes of segment files read.
    pub bytes: u64,
    /// Of the segments, how many are compressed (`.zseg` files).
    pub compressed_segments: usize,
    /// Damage: every entry here means the store is not clean.
    pub problems: Vec<Problem>,
    /// Facts that are not damage: a torn tail that open cuts, an index that open rebuilds.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

use crate::store::streams::StreamTable;

struct Ckpt {
    first_position: u64,
    covered_len: u64,
    index: Vec<u8>,
    streams: HashMap<String, u64>,
    /// The copy of a sealed segment's id filter: its first position and blocks.
    id_filter: Option<(u64, Vec<u8>)>,
}

/// Verifies the store in `dir` without opening it (no lock is taken; nothing is written).
pub fn verify_dir(dir: &Path) -> Result<VerifyReport> {
    verify_dir_with(&crate::io::RealFs, dir)
}

/// [`verify_dir`] on the file system `vfs`.
pub fn verify_dir_with(vfs: &dyn Vfs, dir: &Path) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let names = list_segments(vfs, dir)?;
    let problem = |rep: &mut VerifyReport, file: &Path, offset: u64, what: String| {
        rep.problems.push(Problem {
            file: file.to_path_buf(),
            offset,
            what,
        });
    };
    let ckpt_path = dir.join(CHECKPOINT_FILE_NAME);
    let ckpt = match read_optional(vfs, &ckpt_path)? {
        None => {
            rep.notes
                .push("no checkpoint.idx: open rescans the log".into());
            None
        }
        Some(b) => match decode_checkpoint(&b) {
            Err(e) => {
                problem(&mut rep, &ckpt_path, e.at as u64, e.what.to_string());
                None
            }
            Ok(c) => match IndexView::new(c.index) {
                // Written by a build with another index version: open ignores it.
                Err(e) if e.unsupported => {
                    rep.notes.push(format!(
                        "checkpoint.idx holds an index of another version ({}): open ignores \
                         it and rescans the log",
                        e.found
                    ));
                    None
                }
                Err(e) => {
                    problem(
                        &mut rep,
                        &ckpt_path,
                        e.at as u64,
                        format!("checkpoint index: {}", e.what),
                    );
                    None
                }
                Ok(v) => Some(Ckpt {
                    first_position: v.header.first_position,
                    covered_len: u64::from(v.header.covered_len),
                    index: c.index.to_vec(),
                    streams: c.streams.iter().map(|(s, v)| (s.to_string(), v)).collect(),
                    id_filter: c
                        .id_filter
                        .map(|f| (f.segment_first_position, f.blocks.to_vec())),
                }),
            },
        },
    };
    let settings_path = dir.join(crate::wire::settings::SETTINGS_FILE_NAME);
    if let Some(b) = read_optional(vfs, &settings_path)?
        && let Err(e) = crate::wire::settings::decode_settings(&b)
    {
        problem(&mut rep, &settings_path, e.at as u64, e.what.to_string());
    }
    let mut ckpt_checked = false;
    let mut streams = StreamTable::default();
    let mut next_position: Option<u64> = None;
    let mut prev: Option<(SegmentHeader, Option<SegmentFooter>)> = None;
    let mut damaged = false;
    let last = names.len().saturating_sub(1);
    for (i, (pos, path)) in names.iter().enumerate() {
        rep.segments += 1;
        let (path, data) = match read_file(vfs, path) {
            // Compressed meanwhile by the store's writer: read the compressed file instead.
            Err(crate::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !is_zseg(path) =>
            {
                let z = path.with_file_name(crate::wire::zseg::zseg_file_name(*pos));
                (z.clone(), read_file(vfs, &z)?)
            }
            r => (path.clone(), r?),
        };
        let path = &path;
        rep.bytes += data.len() as u64;
        // A compressed segment is checked block by block (each block's checksum before it is
        // decompressed), then its image is checked like a `.seg` file; offsets in problems
        // below are then offsets in the image.
        let data = if is_zseg(path) {
            match crate::wire::zseg::decompress_image(&data) {
                Ok(image) => {
                    rep.compressed_segments += 1;
                    image
                }
                Err(e) => {
                    problem(&mut rep, path, e.at as u64, e.what.to_string());
                    damaged = true;
                    prev = None;
                    next_position = None;
                    continue;
                }
            }
        } else {
            data
        };
        let header = match SegmentHeader::decode(&data) {
            Ok(h) => h,
            Err(e) => {
                problem(&mut rep, path, e.at as u64, e.what.to_string());
                damaged = true;
                prev = None;
                next_position = None;
                continue;
            }
        };
        if header.first_position != *pos {
            problem(
                &mut rep,
                path,
                24,
                format!(
                    "header first position {} differs from the file name",
                    header.first_position
                ),
            );
        }
        if let Some((ph, pf)) = prev {
            if ph.seq.checked_add(1) != Some(header.seq) {
                problem(
                    &mut rep,
                    path,
                    16,
                    format!(
                        "segment sequence {} follows {}: a segment is missing",
                        header.seq, ph.seq
                    ),
                );
            }
            if header.prev_last_position != pf.map(|f| f.last_position()) {
                problem(&mut rep, path, 32, "previous segment's last position does not match: a segment is missing or truncated".into());
            }
        } else if i == 0 && header.prev_last_position.is_some() {
            problem(
                &mut rep,
                path,
                32,
                "first segment names a predecessor that is missing".into(),
            );
        }
        if let Some(np) = next_position
            && np != header.first_position
        {
            problem(
                &mut rep,
                path,
                24,
                format!(
                    "segment starts at position {} but the log continues at {np}",
                    header.first_position
                ),
            );
        }
        let footer = (data.len() >= SEGMENT_HEADER_BYTES + FOOTER_BYTES)
            .then(|| SegmentFooter::decode(&data[data.len() - FOOTER_BYTES..]).ok())
            .flatten()
            .filter(|f| f.data_end == (data.len() - FOOTER_BYTES) as u64);
        if footer.is_none() && i < last {
            problem(
                &mut rep,
                path,
                (data.len().saturating_sub(FOOTER_BYTES)) as u64,
                "sealed segment has no valid footer".into(),
            );
        }
        let end = footer.map_or(data.len(), |f| f.data_end as usize);
        let first = header.first_position;
        let mut idx = ActiveIndex::new(first);
        let mut names = NamesBuilder::new();
        let mut ckpt_idx: Option<(Vec<u8>, StreamTable)> = None;
        let want_ckpt = ckpt
            .as_ref()
            .filter(|c| c.first_position == first)
            .map(|c| c.covered_len);
        let mut running = crc32fast::Hasher::new();
        running.update(&data[..SEGMENT_HEADER_BYTES.min(end)]);
        if want_ckpt == Some(SEGMENT_HEADER_BYTES as u64) {
            ckpt_idx = Some((
                idx.encode(SEGMENT_HEADER_BYTES as u32, running.clone().finalize()),
                streams.clone(),
            ));
        }
        let check_versions = !damaged;
        let scan = scan_frames(
            &data[..end],
            0,
            SEGMENT_HEADER_BYTES,
            first,
            |off, h, recs| {
                if check_versions {
                    apply_versions(&mut streams, recs)?;
                }
                idx.push_frame((h.first_position - first) as u32, off as u32);
                for (p, r) in recs {
                    idx.push_event(entry_for(r, p - first, off), *r.id.as_bytes());
                    let at = EventAt {
                        rel_pos: (p - first) as u32,
                        frame_offset: off as u32,
                    };
                    names.push(r.stream, r.event_type, at);
                }
                let frame_end = off + h.frame_len() as u64;
                running.update(&data[off as usize..frame_end as usize]);
                if want_ckpt == Some(frame_end) {
                    ckpt_idx = Some((
                        idx.encode(frame_end as u32, running.clone().finalize()),
                        streams.clone(),
                    ));
                }
                Ok(())
            },
        );
        rep.frames += u64::from(idx.frame_count());
        rep.events += u64::from(idx.event_count());
        if let Some(e) = &scan.error {
            let at = scan.good_end;
            let valid_after =
                durable_frame_after(&data[..end], at as usize, scan.next_position).is_some();
            if footer.is_none() && i == last && !valid_after {
                let tail = &data[at as usize..];
                // A durable writer writes zeros ahead of its frames (FORMAT.md, section 4).
                let (what, open) = if tail.iter().all(|&b| b == 0) {
                    (
                        "zeros after the last frame",
                        "open keeps them, to append over",
                    )
                } else {
                    ("torn tail", "open cuts it")
                };
                rep.notes.push(format!(
                    "{}: {what} at byte {at} ({} bytes; {open})",
                    path.display(),
                    tail.len()
                ));
            } else {
                problem(&mut rep, path, e.at as u64, e.what.to_string());
                damaged = true;
            }
        }
        if let Some(f) = footer {
            let crc = crc32fast::hash(&data[..end]);
            if crc != f.data_crc {
                problem(
                    &mut rep,
                    path,
                    f.data_end + 40,
                    format!(
                        "footer checksum {:#x} does not match the data ({crc:#x})",
                        f.data_crc
                    ),
                );
            }
            if scan.error.is_none()
                && (f.event_count != u64::from(idx.event_count())
                    || f.frame_count != u64::from(idx.frame_count())
                    || f.first_position != first)
            {
                problem(
                    &mut rep,
                    path,
                    f.data_end,
                    "footer counts do not match the frames".into(),
                );
            }
            let idx_path = crate::store::recover::index_path_of(path, first);
            match read_optional(vfs, &idx_path)? {
                None => rep.notes.push(format!(
                    "{}: missing (open rebuilds it)",
                    idx_path.display()
                )),
                Some(b) if IndexView::new(&b).is_err_and(|e| e.unsupported) => {
                    rep.notes.push(format!(
                        "{}: index of another version (open rebuilds it)",
                        idx_path.display()
                    ))
                }
                Some(b) => {
                    let expect = idx.encode_with_names(end as u32, crc, Some(&names));
                    if let Some((_, filter)) = ckpt
                        .as_ref()
                        .and_then(|c| c.id_filter.as_ref())
                        .filter(|(f, _)| *f == first)
                        && scan.error.is_none()
                        && IndexView::new(&expect).is_ok_and(|v| v.bloom() != &filter[..])
                    {
                        problem(
                            &mut rep,
                            &ckpt_path,
                            0,
                            format!(
                                "checkpoint's copy of the id filter of segment {first} does not \
                                 match the segment"
                            ),
                        );
                    }
                    if scan.error.is_none() && b != expect {
                        let at = b
                            .iter()
                            .zip(&expect)
                            .position(|(a, b)| a != b)
                            .unwrap_or(b.len().min(expect.len()));
                        problem(
                            &mut rep,
                            &idx_path,
                            at as u64,
                            "index does not match the segment".into(),
                        );
                    }
                }
            }
        }
        if let Some(c) = ckpt.as_ref().filter(|c| c.first_position == first) {
            ckpt_checked = true;
            match ckpt_idx {
                Some((bytes, at_streams)) => {
                    if bytes != c.index {
                        problem(
                            &mut rep,
                            &ckpt_path,
                            0,
                            "checkpoint index does not match the segment".into(),
                        );
                    }
                    let log: HashMap<String, u64> =
                        at_streams.iter().map(|(k, v)| (k.to_string(), v)).collect();
                    if !damaged && log != c.streams {
                        problem(
                            &mut rep,
                            &ckpt_path,
                            0,
                            "checkpoint stream table does not match the log".into(),
                        );
                    }
                }
                None => problem(
                    &mut rep,
                    &ckpt_path,
                    0,
                    format!(
                        "checkpoint covers {} bytes of {}, which is not a frame boundary of the log",
                        c.covered_len,
                        path.display()
                    ),
                ),
            }
        }
        next_position = Some(scan.next_position);
        if let Some(f) = footer {
            next_position = Some(f.first_position + f.event_count);
        }
        prev = Some((header, footer));
    }
    if let Some(c) = &ckpt
        && !ckpt_checked
    {
        problem(
            &mut rep,
            &ckpt_path,
            0,
            format!(
                "checkpoint names segment {} which is not in the store",
                c.first_position
            ),
        );
    }
    rep.streams = streams.len();
    Ok(rep)
}
