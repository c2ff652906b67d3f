//! `evlog`: the command-line tool for evlog stores.
//!
//! Subcommands: `verify` (read every byte and check every checksum) and `stats` (what the store
//! holds). Exit codes are listed in `evlog --help`.

mod stats;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (verify: the store is clean)
  1  verify: problems found; stats: the store is corrupted and does not open
  2  usage error, or an I/O error (missing directory, unreadable file)";

/// Inspect and check evlog stores.
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
}

/// How a subcommand ended, mapped to the documented exit codes.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the store has problems.
    Problems,
}

/// An error that ends the tool: one line on stderr and an exit code.
pub struct Failure {
    /// 1 (store corrupted) or 2 (usage or I/O).
    pub code: u8,
    /// The line printed after `evlog: `.
    pub message: String,
}

impl From<evlog::Error> for Failure {
    fn from(e: evlog::Error) -> Self {
        let code = match e {
            evlog::Error::Corrupted { .. } => 1,
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
        Failure {
            code: 2,
            message: format!("write output: {e}"),
        }
    }
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2 (0 for --help and --version).
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Verify(a) => verify::run(&a),
        Command::Stats(a) => stats::run(&a),
    };
    match r {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
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
