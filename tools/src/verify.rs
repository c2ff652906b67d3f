//! `evlog verify DIR`: every byte, every checksum (`evlog::verify_dir`).

use std::io::Write;
use std::path::PathBuf;

use evlog::VerifyReport;

use crate::{Failure, Outcome, json_str};

/// Arguments of `evlog verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    crate::require_dir(&a.dir)?;
    let pb = crate::progress::spinner(&format!("verifying {}", a.dir.display()));
    let rep = evlog::verify_dir(&a.dir);
    pb.finish_and_clear();
    let rep = rep?;
    let out = if a.json { json(a, &rep) } else { text(a, &rep) };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if rep.is_clean() {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}

fn text(a: &Args, rep: &VerifyReport) -> String {
    let mut s = String::new();
    let verdict = if rep.is_clean() {
        "clean".to_string()
    } else {
        format!("{} problem(s) found", rep.problems.len())
    };
    s.push_str(&format!("{}: {verdict}\n", a.dir.display()));
    s.push_str(&format!(
        "checked {} segment(s), {} frame(s), {} event(s), {} stream(s), {} byte(s) of segments\n",
        rep.segments, rep.frames, rep.events, rep.streams, rep.bytes
    ));
    if rep.compressed_segments > 0 {
        s.push_str(&format!(
            "{} of them compressed (.zseg): each block checked, then its decompressed image checked like a .seg file\n",
            rep.compressed_segments
        ));
    }
    if rep.segments == 0 {
        s.push_str("note: no segment files: an empty directory, or not an evlog store\n");
    }
    for p in &rep.problems {
        s.push_str(&format!(
            "problem: {} at byte {}: {}\n",
            p.file.display(),
            p.offset,
            p.what
        ));
    }
    for n in &rep.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    if !rep.is_clean() {
        s.push_str(
            "to cut the log at the first damage, run `evlog repair DIR` (it opens the store with \
             StoreOptions::repair(true)); the cut bytes are kept in .corrupt files\n",
        );
    }
    s
}

fn json(a: &Args, rep: &VerifyReport) -> String {
    let problems: Vec<String> = rep
        .problems
        .iter()
        .map(|p| {
            format!(
                "{{\"file\": {}, \"offset\": {}, \"what\": {}}}",
                json_str(&p.file.display().to_string()),
                p.offset,
                json_str(&p.what)
            )
        })
        .collect();
    let notes: Vec<String> = rep.notes.iter().map(|n| json_str(n)).collect();
    format!(
        "{{\"dir\": {}, \"clean\": {}, \"segments\": {}, \"frames\": {}, \"events\": {}, \"streams\": {}, \"bytes\": {}, \"compressed_segments\": {}, \"problems\": [{}], \"notes\": [{}]}}\n",
        json_str(&a.dir.display().to_string()),
        rep.is_clean(),
        rep.segments,
        rep.frames,
        rep.events,
        rep.streams,
        rep.bytes,
        rep.compressed_segments,
        problems.join(", "),
        notes.join(", ")
    )
}
