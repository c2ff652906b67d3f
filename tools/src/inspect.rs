//! `evlog inspect PATH`: what a store's files hold (`evlog::inspect`). A directory gets a
//! summary per segment, index and checkpoint; a segment file gets every frame. A compressed
//! segment (`.zseg`) also gets its compressed form: header, blocks (each one checked in a file),
//! and its frames are those of its image, at image offsets. Segments moved to the store's
//! archive directory are listed with the others, marked as archived, with their path.

use std::io::Write;
use std::path::{Path, PathBuf};

use evlog::inspect::{
    COMPRESSION, COMPRESSION_ZSEG, CheckpointInspection, DirInspection, IndexInspection,
    STOP_DAMAGED_BLOCK, SegmentInspection, ZsegInspection,
};
use evlog::wire::DecodeError;
use evlog::wire::archive::ARCHIVE_FILE_NAME;
use evlog::wire::checkpoint::CHECKPOINT_FILE_NAME;
use evlog::wire::index_file::IndexHeader;
use evlog::wire::index_names::INDEX_FLAG_NAMES;
use evlog::wire::segment::{SEGMENT_VERSION, SegmentFooter, SegmentHeader};
use serde_json::{Value, json};

use crate::text::rfc3339_us;
use crate::{Failure, Outcome};

/// Arguments of `evlog inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// A store directory, or one file of a store: a segment (`*.seg`, a compressed segment
    /// `*.zseg`, also `*.corrupt`), an index (`*.idx`) or `checkpoint.idx`.
    pub path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand. Exit 1 when a file shows damage (a torn tail of the active segment is
/// a note, not damage).
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let p = &a.path;
    let meta = std::fs::metadata(p).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?;
    let (out, clean) = if meta.is_dir() {
        let d = evlog::inspect::inspect_dir(p)?;
        let out = if a.json {
            json_line(&dir_json(&d))
        } else {
            dir_text(&d)
        };
        (out, d.is_clean())
    } else {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == CHECKPOINT_FILE_NAME {
            let c = evlog::inspect::inspect_checkpoint(p)?;
            let out = if a.json {
                json_line(&checkpoint_json(&c))
            } else {
                let mut s = checkpoint_text(&c);
                push_findings(&mut s, &c.problems, &[]);
                s
            };
            (out, c.problems.is_empty())
        } else if name.ends_with(".idx") {
            let i = evlog::inspect::inspect_index(p)?;
            let out = if a.json {
                json_line(&index_json(&i))
            } else {
                let mut s = index_text(&i);
                push_findings(&mut s, &i.problems, &i.notes);
                s
            };
            (out, i.problems.is_empty())
        } else {
            let s = evlog::inspect::inspect_segment(p)?;
            let out = if a.json {
                json_line(&segment_json(&s, true))
            } else {
                segment_detail_text(&s)
            };
            (out, s.problems.is_empty())
        }
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if clean {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}

fn json_line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn decode_error(e: &DecodeError) -> String {
    format!(
        "{} at byte {} (expected {:#x}, found {:#x})",
        e.what, e.at, e.expected, e.found
    )
}

fn header_text(h: &Result<SegmentHeader, DecodeError>) -> String {
    match h {
        Ok(h) => format!(
            "version {SEGMENT_VERSION}, seq {}, first position {}, previous last position {}, created {} ({} us), payload compression {COMPRESSION}",
            h.seq,
            h.first_position,
            h.prev_last_position
                .map_or("- (first segment)".to_string(), |p| p.to_string()),
            rfc3339_us(h.created_us),
            h.created_us
        ),
        Err(e) => format!("does not decode: {}", decode_error(e)),
    }
}

fn footer_text(f: &Option<SegmentFooter>, compressed: bool) -> String {
    match f {
        Some(f) => format!(
            "first position {}, last position {}, {} event(s), {} frame(s), data end {}, data crc {:#010x}",
            f.first_position,
            f.last_position(),
            f.event_count,
            f.frame_count,
            f.data_end,
            f.data_crc
        ),
        None if compressed => {
            "none: the compressed segment holds no valid copy of the footer".to_string()
        }
        None => "none (not sealed: the active segment)".to_string(),
    }
}

fn state(s: &SegmentInspection) -> &'static str {
    match (s.sealed(), s.is_compressed()) {
        (true, false) => "sealed",
        (true, true) => "sealed, compressed",
        (false, false) => "active",
        (false, true) => "compressed, without a valid footer",
    }
}

/// One line on the compressed form of a segment (no trailing newline).
fn zseg_text(z: &ZsegInspection) -> String {
    match &z.header {
        Ok(h) => {
            let blocks = match z.compressed_bytes {
                Some(c) => format!("{c} compressed byte(s) in blocks"),
                None => "block table does not decode".to_string(),
            };
            format!(
                "{COMPRESSION_ZSEG}, image {} byte(s), block size {}, {} block(s), {blocks}, file {} byte(s), ratio {:.2}",
                h.image_len,
                h.block_raw_bytes,
                h.block_count,
                z.file_bytes,
                z.ratio().unwrap_or(0.0)
            )
        }
        Err(e) => format!("header does not decode: {}", decode_error(e)),
    }
}

/// What was checked of a compressed segment's blocks (no trailing newline).
fn blocks_text(z: &ZsegInspection) -> String {
    if z.header.is_err() {
        return "not read: the header does not decode".to_string();
    }
    if z.compressed_bytes.is_none() {
        return "not read: the block table does not decode".to_string();
    }
    if !z.blocks_checked {
        return "not read (`evlog inspect FILE` or `evlog verify` checks them)".to_string();
    }
    let n = z.header.as_ref().map_or(0, |h| h.block_count);
    if z.damaged_blocks.is_empty() {
        format!("all {n} checked (checksum, then decompression): ok")
    } else {
        format!("{} of {n} damaged", z.damaged_blocks.len())
    }
}

fn positions(s: &SegmentInspection) -> String {
    match (&s.header, s.event_count) {
        (_, 0) => "no events".to_string(),
        (Ok(h), n) => format!(
            "positions {}..={}",
            h.first_position,
            h.first_position + n - 1
        ),
        (Err(_), _) => String::new(),
    }
}

fn push_findings(s: &mut String, problems: &[String], notes: &[String]) {
    for p in problems {
        s.push_str(&format!("problem: {p}\n"));
    }
    for n in notes {
        s.push_str(&format!("note: {n}\n"));
    }
}

fn dir_text(d: &DirInspection) -> String {
    let mut s = String::new();
    let sealed = d.segments.iter().filter(|s| s.sealed()).count();
    let bytes: u64 = d.segments.iter().map(|s| s.bytes).sum();
    let compressed = d.compressed_segments();
    s.push_str(&format!("store: {}\n", d.dir.display()));
    if let Some(a) = &d.archive_dir {
        s.push_str(&format!(
            "archive: {} (named by {ARCHIVE_FILE_NAME}): {} segment(s) archived\n",
            a.display(),
            d.archived_segments()
        ));
    }
    let compression = if compressed == 0 {
        format!("compression {COMPRESSION}")
    } else {
        let image: u64 = d.segments.iter().map(|s| s.image_bytes()).sum();
        format!(
            "{image} byte(s) uncompressed; {compressed} segment(s) compressed ({COMPRESSION_ZSEG})"
        )
    };
    s.push_str(&format!(
        "segments: {} ({sealed} sealed, {} active), {} event(s), {bytes} byte(s); {compression}\n",
        d.segments.len(),
        d.segments.len() - sealed,
        d.events()
    ));
    if d.segments.is_empty() {
        s.push_str("note: no segment files: an empty directory, or not an evlog store\n");
    }
    for seg in &d.segments {
        let archived = d.is_archived(&seg.path);
        s.push_str(&format!(
            "\n{}  {}{}  {} byte(s)\n",
            file_name(&seg.path),
            state(seg),
            if archived { ", archived" } else { "" },
            seg.bytes
        ));
        if archived {
            s.push_str(&format!("  archived: {}\n", seg.path.display()));
        }
        if let Some(z) = &seg.compressed {
            s.push_str(&format!("  compressed: {}\n", zseg_text(z)));
            s.push_str(&format!("  blocks: {}\n", blocks_text(z)));
        }
        s.push_str(&format!("  header: {}\n", header_text(&seg.header)));
        s.push_str(&format!(
            "  footer: {}\n",
            footer_text(&seg.footer, seg.is_compressed())
        ));
        s.push_str(&format!(
            "  frames: {}, events: {} ({}; {})\n",
            seg.frame_count,
            seg.event_count,
            positions(seg),
            if seg.counted_from_footer {
                "counted by the footer"
            } else {
                "counted by reading the frames"
            }
        ));
        for p in &seg.problems {
            s.push_str(&format!("  problem: {p}\n"));
        }
        for n in &seg.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
    }
    s.push_str(&format!("\nindexes: {}\n", d.indexes.len()));
    for i in &d.indexes {
        s.push_str(&format!("  {}", index_text(i)));
        if d.is_archived(&i.path) {
            s.push_str(&format!("    archived: {}\n", i.path.display()));
        }
        for p in &i.problems {
            s.push_str(&format!("    problem: {p}\n"));
        }
        for n in &i.notes {
            s.push_str(&format!("    note: {n}\n"));
        }
    }
    match &d.checkpoint {
        Some(c) => {
            s.push_str(&checkpoint_text(c));
            for p in &c.problems {
                s.push_str(&format!("  problem: {p}\n"));
            }
        }
        None => s.push_str(
            "checkpoint.idx: none (open scans the log from the first segment and writes one on close)\n",
        ),
    }
    if !d.other_files.is_empty() {
        s.push_str("other files:\n");
        for (name, len) in &d.other_files {
            let what = if name == evlog::store::LOCK_FILE_NAME {
                " (lock file)"
            } else if name == ARCHIVE_FILE_NAME {
                " (archive marker: names the archive directory)"
            } else if let Some(n) = archive_copy(d, name) {
                if d.segments
                    .iter()
                    .any(|s| s.name_position == Some(n) && !d.is_archived(&s.path))
                {
                    " (copy left in the archive by an interrupted archive run: the store directory's file of the same segment is read instead; a writable open deletes this copy)"
                } else {
                    " (compressed copy left by an interrupted compression: the .seg file of the same segment is read instead; a writable open deletes it)"
                }
            } else if name.ends_with(".corrupt") {
                " (bytes moved aside by a repair; never read)"
            } else if evlog::wire::zseg::parse_zseg_file_name(name).is_some() {
                " (compressed copy left by an interrupted compression: the .seg file of the same segment is read instead; a writable open deletes it)"
            } else if name.ends_with(".tmp") {
                " (unfinished write; a writable open deletes it)"
            } else {
                ""
            };
            s.push_str(&format!("  {name}  {len} byte(s){what}\n"));
        }
    }
    let total = d.all_problems().len();
    s.push_str(&if total == 0 {
        "\nno problems found".to_string()
    } else {
        format!("\n{total} problem(s) found")
    });
    s.push_str(if compressed > 0 {
        " (sealed segments were read at their header and footer only, compressed ones at their header and block table; `evlog verify DIR` reads every byte)\n"
    } else if sealed > 0 {
        " (sealed segments were read at their header and footer only; `evlog verify DIR` reads every byte)\n"
    } else {
        "\n"
    });
    for p in &d.problems {
        s.push_str(&format!("problem: {p}\n"));
    }
    s
}

/// The first position of a segment file in the archive listed among the other files (named by
/// its path there).
fn archive_copy(d: &DirInspection, name: &str) -> Option<u64> {
    let p = Path::new(name);
    if !d.is_archived(p) {
        return None;
    }
    let n = p.file_name()?.to_str()?;
    evlog::wire::segment::parse_segment_file_name(n)
        .or_else(|| evlog::wire::zseg::parse_zseg_file_name(n))
}

fn index_header_text(h: &IndexHeader) -> String {
    let names = if h.flags & INDEX_FLAG_NAMES != 0 {
        format!(
            ", {} event type(s) ({} typed event(s)), {} stream id(s), {} byte(s) of names",
            h.names.type_count, h.names.typed_count, h.names.stream_count, h.names.names_len
        )
    } else {
        ", no name tables".to_string()
    };
    format!(
        "first position {}, {} frame(s), {} event(s), covers {} byte(s) (crc {:#010x}), {} bloom block(s){names}",
        h.first_position,
        h.frame_count,
        h.event_count,
        h.covered_len,
        h.covered_crc,
        h.bloom_blocks
    )
}

fn index_text(i: &IndexInspection) -> String {
    let body = match i.body_ok {
        Some(true) => ", body checksum ok",
        Some(false) => ", body checksum BAD",
        None => "",
    };
    match &i.header {
        Ok(h) => format!(
            "{}: {}{body}; {} byte(s)\n",
            file_name(&i.path),
            index_header_text(h),
            i.bytes
        ),
        Err(e) => undecodable_text(&i.path, e, i.bytes),
    }
}

/// The line for a file whose header does not decode.
fn undecodable_text(path: &std::path::Path, e: &evlog::wire::DecodeError, bytes: u64) -> String {
    format!(
        "{}: does not decode: {}; {bytes} byte(s)\n",
        file_name(path),
        decode_error(e)
    )
}

fn checkpoint_text(c: &CheckpointInspection) -> String {
    match &c.checkpoint {
        Ok(info) => {
            let covers = match &info.index {
                Ok(h) => format!(
                    "covers {} up to byte {} ({} frame(s), {} event(s))",
                    evlog::wire::segment::segment_file_name(h.first_position),
                    h.covered_len,
                    h.frame_count,
                    h.event_count
                ),
                Err(e) => format!("embedded index does not decode: {}", decode_error(e)),
            };
            format!(
                "{}: next position {}, {} stream(s), {covers}, last frame header crc {:#010x}; {} byte(s)\n",
                file_name(&c.path),
                info.next_position,
                info.streams,
                info.last_frame_header_crc,
                c.bytes
            )
        }
        Err(e) => undecodable_text(&c.path, e, c.bytes),
    }
}

fn segment_detail_text(seg: &SegmentInspection) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "segment: {} ({} byte(s), {})\n",
        seg.path.display(),
        seg.bytes,
        state(seg)
    ));
    if let Some(z) = &seg.compressed {
        s.push_str(&format!("compressed: {}\n", zseg_text(z)));
        s.push_str(&format!("blocks: {}\n", blocks_text(z)));
        for b in &z.damaged_blocks {
            s.push_str(&format!(
                "  damaged block {} at file byte {} ({} compressed byte(s); image bytes {}..{}): {} (expected {:#x}, found {:#x})\n",
                b.index,
                b.offset,
                b.compressed_len,
                b.image_offset,
                b.image_offset + u64::from(b.raw_len),
                b.what,
                b.expected,
                b.found
            ));
        }
        if z.header.is_ok() {
            s.push_str(
                "the segment below is the image (the .seg file this compressed segment stands for): frame offsets are offsets in the image, not in this file\n",
            );
        }
    }
    s.push_str(&format!("header: {}\n", header_text(&seg.header)));
    s.push_str(&format!(
        "footer: {}\n",
        footer_text(&seg.footer, seg.is_compressed())
    ));
    if seg.header.is_ok() {
        s.push_str(&format!(
            "{:>10}  {:>9}  {:>5}  {:>14}  {:>15}  checksum\n",
            "offset", "length", "count", "first_position", "unsynced_before"
        ));
        for f in &seg.frames {
            s.push_str(&format!(
                "{:>10}  {:>9}  {:>5}  {:>14}  {:>15}  ok\n",
                f.offset, f.len, f.count, f.first_position, f.unsynced_before
            ));
        }
    }
    if let Some(st) = seg.stop.as_ref().filter(|st| st.what == STOP_DAMAGED_BLOCK) {
        s.push_str(&format!(
            "{:>10}  stop: the frame reaches a damaged compressed block (image bytes from {} cannot be read); {} byte(s) from here to the end of the data are not listed (damage)\n",
            st.frame_offset, st.offset, st.remaining_bytes
        ));
    } else if let Some(st) = &seg.stop {
        s.push_str(&format!(
            "{:>10}  stop: {} at byte {} (expected {:#x}, found {:#x}); {} byte(s) from here to the end of the data are not listed ({})\n",
            st.frame_offset,
            st.what,
            st.offset,
            st.expected,
            st.found,
            st.remaining_bytes,
            if st.zeros {
                "zeros after the frames, as a durable writer writes ahead of them: open keeps them, to append over"
            } else if st.torn_tail {
                "a torn tail: open cuts it"
            } else {
                "damage"
            }
        ));
    }
    s.push_str(&format!(
        "{} frame(s), {} event(s)",
        seg.frame_count, seg.event_count
    ));
    let p = positions(seg);
    if !p.is_empty() {
        s.push_str(&format!(" ({p})"));
    }
    s.push('\n');
    push_findings(&mut s, &seg.problems, &seg.notes);
    s
}

fn decode_error_json(e: &DecodeError) -> Value {
    json!({"what": e.what, "at": e.at, "expected": e.expected, "found": e.found})
}

fn segment_json(seg: &SegmentInspection, frames: bool) -> Value {
    let header = match &seg.header {
        Ok(h) => json!({
            "version": SEGMENT_VERSION,
            "seq": h.seq,
            "first_position": h.first_position,
            "prev_last_position": h.prev_last_position,
            "created_us": h.created_us,
            "compression": COMPRESSION,
        }),
        Err(e) => json!({"error": decode_error_json(e)}),
    };
    let footer = seg.footer.map(|f| {
        json!({
            "first_position": f.first_position,
            "last_position": f.last_position(),
            "event_count": f.event_count,
            "frame_count": f.frame_count,
            "data_end": f.data_end,
            "data_crc": f.data_crc,
        })
    });
    let stop = seg.stop.as_ref().map(|st| {
        json!({
            "frame_offset": st.frame_offset,
            "offset": st.offset,
            "what": st.what,
            "expected": st.expected,
            "found": st.found,
            "remaining_bytes": st.remaining_bytes,
            "torn_tail": st.torn_tail,
            "zeros": st.zeros,
        })
    });
    let compressed = seg.compressed.as_ref().map(|z| {
        json!({
            "compression": COMPRESSION_ZSEG,
            "file_bytes": z.file_bytes,
            "header": match &z.header {
                Ok(h) => json!({
                    "image_len": h.image_len,
                    "block_raw_bytes": h.block_raw_bytes,
                    "block_count": h.block_count,
                }),
                Err(e) => json!({"error": decode_error_json(e)}),
            },
            "compressed_bytes": z.compressed_bytes,
            "ratio": z.ratio(),
            "blocks_checked": z.blocks_checked,
            "damaged_blocks": z.damaged_blocks.iter().map(|b| json!({
                "index": b.index,
                "offset": b.offset,
                "compressed_len": b.compressed_len,
                "image_offset": b.image_offset,
                "raw_len": b.raw_len,
                "what": b.what,
                "expected": b.expected,
                "found": b.found,
            })).collect::<Vec<_>>(),
            "offsets": "frame offsets, data_end and stop offsets are offsets in the image",
        })
    });
    let mut v = json!({
        "file": seg.path.display().to_string(),
        "bytes": seg.bytes,
        "state": if seg.sealed() { "sealed" } else { "active" },
        "compressed": compressed,
        "header": header,
        "footer": footer,
        "frame_count": seg.frame_count,
        "event_count": seg.event_count,
        "counted_from_footer": seg.counted_from_footer,
        "stop": stop,
        "problems": seg.problems,
        "notes": seg.notes,
    });
    if frames {
        v["frames"] = seg
            .frames
            .iter()
            .map(|f| {
                json!({
                    "offset": f.offset,
                    "length": f.len,
                    "count": f.count,
                    "first_position": f.first_position,
                    "unsynced_before": f.unsynced_before,
                    "body_crc": f.body_crc,
                    "header_crc": f.header_crc,
                    "checksum": "ok",
                })
            })
            .collect();
    }
    v
}

fn index_header_json(h: &IndexHeader) -> Value {
    json!({
        "first_position": h.first_position,
        "frame_count": h.frame_count,
        "event_count": h.event_count,
        "covered_len": h.covered_len,
        "covered_crc": h.covered_crc,
        "bloom_blocks": h.bloom_blocks,
        "name_tables": (h.flags & INDEX_FLAG_NAMES != 0).then(|| json!({
            "type_count": h.names.type_count,
            "typed_count": h.names.typed_count,
            "stream_count": h.names.stream_count,
            "names_len": h.names.names_len,
        })),
    })
}

fn index_json(i: &IndexInspection) -> Value {
    json!({
        "file": i.path.display().to_string(),
        "bytes": i.bytes,
        "header": match &i.header {
            Ok(h) => index_header_json(h),
            Err(e) => json!({"error": decode_error_json(e)}),
        },
        "body_checksum_ok": i.body_ok,
        "problems": i.problems,
        "notes": i.notes,
    })
}

fn checkpoint_json(c: &CheckpointInspection) -> Value {
    let decoded = match &c.checkpoint {
        Ok(info) => json!({
            "next_position": info.next_position,
            "streams": info.streams,
            "last_frame_header_crc": info.last_frame_header_crc,
            "index": match &info.index {
                Ok(h) => index_header_json(h),
                Err(e) => json!({"error": decode_error_json(e)}),
            },
        }),
        Err(e) => json!({"error": decode_error_json(e)}),
    };
    json!({
        "file": c.path.display().to_string(),
        "bytes": c.bytes,
        "checkpoint": decoded,
        "problems": c.problems,
    })
}

fn dir_json(d: &DirInspection) -> Value {
    let problems = d.all_problems();
    json!({
        "dir": d.dir.display().to_string(),
        "compression": if d.compressed_segments() == 0 { COMPRESSION } else { COMPRESSION_ZSEG },
        "compressed_segments": d.compressed_segments(),
        "archive_dir": d.archive_dir.as_ref().map(|a| a.display().to_string()),
        "archived_segments": d.archived_segments(),
        "clean": problems.is_empty(),
        "events": d.events(),
        "segments": d.segments.iter().map(|s| {
            let mut v = segment_json(s, false);
            v["archived"] = d.is_archived(&s.path).into();
            v
        }).collect::<Vec<_>>(),
        "indexes": d.indexes.iter().map(|i| {
            let mut v = index_json(i);
            v["archived"] = d.is_archived(&i.path).into();
            v
        }).collect::<Vec<_>>(),
        "checkpoint": d.checkpoint.as_ref().map(checkpoint_json),
        "other_files": d.other_files.iter().map(|(n, l)| json!({"file": n, "bytes": l})).collect::<Vec<_>>(),
        "problems": problems,
    })
}
