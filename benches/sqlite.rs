//! evlog beside SQLite and a bare file: the same standard workload, the same operations, one run.
//!
//! `cargo bench --bench sqlite` (1,000,000 events for the non-durable appends, reads and
//! replays; 2,000 durable single appends; 500 durable batches of 100) or `-- --quick` (100,000
//! events; 300 single appends; 100 batches). Prints one line per operation and writes a plot of
//! the throughputs to `benches/plots/throughput.svg` (`throughput-quick.svg` with `--quick`).
//!
//! SQLite (bundled, via rusqlite): WAL journal, `synchronous=FULL` for the durable cases and
//! `synchronous=OFF` for the non-durable one (evlog's `Durability::Never` never fsyncs either),
//! `mmap_size` 1 GiB (evlog reads mapped segments). One table,
//! `events(position INTEGER PRIMARY KEY, stream, version, id, type, payload, metadata, ts,
//! UNIQUE(stream, version))`; every append is one `BEGIN IMMEDIATE` transaction that reads the
//! stream's current version, checks it against the expected one and inserts version + 1, ...
//!
//! The bare baseline is one file of length-prefixed records (no checksums, no index on disk):
//! appends are one `write(2)` per append (plus `fdatasync` when durable); a whole-stream read
//! is one `pread` per event through an in-memory offset list; replays read the file whole and
//! decode it. Every system hands back owned events (stream, version, position, id, type,
//! payload, decoded metadata, timestamp).
//!
//! The durable cases run interleaved (10 rounds; in each, every system appends its share in
//! turn) and report the median per-round rate, so a disturbance on the shared disk hits all
//! three alike. Every append names the version it expects (the optimistic check).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use evlog::workload::{Rng, STANDARD_STREAMS, Workload};
use evlog::{
    Direction, Durability, EventData, ExpectedVersion, Metadata, ReadFilter, Store, StoreOptions,
    Uuid,
};
use rusqlite::{Connection, TransactionBehavior, params};

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    pct(&mut v, 0.5)
}

fn events(n: usize, seed: u64) -> Vec<(String, EventData)> {
    let mut w = Workload::standard(seed);
    (0..n).map(|_| w.next_event()).collect()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// An owned event as SQLite and the bare file hand it back (evlog hands back `RecordedEvent`).
#[allow(dead_code)]
struct Ev {
    position: u64,
    stream: String,
    version: u64,
    id: Uuid,
    event_type: String,
    payload: Vec<u8>,
    metadata: Metadata,
    ts: u64,
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Compact binary metadata (the SQLite `metadata` BLOB and the bare record's metadata).
fn encode_meta(m: &Metadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for id in [m.correlation_id, m.causation_id] {
        match id {
            Some(u) => {
                out.push(1);
                out.extend_from_slice(u.as_bytes());
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&(m.extra.len() as u16).to_le_bytes());
    for (k, v) in &m.extra {
        put_str16(&mut out, k);
        put_str16(&mut out, v);
    }
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> usize {
        u16::from_le_bytes(self.take(2).try_into().unwrap()) as usize
    }
    fn u32(&mut self) -> usize {
        u32::from_le_bytes(self.take(4).try_into().unwrap()) as usize
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn uuid(&mut self) -> Uuid {
        Uuid::from_slice(self.take(16)).unwrap()
    }
    fn str16(&mut self) -> String {
        let n = self.u16();
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
}

fn decode_meta(b: &[u8]) -> Metadata {
    let mut c = Cursor(b);
    let mut m = Metadata::new();
    if c.u8() == 1 {
        m.correlation_id = Some(c.uuid());
    }
    if c.u8() == 1 {
        m.causation_id = Some(c.uuid());
    }
    for _ in 0..c.u16() {
        let k = c.str16();
        let v = c.str16();
        m.extra.insert(k, v);
    }
    m
}

/// The expected-version condition for a stream whose last version is `last`.
fn expected(last: Option<u64>) -> ExpectedVersion {
    match last {
        None => ExpectedVersion::NoStream,
        Some(v) => ExpectedVersion::Exact(v),
    }
}

// ---------------------------------------------------------------------------------------------
// The three systems behind one interface

trait System {
    /// Appends `evs` to `stream` if its last version is `last`; returns the new last version.
    fn append(&mut self, stream: &str, last: Option<u64>, evs: &[EventData]) -> u64;
    /// Reads a whole stream; returns the number of events.
    fn read_stream(&mut self, stream: &str) -> usize;
    /// Replays every event in order (or only those of `event_type`); returns the count.
    fn replay(&mut self, event_type: Option<&str>) -> usize;
}

struct EvlogSys(Store);

impl EvlogSys {
    fn open(dir: &Path, durable: bool) -> Self {
        let d = if durable {
            Durability::Always
        } else {
            Durability::Never
        };
        EvlogSys(StoreOptions::new().durability(d).open(dir).unwrap())
    }
}

impl System for EvlogSys {
    fn append(&mut self, stream: &str, last: Option<u64>, evs: &[EventData]) -> u64 {
        self.0
            .append(stream, expected(last), evs)
            .unwrap()
            .next_expected_version
    }
    fn read_stream(&mut self, stream: &str) -> usize {
        let mut n = 0;
        for e in self
            .0
            .read_stream(stream, 0, Direction::Forward, usize::MAX)
        {
            std::hint::black_box(e.unwrap());
            n += 1;
        }
        n
    }
    fn replay(&mut self, event_type: Option<&str>) -> usize {
        let filter = match event_type {
            None => ReadFilter::all(),
            Some(t) => ReadFilter::all().event_types([t]),
        };
        let mut n = 0;
        for e in self.0.read_all(0, Direction::Forward, filter) {
            std::hint::black_box(e.unwrap());
            n += 1;
        }
        n
    }
}

struct SqliteSys(Connection);

impl SqliteSys {
    fn open(dir: &Path, durable: bool) -> Self {
        let c = Connection::open(dir.join("events.db")).unwrap();
        let sync = if durable { "FULL" } else { "OFF" };
        c.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA mmap_size=1073741824;
             CREATE TABLE IF NOT EXISTS events(
               position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,
               id BLOB NOT NULL, type TEXT NOT NULL, payload BLOB NOT NULL, metadata BLOB NOT NULL,
               ts INTEGER NOT NULL, UNIQUE(stream, version));"
        ))
        .unwrap();
        SqliteSys(c)
    }
}

fn sqlite_row(r: &rusqlite::Row) -> rusqlite::Result<Ev> {
    Ok(Ev {
        position: r.get::<_, i64>(0)? as u64,
        stream: r.get(1)?,
        version: r.get::<_, i64>(2)? as u64,
        id: Uuid::from_slice(r.get_ref(3)?.as_blob()?).unwrap(),
        event_type: r.get(4)?,
        payload: r.get(5)?,
        metadata: decode_meta(r.get_ref(6)?.as_blob()?),
        ts: r.get::<_, i64>(7)? as u64,
    })
}

const SQL_COLS: &str = "position, stream, version, id, type, payload, metadata, ts";

impl System for SqliteSys {
    fn append(&mut self, stream: &str, last: Option<u64>, evs: &[EventData]) -> u64 {
        let tx = self
            .0
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let mut v;
        {
            let mut q = tx
                .prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")
                .unwrap();
            let cur: Option<i64> = q.query_row([stream], |r| r.get(0)).unwrap();
            // The optimistic check: a real caller would roll back and report the conflict.
            assert_eq!(cur.map(|c| c as u64), last, "wrong expected version");
            v = cur.map_or(0, |c| c + 1);
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO events(stream, version, id, type, payload, metadata, ts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .unwrap();
            let ts = now_us() as i64;
            for e in evs {
                ins.execute(params![
                    stream,
                    v,
                    e.id.as_bytes().as_slice(),
                    e.event_type,
                    e.payload,
                    encode_meta(&e.metadata),
                    ts
                ])
                .unwrap();
                v += 1;
            }
        }
        tx.commit().unwrap();
        (v - 1) as u64
    }
    fn read_stream(&mut self, stream: &str) -> usize {
        let mut q = self
            .0
            .prepare_cached(&format!(
                "SELECT {SQL_COLS} FROM events WHERE stream = ?1 ORDER BY version"
            ))
            .unwrap();
        let mut n = 0;
        for e in q.query_map([stream], sqlite_row).unwrap() {
            std::hint::black_box(e.unwrap());
            n += 1;
        }
        n
    }
    fn replay(&mut self, event_type: Option<&str>) -> usize {
        let mut n = 0;
        match event_type {
            None => {
                let mut q = self
                    .0
                    .prepare_cached(&format!("SELECT {SQL_COLS} FROM events ORDER BY position"))
                    .unwrap();
                for e in q.query_map([], sqlite_row).unwrap() {
                    std::hint::black_box(e.unwrap());
                    n += 1;
                }
            }
            Some(t) => {
                let mut q = self
                    .0
                    .prepare_cached(&format!(
                        "SELECT {SQL_COLS} FROM events WHERE type = ?1 ORDER BY position"
                    ))
                    .unwrap();
                for e in q.query_map([t], sqlite_row).unwrap() {
                    std::hint::black_box(e.unwrap());
                    n += 1;
                }
            }
        }
        n
    }
}

/// One file of records: u32 length of the rest, u64 position, u64 version, u64 timestamp,
/// 16-byte id, u16-prefixed stream, u16-prefixed type, u32-prefixed payload, u32-prefixed
/// metadata. Stream versions and each stream's record offsets are kept in memory.
struct BareSys {
    file: File,
    path: std::path::PathBuf,
    durable: bool,
    end: u64,
    next_pos: u64,
    streams: HashMap<String, (u64, Vec<(u64, u32)>)>,
    buf: Vec<u8>,
}

impl BareSys {
    fn open(dir: &Path, durable: bool) -> Self {
        let path = dir.join("bare.log");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        BareSys {
            file,
            path,
            durable,
            end: 0,
            next_pos: 0,
            streams: HashMap::new(),
            buf: Vec::new(),
        }
    }
}

fn decode_record(mut c: Cursor) -> Ev {
    let position = c.u64();
    let version = c.u64();
    let ts = c.u64();
    let id = c.uuid();
    let stream = c.str16();
    let event_type = c.str16();
    let n = c.u32();
    let payload = c.take(n).to_vec();
    let n = c.u32();
    let metadata = decode_meta(c.take(n));
    Ev {
        position,
        stream,
        version,
        id,
        event_type,
        payload,
        metadata,
        ts,
    }
}

/// The type of an encoded record (after its length prefix), without decoding the rest.
fn record_type(rec: &[u8]) -> &[u8] {
    let mut c = Cursor(&rec[40..]);
    let n = c.u16();
    c.take(n);
    let n = c.u16();
    c.take(n)
}

impl System for BareSys {
    fn append(&mut self, stream: &str, last: Option<u64>, evs: &[EventData]) -> u64 {
        let entry = self
            .streams
            .entry(stream.to_string())
            .or_insert((u64::MAX, Vec::new()));
        let cur = (entry.0 != u64::MAX).then_some(entry.0);
        assert_eq!(cur, last, "wrong expected version");
        let mut v = cur.map_or(0, |c| c + 1);
        let ts = now_us();
        self.buf.clear();
        for e in evs {
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0; 4]);
            self.buf.extend_from_slice(&self.next_pos.to_le_bytes());
            self.buf.extend_from_slice(&v.to_le_bytes());
            self.buf.extend_from_slice(&ts.to_le_bytes());
            self.buf.extend_from_slice(e.id.as_bytes());
            put_str16(&mut self.buf, stream);
            put_str16(&mut self.buf, &e.event_type);
            self.buf
                .extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&e.payload);
            let m = encode_meta(&e.metadata);
            self.buf.extend_from_slice(&(m.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&m);
            let len = (self.buf.len() - start - 4) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
            entry.1.push((self.end + start as u64 + 4, len));
            self.next_pos += 1;
            v += 1;
        }
        self.file.write_all(&self.buf).unwrap();
        self.end += self.buf.len() as u64;
        if self.durable {
            self.file.sync_data().unwrap();
        }
        entry.0 = v - 1;
        v - 1
    }
    fn read_stream(&mut self, stream: &str) -> usize {
        let Some((_, offs)) = self.streams.get(stream) else {
            return 0;
        };
        let mut buf = Vec::new();
        for &(off, len) in offs {
            buf.resize(len as usize, 0);
            self.file.read_exact_at(&mut buf, off).unwrap();
            std::hint::black_box(decode_record(Cursor(&buf)));
        }
        offs.len()
    }
    fn replay(&mut self, event_type: Option<&str>) -> usize {
        let data = std::fs::read(&self.path).unwrap();
        let mut c = Cursor(&data);
        let mut n = 0;
        while !c.0.is_empty() {
            let len = c.u32();
            let rec = c.take(len);
            if event_type.is_none_or(|t| record_type(rec) == t.as_bytes()) {
                std::hint::black_box(decode_record(Cursor(rec)));
                n += 1;
            }
        }
        n
    }
}

// ---------------------------------------------------------------------------------------------
// The operations

/// One operation's figures for one system.
#[derive(Clone, Copy, Default)]
struct Fig {
    /// Events per second.
    rate: f64,
    /// Per-operation latency, µs (0 when not a latency operation).
    p50: f64,
    p99: f64,
}

/// Appends `groups` (stream, events) one append each, with the right expected version;
/// returns events/s and per-append latency.
fn run_appends(sys: &mut dyn System, groups: &[(String, Vec<EventData>)]) -> Fig {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut lat = Vec::with_capacity(groups.len());
    let mut events = 0;
    let t0 = Instant::now();
    for (s, evs) in groups {
        let cur = last.get(s.as_str()).copied();
        let t = Instant::now();
        let v = sys.append(s, cur, evs);
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        last.insert(s, v);
        events += evs.len();
    }
    let rate = events as f64 / t0.elapsed().as_secs_f64();
    Fig {
        rate,
        p50: pct(&mut lat, 0.5),
        p99: pct(&mut lat, 0.99),
    }
}

/// The durable appends of `groups`, interleaved: in each of `rounds` rounds every system (each
/// with its own store, kept across rounds) appends the round's share in turn, so a disturbance
/// on the shared disk hits all three alike. Throughput is the median of the per-round rates;
/// latency percentiles are over all appends.
fn durable_interleaved(
    openers: &[Opener; 3],
    groups: &[(String, Vec<EventData>)],
    rounds: usize,
) -> [Option<Fig>; 3] {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut systems: Vec<_> = openers
        .iter()
        .zip(&dirs)
        .map(|(open, d)| open(d.path(), true))
        .collect();
    let mut last: Vec<HashMap<&str, u64>> = vec![HashMap::new(); 3];
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let per_round = groups.len().div_ceil(rounds);
    for chunk in groups.chunks(per_round) {
        for k in 0..3 {
            let mut events = 0;
            let t0 = Instant::now();
            for (s, evs) in chunk {
                let cur = last[k].get(s.as_str()).copied();
                let t = Instant::now();
                let v = systems[k].append(s, cur, evs);
                lat[k].push(t.elapsed().as_nanos() as f64 / 1000.0);
                last[k].insert(s, v);
                events += evs.len();
            }
            rates[k].push(events as f64 / t0.elapsed().as_secs_f64());
        }
    }
    let mut figs = [None; 3];
    for k in 0..3 {
        figs[k] = Some(Fig {
            rate: median(rates[k].clone()),
            p50: pct(&mut lat[k], 0.5),
            p99: pct(&mut lat[k], 0.99),
        });
    }
    figs
}

fn singles(evs: &[(String, EventData)]) -> Vec<(String, Vec<EventData>)> {
    evs.iter()
        .map(|(s, e)| (s.clone(), vec![e.clone()]))
        .collect()
}

fn read_streams(sys: &mut dyn System, n_reads: usize) -> Fig {
    // Warm up: every stream once.
    for i in 0..STANDARD_STREAMS {
        sys.read_stream(&Workload::stream_name(i));
    }
    let mut rng = Rng::new(5);
    let names: Vec<String> = (0..n_reads)
        .map(|_| Workload::stream_name(rng.below(STANDARD_STREAMS)))
        .collect();
    let mut lat = Vec::with_capacity(n_reads);
    let mut total = 0;
    let t0 = Instant::now();
    for s in &names {
        let t = Instant::now();
        total += sys.read_stream(s);
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    Fig {
        rate: total as f64 / t0.elapsed().as_secs_f64(),
        p50: pct(&mut lat, 0.5),
        p99: pct(&mut lat, 0.99),
    }
}

/// Median over 3 replays (after one warm-up) of events scanned per second.
fn replay(sys: &mut dyn System, event_type: Option<&str>, n: usize) -> Fig {
    let want = sys.replay(event_type);
    if event_type.is_none() {
        assert_eq!(want, n);
    }
    let rates = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(sys.replay(event_type), want);
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    Fig {
        rate: median(rates),
        ..Fig::default()
    }
}

type Opener = fn(&Path, bool) -> Box<dyn System>;

struct Op {
    name: &'static str,
    latency: bool,
    figs: [Option<Fig>; 3],
}

const SYSTEMS: [&str; 3] = ["evlog", "SQLite", "bare file"];

fn print_op(op: &Op) {
    let mut line = format!("{:<34}", op.name);
    for (name, f) in SYSTEMS.iter().zip(op.figs.iter()) {
        match f {
            None => line += &format!(" | {name}: —"),
            Some(f) if op.latency => {
                line += &format!(
                    " | {name}: {} ev/s, p50 {:.1} us, p99 {:.1} us",
                    fmt_rate(f.rate),
                    f.p50,
                    f.p99
                )
            }
            Some(f) => line += &format!(" | {name}: {} ev/s", fmt_rate(f.rate)),
        }
    }
    if let (Some(e), Some(s)) = (op.figs[0], op.figs[1]) {
        line += &format!(" | evlog/SQLite {:.2}", e.rate / s.rate);
    }
    println!("{line}");
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn plot(ops: &[Op], path: &Path, title: &str) {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let label_style =
        TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    let root = SVGBackend::new(path, (1500, 900)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let root = root.titled(title, ("sans-serif", 26)).unwrap();
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(127, 127, 127),
    ];
    for (op, area) in ops.iter().zip(root.split_evenly((2, 3)).iter()) {
        let ymax = op.figs.iter().flatten().map(|f| f.rate).fold(0.0, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(area)
            .caption(op.name, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d((0i32..2).into_segmented(), 0f64..ymax)
            .unwrap();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(1)
            .y_desc("events/s")
            .label_style(("sans-serif", 15))
            .y_label_formatter(&|v| fmt_rate(*v))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => SYSTEMS.get(*i as usize).unwrap_or(&"").to_string(),
                _ => String::new(),
            })
            .draw()
            .unwrap();
        for (i, f) in op.figs.iter().enumerate() {
            let i32i = i as i32;
            match f {
                Some(f) => {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i32i), 0.0),
                            (SegmentValue::Exact(i32i + 1), f.rate),
                        ],
                        colors[i].filled(),
                    );
                    bar.set_margin(0, 0, 12, 12);
                    chart.draw_series(std::iter::once(bar)).unwrap();
                    chart
                        .draw_series(std::iter::once(Text::new(
                            fmt_rate(f.rate),
                            (SegmentValue::CenterOf(i32i), f.rate + ymax * 0.01),
                            label_style.clone(),
                        )))
                        .unwrap();
                }
                None => {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            "n/a",
                            (SegmentValue::CenterOf(i32i), ymax * 0.01),
                            label_style.clone(),
                        )))
                        .unwrap();
                }
            }
        }
    }
    root.present().unwrap();
}

/// Rounds of the interleaved durable runs.
const ROUNDS: usize = 10;

/// Bytes of the files in `dir` (not in its subdirectories).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, n_sync, n_batches, n_reads) = if quick {
        (100_000, 300, 100, 2_000)
    } else {
        (1_000_000, 2_000, 500, 5_000)
    };
    let t_all = Instant::now();
    println!(
        "evlog vs SQLite {} (bundled; WAL; synchronous=FULL durable, OFF non-durable) vs bare file; {n} events, {n_sync} durable appends, {n_batches} durable batches of 100",
        rusqlite::version()
    );
    let mut ops = Vec::new();

    let openers: [Opener; 3] = [
        |d, durable| Box::new(EvlogSys::open(d, durable)),
        |d, durable| Box::new(SqliteSys::open(d, durable)),
        |d, durable| Box::new(BareSys::open(d, durable)),
    ];

    // Durable single appends, 1 writer.
    let groups = singles(&events(n_sync, 1));
    let figs = durable_interleaved(&openers, &groups, ROUNDS);
    ops.push(Op {
        name: "durable single appends, 1 writer",
        latency: true,
        figs,
    });
    print_op(ops.last().unwrap());

    // Durable batches of 100 events, each to a random stream.
    let mut w = Workload::standard(7);
    let groups: Vec<(String, Vec<EventData>)> = (0..n_batches)
        .map(|_| {
            let evs: Vec<_> = (0..100).map(|_| w.next_event()).collect();
            let s = evs[0].0.clone();
            (s, evs.into_iter().map(|(_, e)| e).collect())
        })
        .collect();
    let figs = durable_interleaved(&openers, &groups, ROUNDS);
    ops.push(Op {
        name: "durable batches of 100",
        latency: true,
        figs,
    });
    print_op(ops.last().unwrap());

    // Non-durable single appends; the stores they fill serve the reads and replays.
    let groups = singles(&events(n, 3));
    let mut dirs = Vec::new();
    let mut systems = Vec::new();
    let mut figs = [None; 3];
    for (k, open) in openers.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut sys = open(dir.path(), false);
        figs[k] = Some(run_appends(sys.as_mut(), &groups));
        systems.push(sys);
        dirs.push(dir);
    }
    drop(groups);
    ops.push(Op {
        name: "non-durable single appends",
        latency: true,
        figs,
    });
    print_op(ops.last().unwrap());

    let mut figs = [None; 3];
    for (k, sys) in systems.iter_mut().enumerate() {
        figs[k] = Some(read_streams(sys.as_mut(), n_reads));
    }
    ops.push(Op {
        name: "whole-stream reads (random stream)",
        latency: true,
        figs,
    });
    print_op(ops.last().unwrap());

    let mut figs = [None; 3];
    for (k, sys) in systems.iter_mut().enumerate() {
        figs[k] = Some(replay(sys.as_mut(), None, n));
    }
    ops.push(Op {
        name: "replay all, in order",
        latency: false,
        figs,
    });
    print_op(ops.last().unwrap());

    let mut figs = [None; 3];
    for (k, sys) in systems.iter_mut().enumerate() {
        figs[k] = Some(replay(sys.as_mut(), Some("PriceFeedUpdatedEvent"), n));
    }
    ops.push(Op {
        name: "replay one type (1 in 7), scanned",
        latency: false,
        figs,
    });
    print_op(ops.last().unwrap());

    for (d, name) in dirs.iter().zip(SYSTEMS) {
        let bytes = dir_bytes(d.path());
        println!(
            "on disk after {n} non-durable appends, {name}: {:.1} MB",
            bytes as f64 / 1e6
        );
    }
    drop(systems);

    // evlog beyond the owned-event interface the three systems share: replays through
    // `Store::replay` (borrowed events), and the store's size once sealed and compressed.
    {
        let store = StoreOptions::new()
            .durability(Durability::Never)
            .open(dirs[0].path())
            .unwrap();
        for (what, filter) in [
            ("all", ReadFilter::all()),
            (
                "one type",
                ReadFilter::all().event_types(["PriceFeedUpdatedEvent"]),
            ),
        ] {
            let mut rates = Vec::new();
            for _ in 0..4 {
                let t = Instant::now();
                let end = store
                    .replay(
                        0,
                        u64::MAX,
                        &filter,
                        |_| std::ops::ControlFlow::Continue(()),
                    )
                    .unwrap();
                rates.push(n as f64 / t.elapsed().as_secs_f64());
                std::hint::black_box(end);
            }
            rates.remove(0);
            println!(
                "evlog Store::replay (borrowed events), {what}: {} events scanned/s",
                fmt_rate(median(rates))
            );
        }
        store.seal_active().unwrap();
        store.compress_sealed().unwrap();
        let bytes = dir_bytes(dirs[0].path());
        println!(
            "on disk, evlog after seal_active + compress_sealed: {:.1} MB",
            bytes as f64 / 1e6
        );
    }

    let plots = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/plots");
    std::fs::create_dir_all(&plots).unwrap();
    let file = if quick {
        "throughput-quick.svg"
    } else {
        "throughput.svg"
    };
    plot(
        &ops,
        &plots.join(file),
        &format!(
            "evlog vs SQLite vs bare file, {n} standard events{} (events/s, higher is better)",
            if quick { " (--quick)" } else { "" }
        ),
    );
    println!(
        "plot: benches/plots/{file}; total {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
}
