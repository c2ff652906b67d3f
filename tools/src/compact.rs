//! `evlog compact DIR`: rewrite the sealed segments without the events that retention rules and
//! deletions hide (`Store::set_retention`, `truncate_before`, `delete_stream`,
//! `tombstone_stream`), through `Store::compact`. Each dropped event leaves a placeholder, so
//! positions and versions stay as they were and reads return exactly what they returned before.
//! A segment keeps its form (`.seg` or `.zseg`); the active segment is not compacted.
//!
//! The store is opened for writing, so a running writer makes it refuse (exit 3) without
//! changing anything (the library's `Store::compact` runs while the application appends; the
//! tool needs the store to itself). Each segment is replaced crash-safely: an interrupted run
//! leaves a valid store, and running it again compacts what is left.

use std::io::Write;
use std::path::PathBuf;

use evlog::StoreOptions;
use serde_json::json;

use crate::{Failure, Outcome};

/// Arguments of `evlog compact`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory. No writer may have it open.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let dir = &a.dir;
    let rep = crate::with_writer(dir, StoreOptions::new(), "compact", "compacting", |s| {
        s.compact()
    })?;

    let out = if a.json {
        format!(
            "{}\n",
            json!({
                "dir": dir.display().to_string(),
                "segments_examined": rep.segments_examined,
                "segments_rewritten": rep.segments_rewritten,
                "events_dropped": rep.events_dropped,
                "bytes_before": rep.bytes_before,
                "bytes_after": rep.bytes_after,
                "bytes_reclaimed": rep.bytes_reclaimed(),
            })
        )
    } else {
        let mut s = format!("compact {}\n", dir.display());
        s.push_str(&format!(
            "segments: {} sealed examined, {} rewritten (the active segment is compacted once it is sealed)\n",
            rep.segments_examined, rep.segments_rewritten
        ));
        s.push_str(&format!(
            "events dropped: {} (hidden by retention rules and deletions; positions and versions are kept)\n",
            rep.events_dropped
        ));
        s.push_str(&format!(
            "bytes: {} -> {} in the rewritten segments, {} bytes reclaimed\n",
            rep.bytes_before,
            rep.bytes_after,
            rep.bytes_reclaimed()
        ));
        if rep.segments_rewritten == 0 {
            s.push_str("nothing to compact: no sealed segment holds a hidden event\n");
        }
        s
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Ok)
}
