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

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use evlog::StoreOptions;
use evlog::store::LOCK_FILE_NAME;
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

fn snapshot(dir: &Path) -> Result<BTreeMap<String, FileState>, Failure> {
    let err = |e: std::io::Error| Failure::usage(format!("read directory {}: {e}", dir.display()));
    let mut m = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().map_err(err)?;
        if !meta.is_file() || name == LOCK_FILE_NAME {
            continue;
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
            let mut streams = c.streams.clone();
            streams.sort_unstable();
            (c.next_position, c.last_frame_header_crc, streams, c.index).hash(&mut h);
        }
        _ => b.hash(&mut h),
    }
    h.finish()
}

/// The first position of a segment file's name: a `.seg` or a compressed `.zseg` file.
fn segment_position(name: &str) -> Option<u64> {
    parse_segment_file_name(name).or_else(|| parse_zseg_file_name(name))
}

/// One change to the directory.
struct Change {
    file: String,
    change: &'static str,
    bytes_before: Option<u64>,
    bytes_after: Option<u64>,
    detail: String,
}

/// Where each segment file that went away was moved: a `.corrupt` file created by the repair,
/// named after it (`NAME.corrupt`, or `NAME.N.corrupt` when that name was taken), with its
/// length.
fn moved_segments<'a>(
    before: &'a BTreeMap<String, FileState>,
    after: &'a BTreeMap<String, FileState>,
) -> BTreeMap<&'a str, &'a str> {
    let mut moved = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for (name, b) in before {
        if after.contains_key(name) || segment_position(name).is_none() {
            continue;
        }
        let target = after.iter().find(|(n, a)| {
            !before.contains_key(*n)
                && !taken.contains(n.as_str())
                && a.len == b.len
                && n.strip_prefix(name.as_str())
                    .and_then(|rest| rest.strip_suffix(".corrupt"))
                    .is_some_and(|mid| {
                        mid.is_empty()
                            || mid.strip_prefix('.').is_some_and(|k| {
                                !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit())
                            })
                    })
        });
        if let Some((n, _)) = target {
            taken.insert(n.as_str());
            moved.insert(name.as_str(), n.as_str());
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
    let created_corrupt = |name: &str| after.contains_key(name) && !before.contains_key(name);
    let moved = moved_segments(before, after);
    let move_targets: BTreeSet<&str> = moved.values().copied().collect();
    for name in names {
        let (b, a) = (before.get(name), after.get(name));
        let is_seg = segment_position(name).is_some();
        let is_zseg = parse_zseg_file_name(name).is_some();
        let mut push = |change, detail: String| {
            out.push(Change {
                file: name.clone(),
                change,
                bytes_before: b.map(|s| s.len),
                bytes_after: a.map(|s| s.len),
                detail,
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
                        format!("the whole segment ({} bytes) moved to {to}: {why}", b.len),
                    );
                } else if is_zseg
                    && segment_position(name)
                        .is_some_and(|p| after.contains_key(&segment_file_name(p)))
                {
                    push(
                        "removed",
                        "a compressed copy left by an interrupted compression (the .seg file of the same segment is kept)".into(),
                    );
                } else if name == CHECKPOINT_FILE_NAME {
                    push("removed", "the checkpoint (a cache; rebuilt)".into());
                } else if name.ends_with(".idx") {
                    push(
                        "removed",
                        "an index (a cache; rebuilt from its segment)".into(),
                    );
                } else if name.ends_with(".tmp") {
                    push("removed", "an unfinished write".into());
                } else {
                    push("removed", String::new());
                }
            }
            (None, Some(a)) => {
                if name.ends_with(".corrupt") {
                    if !move_targets.contains(name.as_str()) {
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
                if is_seg && a.len < b.len {
                    let cut = b.len - a.len;
                    let kept = format!("{name}.{}.corrupt", a.len);
                    let detail = if created_corrupt(&kept) {
                        format!(
                            "cut {cut} byte(s) at byte {}; they are kept in {kept}",
                            a.len
                        )
                    } else {
                        format!(
                            "cut a torn tail of {cut} byte(s) at byte {} (an incomplete write, never acknowledged)",
                            a.len
                        )
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

/// Deletes a cache file (an index or the checkpoint) while the lock is held.
fn drop_cache(dir: &Path, name: &str, dropped: &mut Vec<String>) -> Result<(), Failure> {
    let p = dir.join(name);
    if dropped.iter().any(|d| d == name) || !p.exists() {
        return Ok(());
    }
    fs::remove_file(&p).map_err(|e| Failure::usage(format!("remove {}: {e}", p.display())))?;
    dropped.push(name.to_string());
    Ok(())
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let dir = &a.dir;
    require_dir(dir)?;
    let before = snapshot(dir)?;
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
        if let Some(pos) = segment_position(name) {
            damaged.insert(name.to_string());
            drop_cache(dir, &index_file_name(pos), &mut dropped)?;
            drop_cache(dir, CHECKPOINT_FILE_NAME, &mut dropped)?;
        } else if name.ends_with(".idx") {
            drop_cache(dir, name, &mut dropped)?;
        }
    }
    if !dropped.is_empty() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Failure::usage(format!("fsync {}: {e}", dir.display())))?;
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
    let after = snapshot(dir)?;
    let changes = diff(&before, &after, &damaged);
    let post = evlog::verify_dir(dir)?;

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
                })).collect::<Vec<_>>(),
                "clean": post.is_clean(),
                "problems_after": problems(&post),
                "events": post.events,
            })
        )
    } else {
        text(dir, &pre, &dropped, &changes, &post)
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
