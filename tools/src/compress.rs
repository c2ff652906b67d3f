//! `evlog compress DIR`: replace every sealed segment that is not compressed yet with its
//! compressed form (`NNN.zseg`, zstd blocks holding the same bytes), through
//! `Store::compress_sealed`. The active segment is never compressed.
//!
//! The store is opened for writing, so a running writer makes it refuse (exit 3) without
//! changing anything. Each segment is replaced crash-safely: an interrupted run leaves a valid
//! store, and running it again compresses what is left.

use std::io::Write;
use std::path::PathBuf;

use evlog::{CompressReport, StoreOptions};
use serde_json::json;

use crate::{Failure, Outcome};

/// Arguments of `evlog compress`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory. No writer may have it open.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Bytes before per byte after (`None` when nothing was compressed).
fn ratio(r: &CompressReport) -> Option<f64> {
    (r.bytes_after > 0).then(|| r.bytes_before as f64 / r.bytes_after as f64)
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let dir = &a.dir;
    let (rep, (sealed, compressed)) =
        crate::with_writer(dir, StoreOptions::new(), "compress", "compressing", |s| {
            Ok((s.compress_sealed()?, s.sealed_segments()))
        })?;

    let out = if a.json {
        format!(
            "{}\n",
            json!({
                "dir": dir.display().to_string(),
                "segments": rep.segments,
                "bytes_before": rep.bytes_before,
                "bytes_after": rep.bytes_after,
                "bytes_reclaimed": rep.bytes_reclaimed(),
                "ratio": ratio(&rep),
                "sealed_segments": sealed,
                "compressed_segments": compressed,
            })
        )
    } else {
        let mut s = format!("compress {}\n", dir.display());
        match ratio(&rep) {
            Some(r) => s.push_str(&format!(
                "compressed {} segment(s): {} -> {} bytes, {} bytes reclaimed (ratio {r:.2}: bytes before / bytes after)\n",
                rep.segments,
                rep.bytes_before,
                rep.bytes_after,
                rep.bytes_reclaimed()
            )),
            None => s.push_str("compressed 0 segment(s): nothing to compress\n"),
        }
        s.push_str(&format!(
            "sealed segments: {sealed}, {compressed} compressed (the active segment is never compressed)\n"
        ));
        s
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Ok)
}
