//! `evlog`: the command-line tool for evlog stores.
//!
//! One subcommand per file; the logic lives in the library (`evlog::verify_dir`,
//! `evlog::stats`, `evlog::inspect`, `evlog::export`, `Store::compress_sealed`,
//! `Store::compact`, `Store::archive_sealed`), except the benchmark driver.
//! Exit codes are listed in `evlog --help`.

/// The exit codes, as a literal so that `concat!` can add it to longer help texts.
macro_rules! exit_codes {
    () => {
        "\
Exit codes:
  0  success (verify: the store is clean)
  1  problems found: verify or inspect found damage, import rejected lines, repair left
     problems, or the store is corrupted and does not open
  2  usage error, or an I/O error (missing directory, unreadable file)
  3  the store is locked by a running writer (repair, compress, import, compact, archive):
     nothing was changed"
    };
}

mod archive;
mod bench;
mod compact;
mod compress;
mod dump;
mod export;
mod import;
mod inspect;
mod progress;
mod repair;
mod serve;
mod stats;
mod text;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = exit_codes!();

/// Inspect, check, repair, compress, compact, archive, export, import and serve evlog stores.
#[derive(Parser)]
#[command(name = "evlog", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read every byte of a store, check every checksum, and list every problem.
    #[command(after_help = EXIT_CODES)]
    Verify(verify::Args),
    /// Count events, streams, segments and bytes of a store (opens it read-only).
    #[command(after_help = EXIT_CODES)]
    Stats(stats::Args),
    /// Show what a store's files hold (a directory), or every frame of one segment file.
    #[command(after_help = EXIT_CODES)]
    Inspect(inspect::Args),
    /// Print events, filtered by stream, type and position (opens the store read-only).
    #[command(after_help = EXIT_CODES)]
    Dump(dump::Args),
    /// Replay events of a range (positions, times, a stream, types) and print them as dump does.
    #[command(after_help = EXIT_CODES)]
    Replay(dump::Args),
    /// Open a store with repair: cut a torn tail or damage, rebuild indexes, and say what changed.
    #[command(after_help = EXIT_CODES)]
    Repair(repair::Args),
    /// Compress every sealed segment not compressed yet (`.seg` -> `.zseg`) and say how much it saved.
    #[command(after_help = EXIT_CODES)]
    Compress(compress::Args),
    /// Rewrite sealed segments without the events retention rules and deletions hide, and say how much it saved.
    #[command(after_help = EXIT_CODES)]
    Compact(compact::Args),
    /// Move the oldest sealed segments to an archive directory, where they stay readable, and say how many.
    #[command(after_help = EXIT_CODES)]
    Archive(archive::Args),
    /// Write events as JSON lines (opens the store read-only).
    #[command(after_help = EXIT_CODES)]
    Export(export::Args),
    /// Append the events of a JSON lines file (as written by export) to a store.
    #[command(after_help = EXIT_CODES, after_long_help = import::LONG_HELP)]
    Import(import::Args),
    /// Run the standard workload: append, stream-read and replay throughput and latency.
    #[command(after_help = EXIT_CODES)]
    Bench(bench::Args),
    /// Serve the HTTP API over a store: health, metrics, dead letters, reads, the event stream.
    #[command(after_help = EXIT_CODES)]
    Serve(serve::Args),
}

/// How a subcommand ended, mapped to the documented exit codes.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the store has problems, or lines were rejected.
    Problems,
}

/// An error that ends the tool: one line on stderr and an exit code.
pub struct Failure {
    /// 1 (store corrupted), 2 (usage or I/O) or 3 (locked); 0 ends quietly (closed pipe).
    pub code: u8,
    /// The line printed after `evlog: `.
    pub message: String,
}

impl Failure {
    /// A usage or I/O failure (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    fn closed_pipe() -> Self {
        Failure {
            code: 0,
            message: String::new(),
        }
    }
}

impl From<evlog::Error> for Failure {
    fn from(e: evlog::Error) -> Self {
        let code = match &e {
            evlog::Error::Corrupted { .. } => 1,
            evlog::Error::Locked { .. } => 3,
            evlog::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => {
                return Failure::closed_pipe();
            }
            _ => 2,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `evlog dump DIR | head`: the reader has what it wanted.
            return Failure::closed_pipe();
        }
        Failure::usage(format!("write output: {e}"))
    }
}

/// The refusal of a command that needs the store to itself while a writer holds its lock
/// (exit 3).
pub fn locked(dir: &Path, command: &str) -> Failure {
    Failure {
        code: 3,
        message: format!(
            "store {} is locked by a running writer: stop it first, {command} needs the store to itself (nothing was changed)",
            dir.display()
        ),
    }
}

/// Opens the existing store in `dir` for writing with `opts` (refused with exit 3 while a
/// writer holds it, exit 2 when `dir` is no store), runs `work` on it behind a spinner saying
/// `doing`, and closes it. For the commands that rewrite a store: compress, compact, archive.
pub fn with_writer<T>(
    dir: &Path,
    opts: evlog::StoreOptions,
    command: &str,
    doing: &str,
    work: impl FnOnce(&evlog::Store) -> evlog::Result<T>,
) -> Result<T, Failure> {
    require_store(dir)?;
    let store = match opts.open(dir) {
        Ok(s) => s,
        Err(evlog::Error::Locked { .. }) => return Err(locked(dir, command)),
        Err(e) => return Err(e.into()),
    };
    let pb = progress::spinner(&format!("{doing} {}", dir.display()));
    let r = work(&store);
    pb.finish_and_clear();
    let r = r?;
    store.close()?;
    Ok(r)
}

/// Fails with exit 2 unless `dir` is a directory.
pub fn require_dir(dir: &Path) -> Result<(), Failure> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{}: not a directory (no store there)",
            dir.display()
        )))
    }
}

/// Fails with exit 2 unless `dir` is a store directory: a directory with segment files, or with
/// an archive marker (`archive.path`: its segments may all be in the archive). Used by the
/// commands that open a store for writing, which would otherwise create one.
pub fn require_store(dir: &Path) -> Result<(), Failure> {
    require_dir(dir)?;
    let names = std::fs::read_dir(dir)
        .map_err(|e| Failure::usage(format!("read directory {}: {e}", dir.display())))?;
    let is_store = names.filter_map(|e| e.ok()).any(|e| {
        e.file_name().to_str().is_some_and(|n| {
            evlog::wire::segment::parse_segment_file_name(n).is_some()
                || evlog::wire::zseg::parse_zseg_file_name(n).is_some()
                || n == evlog::wire::archive::ARCHIVE_FILE_NAME
        })
    });
    if !is_store {
        return Err(Failure::usage(format!(
            "{}: no segment files: not an evlog store (nothing was changed)",
            dir.display()
        )));
    }
    Ok(())
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2 (0 for --help and --version).
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Verify(a) => verify::run(&a),
        Command::Stats(a) => stats::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Dump(a) | Command::Replay(a) => dump::run(&a),
        Command::Repair(a) => repair::run(&a),
        Command::Compress(a) => compress::run(&a),
        Command::Compact(a) => compact::run(&a),
        Command::Archive(a) => archive::run(&a),
        Command::Export(a) => export::run(&a),
        Command::Import(a) => import::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Serve(a) => serve::run(&a),
    };
    match r {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(f) if f.code == 0 => ExitCode::SUCCESS,
        Err(f) => {
            // Keep it to one line, whatever the error's text holds.
            eprintln!("evlog: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// A JSON string literal for `s` (quotes included).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number or `null`.
pub fn json_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n\u{1}ü"), "\"a\\\"b\\\\c\\n\\u0001ü\"");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
