//! `evlog export DIR > events.jsonl`: every event as a JSON line (`evlog::export`), from a
//! read-only open, so it works while a writer runs (it sees the events stored when it started).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use evlog::Store;

use crate::progress::{Unit, bar};
use crate::{Failure, Outcome, require_dir};

/// Arguments of `evlog export`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory.
    pub dir: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    require_dir(&a.dir)?;
    let store = Store::open_read_only(&a.dir)?;
    let total = match &a.stream {
        Some(s) => store.stream_version(s).map_or(0, |v| v + 1),
        None => store.head_position().map_or(0, |p| p + 1),
    };
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| Failure::usage(format!("create {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let pb = bar(Some(total), "exporting", Unit::Items);
    let r = evlog::export::export_events(
        &store,
        a.stream.as_deref(),
        BufWriter::with_capacity(1 << 20, out),
        &mut |n| pb.set_position(n),
    );
    pb.finish_and_clear();
    let rep = r?;
    if std::io::stderr().is_terminal() {
        eprintln!("exported {} event(s), {} byte(s)", rep.events, rep.bytes);
    }
    Ok(Outcome::Ok)
}
