//! `evlog repair DIR`: open the store with `StoreOptions::repair(true)` and report what changed
//! in the directory (torn tails cut, damaged bytes moved to `*.corrupt` files, indexes and
//! checkpoint rebuilt).
//!
//! Open reads only what it must (FORMAT.md § 16): damage in a sealed segment whose `.idx` is
//! valid, or in the active segment below the checkpoint, is not seen by open. So repair first
//! runs verify, and for each damaged segment deletes the caches that let open skip it (its
//! `.idx` and the checkpoint, both rebuilt from the log), so that the repairing open reads the
//! damage and cuts the log there. This is done while holding the store's lock; a running writer
//! makes repair refuse (exit 3) without changing anything.
//!
//! Compressed segments (`.zseg`) are segments like the others; one with damage is moved aside
//! whole (`NNN.zseg.corrupt`: its blocks cannot be cut at an offset), with every later segment.
//!
//! Archived segments (in the directory the store's `archive.path` marker names) are segments
//! like the others too: the caches dropped for a damaged one are its `.idx` beside it in the
//! archive and the checkpoint, and the report lists the archive's files by their path. The
//! library's repairing open moves every segment it moves aside to a `*.corrupt` file beside it
//! (in the archive for an archived segment, in the store directory otherwise) and removes its
//! `.idx` from that same directory; the bytes cut from a segment are written beside it too
//! (`NNN.seg.OFFSET.corrupt`). Nothing is renamed from one directory to the other. A segment
//! cut inside stays where it is: when it is an archived one, it becomes the active segment, in
//! the archive directory (the report says so).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use evlog::StoreOptions;
use evlog::store::LOCK_FILE_NAME;
use evlog::wire::archive::{ARCHIVE_FILE_NAME, decode_archive_marker};
use evlog::wire::checkpoint::CHECKPOINT_FILE_NAME;
use evlog::wire::segment::{index_file_name, parse_segment_file_name, segment_file_name};
use evlog::wire::zseg::parse_zseg_file_name;
use serde_json::json;

use crate::{Failure, Outcome, require_dir};

/// Arguments of `evlog repair`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory. No writer may have it open.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What a file looked like.
#[derive(Clone, PartialEq, Eq)]
struct FileState {
    len: u64,
    modified: Option<SystemTime>,
    /// Content hash of indexes and the checkpoint (small files whose rewrite is worth telling).
    hash: Option<u64>,
}

/// The archive directory the store's `archive.path` marker names (a relative path joined to the
/// store directory), if it has a marker that decodes (a damaged one fails the repairing open).
fn archive_of(dir: &Path) -> Option<PathBuf> {
    let b = fs::read(dir.join(ARCHIVE_FILE_NAME)).ok()?;
    decode_archive_marker(&b).ok().map(|p| dir.join(p))
}

/// The files of the store directory, by name, and of the archive directory, by path. An archive
/// directory that cannot be read is left out (verify then fails, naming it).
fn snapshot(dir: &Path, archive: Option<&Path>) -> Result<BTreeMap<String, FileState>, Failure> {
    let mut m = snapshot_dir(dir, false)?;
    if let Some(a) = archive.filter(|a| a.is_dir()) {
        m.extend(snapshot_dir(a, true)?);
    }
    Ok(m)
}

fn snapshot_dir(dir: &Path, by_path: bool) -> Result<BTreeMap<String, FileState>, Failure> {
    let err = |e: std::io::Error| Failure::usage(format!("read directory {}: {e}", dir.display()));
    let mut m = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().map_err(err)?;
        if !meta.is_file() || name == LOCK_FILE_NAME {
            continue;
        }
        if by_path {
            name = entry.path().display().to_string();
        }
        let hash = if name.ends_with(".idx") {
            fs::read(entry.path()).ok().map(|b| content_hash(&name, &b))
        } else {
            None
        };
        m.insert(
            name,
            FileState {
                len: meta.len(),
                modified: meta.modified().ok(),
                hash,
            },
        );
    }
    Ok(m)
}

/// A hash of what a cache file says. The checkpoint's stream table is in no particular order,
/// so it is hashed sorted: a checkpoint rewritten with the same content is not a change.
fn content_hash(name: &str, b: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match evlog::wire::checkpoint::decode_checkpoint(b) {
        Ok(c) if name == CHECKPOINT_FILE_NAME => {
            let mut streams: Vec<(&str, u64)> = c.streams.iter().collect();
            streams.sort_unstable();
            (c.next_position, c.last_frame_header_crc, streams, c.index).hash(&mut h);
        }
        _ => b.hash(&mut h),
    }
    h.finish()
}

/// The file name of a snapshot entry (archive files are named by their path).
fn base(name: &str) -> &str {
    Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
}

/// The first position of a segment file's name: a `.seg` or a compressed `.zseg` file.
fn segment_position(name: &str) -> Option<u64> {
    let name = base(name);
    parse_segment_file_name(name).or_else(|| parse_zseg_file_name(name))
}

/// True for a snapshot entry of the archive directory.
fn in_archive(name: &str) -> bool {
    base(name) != name
}

/// The directory of a snapshot entry: empty for the store directory's files (named by their
/// name), the archive directory for the archive's (named by their path).
fn parent(name: &str) -> &Path {
    Path::new(name).parent().unwrap_or(Path::new(""))
}

/// The snapshot entry of the file `file_name` in the same directory as the entry `name`.
fn beside(name: &str, file_name: &str) -> String {
    Path::new(name)
        .with_file_name(file_name)
        .display()
        .to_string()
}

/// The directory of a snapshot entry, for the report.
fn place(name: &str) -> &'static str {
    if in_archive(name) {
        "the archive directory"
    } else {
        "the store directory"
    }
}

/// The `.corrupt` file of `len` bytes the repair created beside the entry `name` for `stem`:
/// `STEM.corrupt`, or `STEM.N.corrupt` when that name was taken, and not in `taken`.
fn corrupt_file_for<'a>(
    name: &str,
    stem: &str,
    len: u64,
    before: &BTreeMap<String, FileState>,
    after: &'a BTreeMap<String, FileState>,
    taken: &BTreeSet<&str>,
) -> Option<&'a str> {
    after
        .iter()
        .find(|(n, a)| {
            !before.contains_key(*n)
                && !taken.contains(n.as_str())
                && a.len == len
                && parent(n) == parent(name)
                && base(n)
                    .strip_prefix(stem)
                    .and_then(|rest| rest.strip_suffix(".corrupt"))
                    .is_some_and(|mid| {
                        mid.is_empty()
                            || mid.strip_prefix('.').is_some_and(|k| {
                                !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit())
                            })
                    })
        })
        .map(|(n, _)| n.as_str())
}

/// One change to the directory.
struct Change {
    file: String,
    change: &'static str,
    bytes_before: Option<u64>,
    bytes_after: Option<u64>,
    detail: String,
    /// The `.corrupt` file that now holds the segment (moved aside whole) or the bytes cut from
    /// it: beside it, in the same directory.
    corrupt_file: Option<String>,
}

/// Where each segment file that went away (or was replaced by a shorter file of the same name:
/// the new active segment) was moved: a `.corrupt` file created by the repair beside it, in the
/// same directory (the archive for an archived segment), named after it (`NAME.corrupt`, or
/// `NAME.N.corrupt` when that name was taken), with its length.
fn moved_segments<'a>(
    before: &'a BTreeMap<String, FileState>,
    after: &'a BTreeMap<String, FileState>,
) -> BTreeMap<&'a str, &'a str> {
    let mut moved = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for (name, b) in before {
        // A segment moved aside whole may be there again: a new, empty active segment created
        // at the same position by the repairing open.
        let again = after.get(name).is_some_and(|a| a.len < b.len);
        if (after.contains_key(name) && !again) || segment_position(name).is_none() {
            continue;
        }
        if let Some(n) = corrupt_file_for(name, base(name), b.len, before, after, &taken) {
            taken.insert(n);
            moved.insert(name.as_str(), n);
        }
    }
    moved
}

fn diff(
    before: &BTreeMap<String, FileState>,
    after: &BTreeMap<String, FileState>,
    damaged: &BTreeSet<String>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    // Whether the store directory holds a segment file of this position after the repair.
    let in_store_after = |pos: u64| {
        after
            .keys()
            .any(|n| !in_archive(n) && segment_position(n) == Some(pos))
    };
    let moved = moved_segments(before, after);
    let move_targets: BTreeSet<&str> = moved.values().copied().collect();
    // The segments cut inside, and the `.corrupt` file beside each that keeps the bytes cut off
    // (none for a torn tail).
    let mut cut_targets: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, b) in before {
        if let Some(a) = after.get(name)
            && segment_position(name).is_some()
            && !moved.contains_key(name.as_str())
            && a.len < b.len
        {
            let stem = format!("{}.{}", base(name), a.len);
            let taken = BTreeSet::new();
            if let Some(kept) = corrupt_file_for(name, &stem, b.len - a.len, before, after, &taken)
            {
                cut_targets.insert(name.as_str(), kept);
            }
        }
    }
    // The log's last segment after the repair: the active one, which has no index.
    let active = after
        .keys()
        .filter_map(|n| segment_position(n).map(|p| (p, n.as_str())))
        .max();
    // The segment (before the repair) whose index is the entry `idx`, beside it.
    let segment_of_index = |idx: &str| {
        before
            .keys()
            .find(|n| segment_position(n).is_some_and(|p| beside(n, &index_file_name(p)) == idx))
    };
    // " beside it, in the archive directory" for a `.corrupt` file in the archive (the store
    // directory's files are named by their name, the archive's by their path).
    let there = |corrupt: &str| {
        if in_archive(corrupt) {
            ", beside it in the archive directory"
        } else {
            ""
        }
    };
    for name in names {
        let (b, a) = (before.get(name), after.get(name));
        let is_seg = segment_position(name).is_some();
        let is_zseg = parse_zseg_file_name(base(name)).is_some();
        let corrupt_file = moved
            .get(name.as_str())
            .or_else(|| cut_targets.get(name.as_str()))
            .map(|c| c.to_string());
        let mut push = |change, detail: String| {
            out.push(Change {
                file: name.clone(),
                change,
                bytes_before: b.map(|s| s.len),
                bytes_after: a.map(|s| s.len),
                detail,
                corrupt_file: corrupt_file.clone(),
            })
        };
        match (b, a) {
            (Some(b), None) => {
                if let Some(to) = moved.get(name.as_str()) {
                    let why = if !damaged.contains(name) {
                        "it lies after the cut"
                    } else if is_zseg {
                        "it holds the damage (a compressed segment cannot be cut inside: it is moved whole)"
                    } else {
                        "it holds the damage, at its start"
                    };
                    push(
                        "moved",
                        format!(
                            "the whole segment ({} bytes) moved to {to}{}: {why}",
                            b.len,
                            there(to)
                        ),
                    );
                } else if is_seg
                    && in_archive(name)
                    && segment_position(name).is_some_and(in_store_after)
                {
                    push(
                        "removed",
                        "a copy left in the archive by an interrupted archive run (the store directory's file of the same segment is kept)".into(),
                    );
                } else if is_zseg
                    && segment_position(name)
                        .is_some_and(|p| after.contains_key(&beside(name, &segment_file_name(p))))
                {
                    push(
                        "removed",
                        "a compressed copy left by an interrupted compression (the .seg file of the same segment is kept)".into(),
                    );
                } else if name == CHECKPOINT_FILE_NAME {
                    push("removed", "the checkpoint (a cache; rebuilt)".into());
                } else if name.ends_with(".idx") {
                    let detail = match segment_of_index(name) {
                        Some(seg) if moved.contains_key(seg.as_str()) => format!(
                            "the index of {}, which was moved aside: removed from {}, where both were",
                            base(seg),
                            place(name)
                        ),
                        Some(seg) if active.is_some_and(|(_, last)| last == seg) => format!(
                            "the index of {}, cut: it is now the active segment, which has no index until it is sealed",
                            base(seg)
                        ),
                        _ => "an index (a cache; rebuilt from its segment)".into(),
                    };
                    push("removed", detail);
                } else if name.ends_with(".tmp") {
                    push("removed", "an unfinished write".into());
                } else {
                    push("removed", String::new());
                }
            }
            (None, Some(a)) => {
                if name.ends_with(".corrupt") {
                    if let Some((seg, _)) = cut_targets.iter().find(|(_, c)| **c == name.as_str()) {
                        push(
                            "created",
                            format!(
                                "{} damaged byte(s) cut from {}, kept beside it in {} (never read by evlog)",
                                a.len,
                                base(seg),
                                place(name)
                            ),
                        );
                    } else if !move_targets.contains(name.as_str()) {
                        push(
                            "created",
                            format!(
                                "{} damaged byte(s) moved aside (never read by evlog)",
                                a.len
                            ),
                        );
                    }
                } else if name == CHECKPOINT_FILE_NAME {
                    push("created", "the checkpoint".into());
                } else if name.ends_with(".idx") {
                    push("created", "index rebuilt from its segment".into());
                } else if is_seg && !is_zseg {
                    push("created", "a new active segment".into());
                } else {
                    push("created", String::new());
                }
            }
            (Some(b), Some(a)) => {
                if let Some(to) = moved.get(name.as_str()) {
                    push(
                        "replaced",
                        format!(
                            "the whole segment ({} bytes) moved to {to}{}: it holds the damage, at its start; the file is now a new active segment ({} bytes) continuing the log from the cut",
                            b.len,
                            there(to),
                            a.len
                        ),
                    );
                } else if is_seg && a.len < b.len {
                    let cut = b.len - a.len;
                    let detail = match cut_targets.get(name.as_str()) {
                        Some(kept) => format!(
                            "cut {cut} byte(s) at byte {}; they are kept in {kept}{}",
                            a.len,
                            there(kept)
                        ),
                        None => format!(
                            "cut a torn tail of {cut} byte(s) at byte {} (an incomplete write, never acknowledged)",
                            a.len
                        ),
                    };
                    push("truncated", detail);
                } else if is_seg && a.len != b.len {
                    push("changed", format!("length {} -> {}", b.len, a.len));
                } else if a.hash.is_some() && a.hash != b.hash {
                    if name == CHECKPOINT_FILE_NAME {
                        push("rewritten", "the checkpoint (written on close)".into());
                    } else {
                        push("rewritten", "index rebuilt from its segment".into());
                    }
                } else if a.hash.is_none() && a.modified != b.modified && !is_seg {
                    push("rewritten", String::new());
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// Deletes a cache file (an index or the checkpoint) in `dir` while the lock is held. It is
/// listed by its name, or by its path when `dir` is the archive.
fn drop_cache(
    dir: &Path,
    name: &str,
    archived: bool,
    dropped: &mut Vec<String>,
) -> Result<(), Failure> {
    let p = dir.join(name);
    let shown = if archived {
        p.display().to_string()
    } else {
        name.to_string()
    };
    if dropped.contains(&shown) || !p.exists() {
        return Ok(());
    }
    fs::remove_file(&p).map_err(|e| Failure::usage(format!("remove {}: {e}", p.display())))?;
    dropped.push(shown);
    Ok(())
}

/// The log's last segment when it is in the archive directory: after a cut inside an archived
/// segment, that segment is the active one, and the store appends to it there (a segment of the
/// store directory would come after it).
fn active_in_archive(after: &BTreeMap<String, FileState>) -> Option<&str> {
    let last = after
        .keys()
        .filter_map(|n| segment_position(n).map(|p| (p, !in_archive(n), n.as_str())))
        .max()?;
    (!last.1).then_some(last.2)
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let dir = &a.dir;
    require_dir(dir)?;
    let archive = archive_of(dir);
    let before = snapshot(dir, archive.as_deref())?;
    if !before.keys().any(|n| segment_position(n).is_some()) {
        return Err(Failure::usage(format!(
            "{}: no segment files: not an evlog store (nothing was changed)",
            dir.display()
        )));
    }
    // Take the lock first: a running writer makes repair refuse before it changes anything.
    let lock_path = dir.join(LOCK_FILE_NAME);
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Failure::usage(format!("open {}: {e}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(crate::locked(dir, "repair")),
        Err(fs::TryLockError::Error(e)) => {
            return Err(Failure::usage(format!("lock {}: {e}", lock_path.display())));
        }
    }
    let pb = crate::progress::spinner(&format!("verifying {}", dir.display()));
    let pre = evlog::verify_dir(dir);
    pb.finish_and_clear();
    let pre = pre?;
    let mut dropped = Vec::new();
    let mut damaged = BTreeSet::new();
    for p in &pre.problems {
        let Some(name) = p.file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // A segment's index is beside it: in the archive for an archived segment.
        let (file_dir, archived) = match (p.file.parent(), &archive) {
            (Some(parent), Some(a)) if parent == a.as_path() => (a.as_path(), true),
            _ => (dir.as_path(), false),
        };
        if let Some(pos) = segment_position(name) {
            damaged.insert(if archived {
                p.file.display().to_string()
            } else {
                name.to_string()
            });
            drop_cache(file_dir, &index_file_name(pos), archived, &mut dropped)?;
            drop_cache(dir, CHECKPOINT_FILE_NAME, false, &mut dropped)?;
        } else if name.ends_with(".idx") {
            drop_cache(file_dir, name, archived, &mut dropped)?;
        }
    }
    let synced: BTreeSet<&Path> = dropped
        .iter()
        .map(|d| match (in_archive(d), &archive) {
            (true, Some(a)) => a.as_path(),
            _ => dir.as_path(),
        })
        .collect();
    for d in synced {
        fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| Failure::usage(format!("fsync {}: {e}", d.display())))?;
    }
    drop(lock);

    let pb = crate::progress::spinner(&format!("repairing {}", dir.display()));
    let opened = StoreOptions::new().repair(true).open(dir);
    pb.finish_and_clear();
    let store = match opened {
        Ok(s) => s,
        Err(evlog::Error::Locked { .. }) => return Err(crate::locked(dir, "repair")),
        Err(e) => return Err(e.into()),
    };
    store.close()?;
    let after = snapshot(dir, archive.as_deref())?;
    let changes = diff(&before, &after, &damaged);
    let post = evlog::verify_dir(dir)?;
    let active_archived = active_in_archive(&after);

    let out = if a.json {
        let problems = |r: &evlog::VerifyReport| {
            r.problems
                .iter()
                .map(|p| json!({"file": p.file.display().to_string(), "offset": p.offset, "what": p.what}))
                .collect::<Vec<_>>()
        };
        format!(
            "{}\n",
            json!({
                "dir": dir.display().to_string(),
                "problems_before": problems(&pre),
                "caches_dropped": dropped,
                "changes": changes.iter().map(|c| json!({
                    "file": c.file,
                    "change": c.change,
                    "bytes_before": c.bytes_before,
                    "bytes_after": c.bytes_after,
                    "detail": c.detail,
                    "corrupt_file": c.corrupt_file,
                })).collect::<Vec<_>>(),
                "clean": post.is_clean(),
                "problems_after": problems(&post),
                "events": post.events,
                "archive_dir": archive.as_ref().map(|a| a.display().to_string()),
                "active_segment_in_archive": active_archived,
            })
        )
    } else {
        let mut s = text(dir, &pre, &dropped, &changes, &post);
        if let Some(seg) = active_archived {
            s.push_str(&format!(
                "note: the log ends in {seg}, in the archive directory: it is the active segment, and the store appends to it there until it is full (the next segment is created in the store directory)\n"
            ));
        }
        s
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if post.is_clean() {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}

fn text(
    dir: &Path,
    pre: &evlog::VerifyReport,
    dropped: &[String],
    changes: &[Change],
    post: &evlog::VerifyReport,
) -> String {
    let mut s = format!("repair {}\n", dir.display());
    s.push_str(&format!("before: {} problem(s)\n", pre.problems.len()));
    for p in &pre.problems {
        s.push_str(&format!("  problem: {p}\n"));
    }
    for n in &pre.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    if !dropped.is_empty() {
        s.push_str(&format!(
            "dropped cache(s) so that open re-reads the damaged data: {}\n",
            dropped.join(", ")
        ));
    }
    if changes.is_empty() {
        s.push_str("changes: none (the store opened as it was)\n");
    } else {
        s.push_str("changes:\n");
        for c in changes {
            let sizes = match (c.bytes_before, c.bytes_after) {
                (Some(b), Some(a)) if a != b => format!(" ({b} -> {a} bytes)"),
                (Some(b), Some(_)) => format!(" ({b} bytes)"),
                (Some(b), None) => format!(" (was {b} bytes)"),
                (None, Some(a)) => format!(" ({a} bytes)"),
                (None, None) => String::new(),
            };
            let detail = if c.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", c.detail)
            };
            s.push_str(&format!("  {} {}{sizes}{detail}\n", c.change, c.file));
        }
    }
    if post.is_clean() {
        s.push_str(&format!(
            "after: clean ({} event(s) in {} segment(s))\n",
            post.events, post.segments
        ));
    } else {
        s.push_str(&format!(
            "after: {} problem(s) remain\n",
            post.problems.len()
        ));
        for p in &post.problems {
            s.push_str(&format!("  problem: {p}\n"));
        }
    }
    s
}
