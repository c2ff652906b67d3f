//! `evlog import DIR events.jsonl`: append the events of JSON lines (`evlog::export`).

use std::io::{BufReader, Write};
use std::path::PathBuf;

use evlog::export::{ImportOptions, ORIGINAL_TIMESTAMP_KEY};
use evlog::{Durability, StoreOptions};

use crate::progress::{Unit, bar};
use crate::{Failure, Outcome};

/// Arguments of `evlog import`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory (created if missing).
    pub dir: PathBuf,
    /// The JSON lines file to read (`-`: standard input).
    pub file: PathBuf,
    /// Also copy each line's `timestamp_us` into the event's metadata, under the key
    /// `original_timestamp_us` (the event itself always keeps the line's timestamp).
    #[arg(long)]
    pub keep_timestamps: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `evlog import --help`: what import keeps, and the exit codes.
pub const LONG_HELP: &str = concat!(
    "\
Each line is appended with the expected version `version - 1` (no stream for version 0),
its event id and its metadata; the payload bytes are reproduced exactly. Lines whose stream
already holds that version with the same id and content are skipped, so importing a file twice
writes nothing new. A rejected line (bad JSON, a missing field, a version that does not follow the
stream's last one) is reported with its line number on stderr and nothing of it is written;
the import goes on with the next line and exits 1.

Each event keeps the line's `timestamp_us` (a line without one gets the import time). With
--keep-timestamps the timestamp is also copied into the metadata under `original_timestamp_us`. Appends are made durable when the import ends (one fsync, not one per
line); an interrupted import can simply be run again.

",
    exit_codes!()
);

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let stdin = a.file.as_os_str() == "-";
    let (input, len): (Box<dyn std::io::Read>, Option<u64>) = if stdin {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = std::fs::File::open(&a.file)
            .map_err(|e| Failure::usage(format!("{}: {e}", a.file.display())))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(&a.dir)?;
    let opts = ImportOptions {
        keep_timestamps: a.keep_timestamps,
    };
    let pb = bar(len, "importing", Unit::Bytes);
    let r = evlog::export::import_events(
        &store,
        BufReader::with_capacity(1 << 20, input),
        &opts,
        &mut |n| pb.set_position(n),
    );
    pb.finish_and_clear();
    let rep = r?;
    store.close()?;
    let name = if stdin {
        "<stdin>".to_string()
    } else {
        a.file.display().to_string()
    };
    {
        let stderr = std::io::stderr();
        let mut err = stderr.lock();
        for r in &rep.rejections {
            writeln!(
                err,
                "evlog: {name}:{}: {}",
                r.line,
                r.reason.replace('\n', " ")
            )?;
        }
        let unlisted = rep.rejected - rep.rejections.len() as u64;
        if unlisted > 0 {
            writeln!(err, "evlog: {unlisted} more rejected line(s) not listed")?;
        }
    }
    let out = if a.json {
        format!(
            "{}\n",
            serde_json::json!({
                "dir": a.dir.display().to_string(),
                "file": name,
                "lines": rep.lines,
                "appended": rep.appended,
                "skipped": rep.skipped,
                "rejected": rep.rejected,
                "rejections": rep.rejections.iter().map(|r| serde_json::json!({"line": r.line, "reason": r.reason})).collect::<Vec<_>>(),
                "timestamps": if a.keep_timestamps { format!("kept, and copied into metadata {ORIGINAL_TIMESTAMP_KEY}") } else { "kept".to_string() },
            })
        )
    } else {
        format!(
            "imported {name} into {}: {} line(s), {} appended, {} skipped (already stored), {} rejected\n",
            a.dir.display(),
            rep.lines,
            rep.appended,
            rep.skipped,
            rep.rejected
        )
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if rep.rejected > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}
