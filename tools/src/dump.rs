//! `evlog dump DIR` (and `evlog replay DIR`, the same): print events, filtered by stream, type,
//! position range and time range (read-only open; `Store::read_all` with a `ReadFilter`, or
//! `Store::read_stream`).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use evlog::{Direction, ReadFilter, RecordedEvent, Store};

use crate::text::rfc3339_us;
use crate::{Failure, Outcome, require_dir};

/// Output formats of `evlog dump`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per event: position, stream, version, type, time, id, size and a payload preview.
    Table,
    /// One JSON object per line, the format of `evlog export`.
    Jsonl,
}

/// Arguments of `evlog dump`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory.
    pub dir: PathBuf,
    /// Only this stream (read in version order).
    #[arg(long, conflicts_with = "stream_prefix")]
    pub stream: Option<String>,
    /// Only streams whose id starts with this.
    #[arg(long)]
    pub stream_prefix: Option<String>,
    /// Only events of this type (repeat for several types).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only events at this global position or later.
    #[arg(long, value_name = "POS")]
    pub from: Option<u64>,
    /// Only events at this global position or earlier.
    #[arg(long, value_name = "POS")]
    pub to: Option<u64>,
    /// Only events appended at this time or later (microseconds since the Unix epoch).
    #[arg(long, value_name = "US")]
    pub since_us: Option<u64>,
    /// Only events appended at this time or earlier (microseconds since the Unix epoch).
    #[arg(long, value_name = "US")]
    pub until_us: Option<u64>,
    /// Print at most this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Characters of payload shown in the table.
const PREVIEW_CHARS: usize = 60;

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    require_dir(&a.dir)?;
    if let (Some(f), Some(t)) = (a.since_us, a.until_us)
        && f > t
    {
        return Err(Failure::usage(format!(
            "--since-us {f} is after --until-us {t}: no event can match"
        )));
    }
    if let (Some(f), Some(t)) = (a.from, a.to)
        && f > t
    {
        return Err(Failure::usage(format!(
            "--from {f} is after --to {t}: no event can match"
        )));
    }
    let store = Store::open_read_only(&a.dir)?;
    let from = a.from.unwrap_or(0);
    let to = a.to.unwrap_or(u64::MAX);
    let mut filter = ReadFilter::all();
    if !a.types.is_empty() {
        filter = filter.event_types(a.types.iter().cloned());
    }
    if let Some(p) = &a.stream_prefix {
        filter = filter.stream_prefix(p.clone());
    }
    let events: Box<dyn Iterator<Item = evlog::Result<RecordedEvent>>> = match &a.stream {
        Some(s) => Box::new(store.read_stream(s, 0, Direction::Forward, usize::MAX)),
        None => Box::new(store.read_all(from, Direction::Forward, filter.clone())),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.format == Format::Table {
        writeln!(
            out,
            "{:>10}  {:<24}  {:>7}  {:<28}  {:<27}  {:<36}  {:>8}  data",
            "position", "stream", "version", "type", "time", "id", "bytes"
        )?;
    }
    let mut shown = 0u64;
    for e in events {
        if a.limit.is_some_and(|l| shown >= l) {
            break;
        }
        let e = e?;
        if e.position > to {
            if a.stream.is_none() {
                break; // read_all goes in position order
            }
            continue;
        }
        if e.position < from
            || !filter.matches(&e.stream, &e.event_type)
            || a.since_us.is_some_and(|t| e.timestamp_us < t)
            || a.until_us.is_some_and(|t| e.timestamp_us > t)
        {
            continue;
        }
        match a.format {
            Format::Jsonl => {
                out.write_all(evlog::export::event_to_json_line(&e).as_bytes())?;
                out.write_all(b"\n")?;
            }
            Format::Table => writeln!(
                out,
                "{:>10}  {:<24}  {:>7}  {:<28}  {:<27}  {:<36}  {:>8}  {}",
                e.position,
                e.stream,
                e.version,
                e.event_type,
                rfc3339_us(e.timestamp_us),
                e.id,
                e.payload.len(),
                preview(&e.payload)
            )?,
        }
        shown += 1;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

/// The start of a payload on one line: text with control characters escaped, or a note for
/// binary payloads.
fn preview(payload: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(payload) else {
        return format!("<{} bytes of binary>", payload.len());
    };
    let mut s = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == PREVIEW_CHARS {
            s.push('…');
            break;
        }
        if c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn previews_are_one_line() {
        assert_eq!(preview(b"{\"a\":\n1}"), "{\"a\":\\n1}");
        assert_eq!(preview(b"\xff\x00"), "<2 bytes of binary>");
        assert_eq!(preview(&[b'x'; 100]).chars().count(), 61);
    }
}
