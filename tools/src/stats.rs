//! `evlog stats DIR`: what the store holds (`evlog::stats::stats_dir`), archived segments
//! included.

use std::io::Write;
use std::path::PathBuf;

use evlog::stats::StoreStats;

use crate::text::rfc3339_us;
use crate::{Failure, Outcome, json_opt, json_str};

/// Arguments of `evlog stats`.
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
    let s = evlog::stats::stats_dir(&a.dir)?;
    let out = if a.json { json(a, &s) } else { text(a, &s) };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Ok)
}

fn text(a: &Args, s: &StoreStats) -> String {
    let ts = |t: Option<u64>| match t {
        Some(t) => format!("{} ({t} us)", rfc3339_us(t)),
        None => "-".to_string(),
    };
    let mut out = String::new();
    out.push_str(&format!("store:          {}\n", a.dir.display()));
    out.push_str(&format!("events:         {}\n", s.events));
    out.push_str(&format!("streams:        {}\n", s.streams));
    out.push_str(&format!(
        "segments:       {} ({} sealed, {} active), {} compressed\n",
        s.segments(),
        s.segments_sealed,
        s.segments_active,
        s.compressed_segments
    ));
    out.push_str(&format!(
        "bytes on disk:  {} ({} in segments, {} in indexes)\n",
        s.bytes_on_disk, s.segment_bytes, s.index_bytes
    ));
    match &s.archive_dir {
        Some(d) => out.push_str(&format!(
            "archive:        {}: {} archived segment(s) of the {} sealed, {} bytes (segment and index files; counted above)\n",
            d.display(),
            s.archived_segments,
            s.segments_sealed,
            s.archive_bytes
        )),
        None => out.push_str("archive:        none (no segment was archived)\n"),
    }
    if s.compressed_segments == 0 {
        out.push_str(&format!(
            "segment images: {} (no segment is compressed)\n",
            s.image_bytes
        ));
    } else {
        out.push_str(&format!(
            "segment images: {} uncompressed; compressed segments save {}\n",
            s.image_bytes,
            s.compression_savings()
        ));
    }
    out.push_str(&format!(
        "compression:    {}; raw event bytes {} / segment bytes = {:.3}\n",
        if s.compressed_segments == 0 {
            "none"
        } else {
            "zstd (compressed sealed segments)"
        },
        s.raw_event_bytes,
        s.compression_ratio()
    ));
    out.push_str(&format!("oldest event:   {}\n", ts(s.oldest_timestamp_us)));
    out.push_str(&format!("newest event:   {}\n", ts(s.newest_timestamp_us)));
    out.push_str(&format!(
        "head position:  {}\n",
        s.head_position
            .map_or("- (empty store)".to_string(), |p| p.to_string())
    ));
    out.push_str(&format!("event types:    {}\n", s.event_types.len()));
    let width = s.event_types.keys().map(|k| k.len()).max().unwrap_or(0);
    for (t, n) in &s.event_types {
        out.push_str(&format!("  {t:<width$}  {n}\n"));
    }
    out
}

fn json(a: &Args, s: &StoreStats) -> String {
    let types: Vec<String> = s
        .event_types
        .iter()
        .map(|(t, n)| format!("{}: {n}", json_str(t)))
        .collect();
    format!(
        "{{\"dir\": {}, \"events\": {}, \"streams\": {}, \"segments\": {{\"sealed\": {}, \"active\": {}}}, \"compressed_segments\": {}, \"bytes_on_disk\": {}, \"segment_bytes\": {}, \"image_bytes\": {}, \"index_bytes\": {}, \"archive_dir\": {}, \"archived_segments\": {}, \"archive_bytes\": {}, \"raw_event_bytes\": {}, \"compression_ratio\": {:.4}, \"event_types\": {{{}}}, \"oldest_timestamp_us\": {}, \"newest_timestamp_us\": {}, \"head_position\": {}}}\n",
        json_str(&a.dir.display().to_string()),
        s.events,
        s.streams,
        s.segments_sealed,
        s.segments_active,
        s.compressed_segments,
        s.bytes_on_disk,
        s.segment_bytes,
        s.image_bytes,
        s.index_bytes,
        s.archive_dir.as_ref().map_or_else(
            || "null".to_string(),
            |d| json_str(&d.display().to_string())
        ),
        s.archived_segments,
        s.archive_bytes,
        s.raw_event_bytes,
        s.compression_ratio(),
        types.join(", "),
        json_opt(s.oldest_timestamp_us),
        json_opt(s.newest_timestamp_us),
        json_opt(s.head_position)
    )
}
