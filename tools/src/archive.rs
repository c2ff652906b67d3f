//! `evlog archive DIR --older-than DURATION [--to ARCHIVE_DIR]`: move the oldest sealed
//! segments (`.seg` or `.zseg`, with their `.idx`) to an archive directory, through
//! `Store::archive_sealed`. Archived segments stay part of the store: the store directory's
//! `archive.path` marker names the archive, and every open, read, verify and tool command lists
//! the archive's segments with the store's own. The active segment is never archived.
//!
//! `--to` is required the first time (when the store has no marker yet); a relative path is
//! relative to the store directory, as in the marker. Later runs find the archive through the
//! marker. A `--to` naming another directory than the marker's updates the marker (the archive
//! was moved): it is refused while the marker's directory still holds segment files, or when the
//! new directory does not exist, so that the store never names a directory without its archive.
//! The store directory itself, and (the first time) a directory that already holds segment
//! files, are refused as archives.
//!
//! The store is opened for writing, so a running writer makes it refuse (exit 3) without
//! changing anything. Each segment is moved crash-safely: an interrupted run leaves a valid
//! store, and running it again moves what is left.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evlog::StoreOptions;
use evlog::wire::archive::{ARCHIVE_FILE_NAME, decode_archive_marker};
use serde_json::json;

use crate::{Failure, Outcome, require_store};

/// Arguments of `evlog archive`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory. No writer may have it open.
    pub dir: PathBuf,
    /// Move the sealed segments sealed longer ago than this: a whole number and a unit, s, m,
    /// h, d or w (`30d`, `12h`, `90m`; `0s` moves every sealed segment).
    #[arg(long, value_name = "DURATION", value_parser = crate::text::parse_duration)]
    pub older_than: Duration,
    /// The archive directory, created if needed (a relative path is relative to the store
    /// directory, not to the current one). Required the first time; later the store's
    /// `archive.path` marker names it.
    #[arg(long, value_name = "ARCHIVE_DIR")]
    pub to: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The archive directory the store's `archive.path` marker names (a relative path joined to the
/// store directory, as the library reads it); `None` when the store has no marker. A damaged
/// marker is corruption (exit 1), as when the store opens.
fn marked_archive(dir: &Path) -> Result<Option<PathBuf>, Failure> {
    let path = dir.join(ARCHIVE_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::usage(format!("read {}: {e}", path.display()))),
    };
    match decode_archive_marker(&bytes) {
        Ok(p) => Ok(Some(dir.join(p))),
        Err(e) => Err(evlog::Error::Corrupted {
            file: path,
            offset: e.at as u64,
            what: e.what,
            expected: e.expected,
            found: e.found,
        }
        .into()),
    }
}

/// True when `a` and `b` are the same directory (compared as given when one of them does not
/// exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Segment files (`.seg`, `.zseg`) in `dir`; 0 when it cannot be read.
fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |names| {
        names
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_str().is_some_and(|n| {
                    evlog::wire::segment::parse_segment_file_name(n).is_some()
                        || evlog::wire::zseg::parse_zseg_file_name(n).is_some()
                })
            })
            .count()
    })
}

/// Checks `--to` against the store and its marker before anything is opened: the archive
/// directory must be known; it must not be the store directory (the store would list every
/// segment twice) nor, the first time, hold segment files already (another store's archive:
/// files of the same names would be overwritten); and it may replace the marker's only when the
/// archive's files were moved there.
fn check_target(dir: &Path, to: Option<&Path>) -> Result<(), Failure> {
    let marked = marked_archive(dir)?;
    let Some(to) = to else {
        if marked.is_none() {
            return Err(Failure::usage(format!(
                "{}: no archive directory: the store has no {ARCHIVE_FILE_NAME} marker yet, give one with --to ARCHIVE_DIR (nothing was changed)",
                dir.display()
            )));
        }
        return Ok(());
    };
    let target = dir.join(to);
    if same_dir(&target, dir) {
        return Err(Failure::usage(format!(
            "--to {}: that is the store directory itself; the archive must be another directory (nothing was changed)",
            to.display()
        )));
    }
    if marked.is_none() {
        let there = segment_files(&target);
        if there > 0 {
            return Err(Failure::usage(format!(
                "--to {}: {} already holds {there} segment file(s), and this store has archived nothing there (it has no {ARCHIVE_FILE_NAME} marker): another store's archive? Give each store its own archive directory (nothing was changed)",
                to.display(),
                target.display()
            )));
        }
    }
    if let Some(old) = marked
        && !same_dir(&old, &target)
    {
        let left = segment_files(&old);
        if left > 0 {
            return Err(Failure::usage(format!(
                "--to {}: the store's archive is {} (named by {}) and it holds {left} segment file(s): to move the archive, move its files to {} first; to archive into it, leave out --to (nothing was changed)",
                to.display(),
                old.display(),
                dir.join(ARCHIVE_FILE_NAME).display(),
                target.display()
            )));
        }
        if !target.is_dir() {
            return Err(Failure::usage(format!(
                "--to {}: {} does not exist; the store's archive is {} (named by {}): to move the archive, move its files to {} first (nothing was changed)",
                to.display(),
                target.display(),
                old.display(),
                dir.join(ARCHIVE_FILE_NAME).display(),
                target.display()
            )));
        }
    }
    Ok(())
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let dir = &a.dir;
    require_store(dir)?;
    check_target(dir, a.to.as_deref())?;
    let opts = match &a.to {
        Some(to) => StoreOptions::new().archive_dir(to),
        None => StoreOptions::new(),
    };
    let (rep, (sealed, _)) = crate::with_writer(dir, opts, "archive", "archiving", |s| {
        Ok((s.archive_sealed(a.older_than)?, s.sealed_segments()))
    })?;

    let archive = rep.archive_dir.display().to_string();
    let out = if a.json {
        format!(
            "{}\n",
            json!({
                "dir": dir.display().to_string(),
                "archive_dir": archive,
                "older_than_secs": a.older_than.as_secs(),
                "segments_moved": rep.segments_moved,
                "bytes_moved": rep.bytes_moved,
                "segments_archived": rep.segments_archived,
                "sealed_segments": sealed,
            })
        )
    } else {
        let mut s = format!("archive {}\n", dir.display());
        if rep.segments_moved == 0 {
            s.push_str(&format!(
                "moved 0 segment(s): no sealed segment left in the store directory was sealed more than {} ago\n",
                crate::text::duration_arg(a.older_than)
            ));
        } else {
            s.push_str(&format!(
                "moved {} segment(s), {} bytes (segment and index files)\n",
                rep.segments_moved, rep.bytes_moved
            ));
        }
        s.push_str(&format!(
            "archived segments: {} of {sealed} sealed (the active segment is never archived)\n",
            rep.segments_archived
        ));
        s.push_str(&format!("archive directory: {archive}\n"));
        s
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Ok)
}
