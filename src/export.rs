//! Export and import of events as JSON lines (`evlog export`, `evlog import`).
//!
//! One event per line, fields in this order:
//!
//! ```text
//! {"stream":"order-1","type":"OrderPlaced","version":0,"position":0,
//!  "id":"0d5f…","timestamp_us":1767225600000000,
//!  "metadata":{"correlation_id":null,"causation_id":null,"extra":{"user":"ada"}},
//!  "data":{"total":12}}
//! ```
//!
//! (shown on several lines here; a real line has no line break). The payload goes in `data`,
//! verbatim, when it is JSON text that a line can carry byte for byte (valid UTF-8 JSON, no line
//! break, no leading or trailing whitespace); otherwise it goes in `data_base64` (standard
//! alphabet, padded). Opaque metadata bytes ([`crate::Metadata::bytes`]), when an event has
//! them, go in `metadata.bytes_base64`. So whitespace and key order of JSON payloads are kept, and
//! [`import_events`] reproduces every payload byte for byte.
//!
//! Import appends each line with `ExpectedVersion::Exact(version - 1)` (`NoStream` for version
//! 0), the line's event id and metadata, up to 100 consecutive lines in one
//! [`Store::append_multi`] (one frame, one fsync; the lines keep their order and their own
//! timestamps; if the store refuses the batch, its lines are appended one by one so that only
//! the refused lines are rejected). It is idempotent: a line whose stream already holds
//! that version with the same id and content is skipped. A line that cannot be appended is
//! rejected with its line number and nothing of it is written; import goes on with the next.
//!
//! An imported event keeps the line's `timestamp_us` ([`Store::append_at`]); a line without one
//! gets the import time. With [`ImportOptions::keep_timestamps`] the line's timestamp is
//! kept in the metadata under [`ORIGINAL_TIMESTAMP_KEY`]. `position` is informational: positions
//! are assigned by the store (importing a whole-store export into an empty store reproduces them).
//!
//! ```
//! use evlog::{EventData, ExpectedVersion, Store};
//! use evlog::export::{ImportOptions, export_events, import_events};
//! let a = tempfile::tempdir()?;
//! let store = Store::open(a.path())?;
//! store.append("order-1", ExpectedVersion::NoStream,
//!              &[EventData::new("OrderPlaced", br#"{ "total": 12 }"#.to_vec())])?;
//! let mut lines = Vec::new();
//! export_events(&store, None, &mut lines, &mut |_| {})?;
//!
//! let b = tempfile::tempdir()?;
//! let copy = Store::open(b.path())?;
//! let report = import_events(&copy, &lines[..], &ImportOptions::default(), &mut |_| {})?;
//! assert_eq!(report.appended, 1);
//! // A second import writes nothing.
//! let again = import_events(&copy, &lines[..], &ImportOptions::default(), &mut |_| {})?;
//! assert_eq!((again.appended, again.skipped), (0, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{Direction, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent};
use crate::store::Store;
use crate::wire::limits::MAX_EVENT_BYTES;

/// Metadata key under which [`ImportOptions::keep_timestamps`] keeps a line's `timestamp_us`.
pub const ORIGINAL_TIMESTAMP_KEY: &str = "original_timestamp_us";

/// Longest line import reads, in bytes. An event holds at most `MAX_EVENT_BYTES` of payload and
/// metadata; base64 makes the payload 4/3 as long and JSON escapes can make metadata up to six
/// times as long, so 8 × `MAX_EVENT_BYTES` (128 MiB) fits any event a store can hold while
/// bounding the memory one bad line can take.
pub const MAX_LINE_BYTES: usize = 8 * MAX_EVENT_BYTES;

/// Rejected lines whose details an [`ImportReport`] keeps (the rest are only counted).
pub const MAX_REPORTED_REJECTIONS: usize = 1000;

/// The JSON line of one event (without the line break).
pub fn event_to_json_line(e: &RecordedEvent) -> String {
    let mut s = String::with_capacity(256 + e.payload.len() * 4 / 3);
    push_head(&mut s, e);
    if let Some(text) = embeddable_json(&e.payload) {
        let mark = s.len();
        s.push_str(",\"data\":");
        s.push_str(text);
        s.push('}');
        // The line must give back exactly these bytes (a payload nested as deep as the JSON
        // parser's recursion limit parses alone but not inside the line).
        if parse_json_line(&s).is_ok_and(|l| l.event.payload == e.payload) {
            return s;
        }
        s.truncate(mark);
    }
    s.push_str(",\"data_base64\":\"");
    BASE64.encode_string(&e.payload, &mut s);
    s.push_str("\"}");
    s
}

fn push_head(s: &mut String, e: &RecordedEvent) {
    s.push_str("{\"stream\":");
    push_json_str(s, &e.stream);
    s.push_str(",\"type\":");
    push_json_str(s, &e.event_type);
    s.push_str(&format!(
        ",\"version\":{},\"position\":{},\"id\":\"{}\",\"timestamp_us\":{}",
        e.version, e.position, e.id, e.timestamp_us
    ));
    let id = |u: Option<Uuid>| u.map_or_else(|| "null".to_string(), |u| format!("\"{u}\""));
    s.push_str(&format!(
        ",\"metadata\":{{\"correlation_id\":{},\"causation_id\":{},\"extra\":{{",
        id(e.metadata.correlation_id),
        id(e.metadata.causation_id)
    ));
    for (i, (k, v)) in e.metadata.extra.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_json_str(s, k);
        s.push(':');
        push_json_str(s, v);
    }
    s.push('}');
    if !e.metadata.bytes.is_empty() {
        s.push_str(",\"bytes_base64\":\"");
        s.push_str(&BASE64.encode(&e.metadata.bytes));
        s.push('"');
    }
    s.push('}');
}

fn push_json_str(s: &mut String, v: &str) {
    s.push_str(&serde_json::to_string(v).expect("a string always serializes"));
}

/// The payload as JSON text a line can carry verbatim, if it is one.
fn embeddable_json(payload: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(payload).ok()?;
    if text.contains(['\n', '\r']) {
        return None;
    }
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    // `RawValue` leaves out surrounding whitespace, which the line could then not give back.
    (raw.get().len() == text.len()).then_some(text)
}

/// Parses the raw JSON of field `$name` as `$t`, or says which field is wrong.
macro_rules! field_as {
    ($raw:expr, $t:ty, $name:expr) => {
        serde_json::from_str::<$t>($raw.get()).map_err(|e| format!("field {:?}: {e}", $name))
    };
}

/// Field `$name` of `$fields` as `$t`: an error when it is missing.
macro_rules! required {
    ($fields:expr, $t:ty, $name:expr) => {
        match $fields.get($name) {
            Some(raw) => field_as!(raw, $t, $name),
            None => Err(format!("missing field {:?}", $name)),
        }
    };
}

/// Field `$name` of `$fields` as `Option<$t>`: `None` when missing or null.
macro_rules! optional {
    ($fields:expr, $t:ty, $name:expr) => {
        match $fields.get($name) {
            Some(raw) => field_as!(raw, Option<$t>, $name),
            None => Ok(None),
        }
    };
}

/// One parsed import line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    /// The stream.
    pub stream: String,
    /// The event's version in its stream.
    pub version: u64,
    /// The `position` field, if present (informational: the store assigns positions).
    pub position: Option<u64>,
    /// The `timestamp_us` field, if present.
    pub timestamp_us: Option<u64>,
    /// Id, type, payload and metadata.
    pub event: EventData,
}

const LINE_FIELDS: [&str; 9] = [
    "stream",
    "type",
    "version",
    "position",
    "id",
    "timestamp_us",
    "metadata",
    "data",
    "data_base64",
];

/// Parses one JSON line. Required: `stream`, `type`, `version`, `id`, and exactly one of `data`
/// (any JSON; its text is the payload, byte for byte) and `data_base64`. Optional: `position`,
/// `timestamp_us`, `metadata` (`correlation_id`, `causation_id`: UUID or null; `extra`: an
/// object of strings). Unknown fields are refused, so that a misspelt field is not dropped.
/// The error says what is wrong, for a message that names the line.
pub fn parse_json_line(line: &str) -> std::result::Result<ImportLine, String> {
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if let Some(k) = fields.keys().find(|k| !LINE_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {k:?} (known: {})",
            LINE_FIELDS.join(", ")
        ));
    }
    let stream = required!(fields, String, "stream")?;
    let event_type = required!(fields, String, "type")?;
    let version = required!(fields, u64, "version")?;
    let id = required!(fields, String, "id")?;
    let id = Uuid::parse_str(&id).map_err(|e| format!("field \"id\": not a UUID: {e}"))?;
    let position = optional!(fields, u64, "position")?;
    let timestamp_us = optional!(fields, u64, "timestamp_us")?;
    let metadata = match fields.get("metadata") {
        None => Metadata::default(),
        Some(raw) => parse_metadata(raw)?,
    };
    let payload = match (fields.get("data"), fields.get("data_base64")) {
        (Some(raw), None) => raw.get().as_bytes().to_vec(),
        (None, Some(raw)) => {
            let b64 = field_as!(raw, String, "data_base64")?;
            BASE64
                .decode(b64.as_bytes())
                .map_err(|e| format!("field \"data_base64\": not base64: {e}"))?
        }
        (Some(_), Some(_)) => return Err("both \"data\" and \"data_base64\"; give one".into()),
        (None, None) => return Err("missing field \"data\" (or \"data_base64\")".into()),
    };
    Ok(ImportLine {
        stream,
        version,
        position,
        timestamp_us,
        event: EventData {
            id,
            event_type,
            payload,
            metadata,
        },
    })
}

fn parse_metadata(raw: &RawValue) -> std::result::Result<Metadata, String> {
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get())
        .map_err(|e| format!("field \"metadata\": not an object: {e}"))?;
    const KNOWN: [&str; 4] = ["correlation_id", "causation_id", "extra", "bytes_base64"];
    if let Some(k) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown field \"metadata.{k}\" (known: {})",
            KNOWN.join(", ")
        ));
    }
    let uuid = |name: &str| -> std::result::Result<Option<Uuid>, String> {
        let s = optional!(fields, String, name).map_err(|e| format!("metadata: {e}"))?;
        s.map(|s| Uuid::parse_str(&s))
            .transpose()
            .map_err(|e| format!("field \"metadata.{name}\": not a UUID: {e}"))
    };
    let extra = optional!(fields, BTreeMap<String, String>, "extra")
        .map_err(|e| format!("metadata: {e} (\"metadata.extra\" must map strings to strings)"))?;
    let bytes = optional!(fields, String, "bytes_base64")
        .map_err(|e| format!("metadata: {e}"))?
        .map(|b| {
            BASE64
                .decode(b)
                .map_err(|e| format!("field \"metadata.bytes_base64\": not base64: {e}"))
        })
        .transpose()?;
    Ok(Metadata {
        correlation_id: uuid("correlation_id")?,
        causation_id: uuid("causation_id")?,
        extra: extra.unwrap_or_default().into(),
        bytes: bytes.unwrap_or_default(),
    })
}

/// What [`export_events`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines (events) written.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes every event of the store (in position order), or of one stream (in version order),
/// as JSON lines to `out`. `progress` is called with the number of events written so far.
///
/// Errors: [`Error::Io`] (path `-`) when `out` fails, [`Error::Corrupted`] when a read does.
pub fn export_events(
    store: &Store,
    stream: Option<&str>,
    mut out: impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportReport> {
    let events: Box<dyn Iterator<Item = Result<RecordedEvent>>> = match stream {
        Some(s) => Box::new(store.read_stream(s, 0, Direction::Forward, usize::MAX)),
        None => Box::new(store.read_all(0, Direction::Forward, ReadFilter::all())),
    };
    let mut rep = ExportReport::default();
    let write_err = |source| Error::Io {
        op: "write export to",
        path: PathBuf::from("-"),
        source,
    };
    for e in events {
        let mut line = event_to_json_line(&e?);
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(write_err)?;
        rep.events += 1;
        rep.bytes += line.len() as u64;
        if rep.events.is_multiple_of(1024) {
            progress(rep.events);
        }
    }
    out.flush().map_err(write_err)?;
    progress(rep.events);
    Ok(rep)
}

/// How [`import_events`] imports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Keep each line's `timestamp_us` in the event's metadata under
    /// [`ORIGINAL_TIMESTAMP_KEY`] (unless the metadata already has that key). Off by default:
    /// the metadata is then imported exactly as in the line.
    pub keep_timestamps: bool,
}

/// A line that import refused; nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// Line number, from 1.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What [`import_events`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Events appended.
    pub appended: u64,
    /// Lines skipped because their stream already holds that version with the same id and
    /// content (an earlier import).
    pub skipped: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// The first [`MAX_REPORTED_REJECTIONS`] rejected lines, with the reason.
    pub rejections: Vec<RejectedLine>,
}

impl ImportReport {
    fn reject(&mut self, line: u64, reason: String) {
        self.rejected += 1;
        if self.rejections.len() < MAX_REPORTED_REJECTIONS {
            self.rejections.push(RejectedLine { line, reason });
        }
    }
}

/// Appends the events of JSON lines read from `input` (see the [module](self) docs). Blank
/// lines are ignored. `progress` is called with the number of input bytes read so far.
///
/// Per-line problems (bad JSON, a missing field, a version that does not follow the stream's
/// last one, an event the store refuses) are counted in the report, not returned as errors.
/// Errors: [`Error::Io`] when `input` fails; store errors that concern every line
/// ([`Error::Poisoned`], [`Error::Io`], [`Error::ReadOnly`], [`Error::Corrupted`], ...).
pub fn import_events(
    store: &Store,
    mut input: impl BufRead,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportReport> {
    let mut rep = ImportReport::default();
    let mut batch = Batch::default();
    let mut buf = Vec::new();
    let mut read = 0u64;
    let read_err = |source| Error::Io {
        op: "read import from",
        path: PathBuf::from("input"),
        source,
    };
    loop {
        buf.clear();
        let n = read_line(&mut input, &mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        rep.lines += 1;
        let no = rep.lines;
        if buf.strip_suffix(b"\n").unwrap_or(&buf).len() > MAX_LINE_BYTES {
            rep.reject(
                no,
                format!("line longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES)"),
            );
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(e) => {
                rep.reject(no, format!("not UTF-8: {e}"));
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        match parse_json_line(text) {
            Ok(line) => import_line(store, line, opts, no, &mut rep, &mut batch)?,
            Err(reason) => rep.reject(no, reason),
        }
        if rep.lines.is_multiple_of(256) {
            progress(read);
        }
    }
    batch.flush(store, &mut rep)?;
    progress(read);
    Ok(rep)
}

/// Reads one line into `buf` (with its line break), but keeps at most `MAX_LINE_BYTES + 1`
/// bytes of it. Returns the bytes consumed.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// Events of consecutive lines appended together: one `append_multi` (one frame, one fsync)
/// per [`IMPORT_BATCH_EVENTS`] lines instead of one append per line. A batch keeps the lines'
/// order (so importing a whole-store export into an empty store reproduces its positions): a
/// line of a stream that is in the batch but not its last part ends the batch first.
#[derive(Default)]
struct Batch {
    /// (line number, stream, version, timestamp, event), in line order.
    lines: Vec<(u64, String, u64, Option<u64>, EventData)>,
}

/// Lines appended together by [`import_events`] (see `Batch`).
const IMPORT_BATCH_EVENTS: usize = 100;

impl Batch {
    /// The version of `stream`'s last line in the batch, and whether that line is the batch's
    /// last (so a line of the stream can join its part).
    fn last_of(&self, stream: &str) -> Option<(u64, bool)> {
        let i = self.lines.iter().rposition(|l| l.1 == stream)?;
        Some((self.lines[i].2, i + 1 == self.lines.len()))
    }

    /// Appends the batch: one `append_multi` of its runs of one stream. If the store refuses
    /// it for a reason of one line, the lines are appended one by one, so that only those
    /// lines are rejected.
    fn flush(&mut self, store: &Store, rep: &mut ImportReport) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let (lines, events): (Vec<_>, Vec<EventData>) = std::mem::take(&mut self.lines)
            .into_iter()
            .map(|(no, stream, version, ts, e)| ((no, stream, version, ts), e))
            .unzip();
        let now = crate::store::now_us();
        let stamps: Vec<u64> = lines.iter().map(|l| l.3.unwrap_or(now)).collect();
        let mut parts = Vec::new();
        let mut start = 0;
        for i in 1..=lines.len() {
            if i == lines.len() || lines[i].1 != lines[start].1 {
                let (_, stream, version, _) = &lines[start];
                parts.push(crate::store::Part {
                    stream,
                    expected: version
                        .checked_sub(1)
                        .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                    events: &events[start..i],
                    timestamps: Some(&stamps[start..i]),
                });
                start = i;
            }
        }
        let result = store.append_parts(&parts);
        drop(parts);
        match result {
            Ok(_) => rep.appended += lines.len() as u64,
            Err(
                Error::InvalidArgument(_)
                | Error::DuplicateEventId { .. }
                | Error::WrongExpectedVersion { .. }
                | Error::StreamDeleted { .. },
            ) => {
                for ((no, stream, version, ts), event) in lines.into_iter().zip(events) {
                    append_one(store, &stream, version, ts, event, no, rep)?;
                }
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// Appends one line's event alone; a refusal rejects the line.
fn append_one(
    store: &Store,
    stream: &str,
    version: u64,
    timestamp_us: Option<u64>,
    event: EventData,
    no: u64,
    rep: &mut ImportReport,
) -> Result<()> {
    let expected = version
        .checked_sub(1)
        .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let appended = match timestamp_us {
        Some(t) => store.append_at(stream, expected, std::slice::from_ref(&event), t),
        None => store.append(stream, expected, std::slice::from_ref(&event)),
    };
    match appended {
        Ok(_) => rep.appended += 1,
        Err(
            e @ (Error::InvalidArgument(_)
            | Error::DuplicateEventId { .. }
            | Error::WrongExpectedVersion { .. }
            | Error::StreamDeleted { .. }),
        ) => rep.reject(no, e.to_string()),
        Err(e) => return Err(e),
    }
    Ok(())
}

fn import_line(
    store: &Store,
    line: ImportLine,
    opts: &ImportOptions,
    no: u64,
    rep: &mut ImportReport,
    batch: &mut Batch,
) -> Result<()> {
    let ImportLine {
        stream,
        version,
        timestamp_us,
        mut event,
        ..
    } = line;
    if opts.keep_timestamps
        && let Some(t) = timestamp_us
        && !event.metadata.extra.contains_key(ORIGINAL_TIMESTAMP_KEY)
    {
        event
            .metadata
            .extra
            .insert(ORIGINAL_TIMESTAMP_KEY, t.to_string());
    }
    // The stream's last version, counting the lines waiting in the batch; a line that must
    // read what is stored, or that cannot join its stream's part, ends the batch first.
    let last = match batch.last_of(&stream) {
        Some((v, true)) if version == v + 1 => Some(v),
        Some(_) => {
            batch.flush(store, rep)?;
            store.stream_version(&stream)
        }
        None => store.stream_version(&stream),
    };
    match (version, last) {
        (0, None) => {}
        (v, Some(l)) if l.checked_add(1) == Some(v) => {}
        (v, Some(l)) if v <= l => {
            // Already there? Then an earlier import wrote it: skip, if it is the same event.
            let stored = store
                .read_stream(&stream, v, Direction::Forward, 1)
                .next()
                .transpose()?;
            match stored {
                Some(s) if s.id == event.id && same_content(&s, &event) => rep.skipped += 1,
                Some(s) if s.id == event.id => rep.reject(
                    no,
                    format!(
                        "stream {stream:?} already holds version {v} with id {} but other content",
                        s.id
                    ),
                ),
                Some(s) => rep.reject(
                    no,
                    format!(
                        "stream {stream:?} already holds version {v} as another event (id {}, the line has {})",
                        s.id, event.id
                    ),
                ),
                None => rep.reject(no, format!("stream {stream:?} has no version {v} to compare")),
            }
            return Ok(());
        }
        (v, l) => {
            let last = l.map_or("none (no stream)".to_string(), |l| l.to_string());
            rep.reject(
                no,
                format!(
                    "version {v} does not follow stream {stream:?}'s last version {last}: \
                     an earlier line of this stream is missing, rejected, or later in the file"
                ),
            );
            return Ok(());
        }
    }
    batch.lines.push((no, stream, version, timestamp_us, event));
    if batch.lines.len() >= IMPORT_BATCH_EVENTS {
        batch.flush(store, rep)?;
    }
    Ok(())
}

fn same_content(s: &RecordedEvent, e: &EventData) -> bool {
    *s.event_type == *e.event_type && s.payload == e.payload && s.metadata == e.metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn recorded(payload: &[u8]) -> RecordedEvent {
        RecordedEvent {
            stream: Arc::from("s-ü"),
            version: 3,
            position: 7,
            timestamp_us: 42,
            id: Uuid::from_u128(1),
            event_type: "T\"x".into(),
            payload: payload.to_vec(),
            metadata: Metadata::new()
                .with_correlation_id(Uuid::from_u128(2))
                .with("k\n", "v\u{1}"),
        }
    }

    fn round_trip(payload: &[u8]) -> String {
        let e = recorded(payload);
        let line = event_to_json_line(&e);
        assert!(!line.contains('\n'), "{line}");
        let l = parse_json_line(&line).unwrap();
        assert_eq!(l.stream, "s-ü");
        assert_eq!(
            (l.version, l.position, l.timestamp_us),
            (3, Some(7), Some(42))
        );
        assert_eq!(l.event.id, e.id);
        assert_eq!(*l.event.event_type, *e.event_type);
        assert_eq!(l.event.metadata, e.metadata);
        assert_eq!(l.event.payload, payload);
        line
    }

    #[test]
    fn json_payloads_are_embedded_verbatim() {
        for p in [
            &br#"{"b":1,"a":[1, 2 ,{}]}"#[..],
            br#"{ "x" :	"y" }"#,
            b"42",
            b"null",
            br#""text""#,
        ] {
            let line = round_trip(p);
            assert!(line.contains("\"data\":"), "{line}");
        }
    }

    #[test]
    fn other_payloads_are_base64() {
        for p in [
            &b""[..],
            b"\xff\x00\x01",
            b" {}",
            b"{} ",
            b"{\n}",
            b"{\"a\":1}{",
            b"not json",
        ] {
            let line = round_trip(p);
            assert!(line.contains("\"data_base64\":"), "{line}");
        }
        // Around the JSON parser's recursion limit: whichever way a payload goes, it comes back.
        for depth in 125..=130 {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            round_trip(deep.as_bytes());
        }
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let ok = r#"{"stream":"s","type":"T","version":0,"id":"00000000-0000-0000-0000-000000000001","data":{}}"#;
        assert!(parse_json_line(ok).is_ok());
        for (line, want) in [
            ("{", "not a JSON object"),
            ("[]", "not a JSON object"),
            (
                &ok.replace("\"stream\":\"s\",", ""),
                "missing field \"stream\"",
            ),
            (
                &ok.replace("\"version\":0", "\"version\":-1"),
                "field \"version\"",
            ),
            (&ok.replace("\"id\":\"0", "\"id\":\"x"), "not a UUID"),
            (&ok.replace(",\"data\":{}", ""), "missing field \"data\""),
            (&ok.replace("\"data\"", "\"dat\""), "unknown field \"dat\""),
            (
                &ok.replace("\"data\":{}", "\"data\":{},\"data_base64\":\"\""),
                "both \"data\" and \"data_base64\"",
            ),
            (
                &ok.replace("\"data\":{}", "\"data_base64\":\"***\""),
                "not base64",
            ),
            (
                &ok.replace(
                    "\"data\":{}",
                    "\"data\":{},\"metadata\":{\"extra\":{\"a\":1}}",
                ),
                "metadata.extra",
            ),
            (
                &ok.replace("\"data\":{}", "\"data\":{},\"metadata\":{\"user\":\"x\"}"),
                "unknown field \"metadata.user\"",
            ),
        ] {
            let e = parse_json_line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
