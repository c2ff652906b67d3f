//! The shapes users run (issue 21): evlog beside SQLite on one store of the trading platform's
//! events, every operation measured for both in the same run.
//!
//! `cargo bench --bench workload` (1,000,000 events) or `-- --quick` (100,000 events, fewer
//! rounds; CI runs it). Prints one line per operation: both medians (and the range of the
//! rounds), the ratio evlog/SQLite and the goal beside it. Goals are printed, never asserted.
//!
//! The store: events over 10,000 streams, each event to a uniformly random stream (so a
//! stream's ~100 events are scattered through the log), appended one event per append; 7 event
//! types, one in seven of each; JSON payloads of 230-260 bytes; one metadata value `meta` per
//! event, ~110 bytes of JSON (correlation and causation ids of 32 hex characters, a millisecond
//! timestamp), which every reader reads.
//!
//! - evlog: the load runs with `Durability::Never` and 64 MiB segments, then `seal_active`,
//!   `compress_sealed` and `close`; the durable operations use `Durability::Always`.
//! - SQLite (bundled, via rusqlite): WAL journal, `mmap_size` 1 GiB, `synchronous=OFF` for the
//!   load and `FULL` for the durable operations; one table with the metadata as a TEXT column,
//!   the `(stream, version)` unique index and an index on `type`. Each append is one
//!   `BEGIN IMMEDIATE` transaction that checks every stream's last version, then inserts.
//!
//! The operations: (1) replay all events in position order, warm, reading each event's
//! metadata (evlog also without reading it); (2) replay one type in seven, warm; (3) replay all
//! after dropping the page cache, from a freshly opened store / connection; (4) durable batches
//! of 100 events to 100 distinct streams, one fsync each, every stream's version checked;
//! (5) open a closed store and make its first durable append. Each is run in interleaved
//! rounds (the systems in turn within a round), so a disturbance of the shared machine hits
//! both alike; figures are medians of the rounds.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use evlog::workload::{Rng, STANDARD_STREAMS, Workload};
use evlog::{
    Durability, EventData, ExpectedVersion, Metadata, ReadFilter, Store, StoreOptions, Uuid,
};
use rusqlite::{Connection, TransactionBehavior, params};

// ---------------------------------------------------------------------------------------------
// The events

/// The seven event types, one in seven events of each.
const TYPES: [&str; 7] = [
    "AIResultCreated",
    "AIResultCompleted",
    "AIResultFailed",
    "OracleSnapshotRecorded",
    "PriceFeedUpdated",
    "AuditLogCreated",
    "UserAuthenticated",
];

/// The type that operation 2 replays.
const ONE_TYPE: &str = "PriceFeedUpdated";

/// The metadata key holding each event's metadata JSON.
const META: &str = "meta";

/// Generates the events, deterministic from a seed: each to a uniformly random stream.
struct Events {
    rng: Rng,
    n: u64,
}

/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
const BASE_MS: u64 = 1_767_225_600_000;

impl Events {
    fn new(seed: u64) -> Self {
        Events {
            rng: Rng::new(seed),
            n: 0,
        }
    }

    fn hex32(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64())
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.rng.below(of.len() as u64) as usize]
    }

    /// The next event and its stream.
    fn next_event(&mut self) -> (String, EventData) {
        let s = Workload::stream_name(self.rng.below(STANDARD_STREAMS));
        (s, self.event())
    }

    /// An event of a random type: a payload of 230-260 bytes and its metadata value.
    fn event(&mut self) -> EventData {
        self.n += 1;
        let ms = BASE_MS + self.n * 7 + self.rng.below(7);
        let event_type = self.pick(&TYPES);
        let (day, rest) = ((ms - BASE_MS) / 86_400_000, (ms - BASE_MS) % 86_400_000);
        let iso = format!(
            "2026-01-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            1 + day % 28,
            rest / 3_600_000,
            rest / 60_000 % 60,
            rest / 1000 % 60,
            rest % 1000
        );
        let r = &mut self.rng;
        let (score, confidence) = (r.below(10_000), r.below(1000));
        let (latency, tokens, amount, cents) = (
            100 + r.below(4900),
            1000 + r.below(99_000),
            1000 + r.below(999_000),
            r.below(100),
        );
        let subject = r.below(1_000_000);
        let result_id = self.hex32();
        let provider = self.pick(&["openai", "anthropic", "chainlink", "pyth", "internal"]);
        let risk = self.pick(&["low", "medium", "high", "critical"]);
        let payload = format!(
            r#"{{"resultId":"{result_id}","subjectId":"user-{subject:07}","provider":"{provider}","score":0.{score:04},"riskLevel":"{risk}","confidence":0.{confidence:03},"latencyMs":{latency},"tokens":{tokens},"amount":{amount}.{cents:02},"createdAt":"{iso}"}}"#
        );
        let meta = format!(
            r#"{{"corrId":"{}","causeId":"{}","tsMs":{ms}}}"#,
            self.hex32(),
            self.hex32()
        );
        let id = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
        EventData::new(event_type, payload.into_bytes())
            .with_id(Uuid::from_u128(id))
            .with_metadata(Metadata::new().with(META, meta))
    }

    /// `size` events, each to another of `size` distinct random streams.
    fn batch(&mut self, size: usize) -> Vec<(String, Vec<EventData>)> {
        let mut streams = std::collections::HashSet::new();
        while streams.len() < size {
            streams.insert(self.rng.below(STANDARD_STREAMS));
        }
        let mut streams: Vec<u64> = streams.into_iter().collect();
        streams.sort_unstable();
        streams
            .into_iter()
            .map(|s| (Workload::stream_name(s), vec![self.event()]))
            .collect()
    }
}

/// Notes the last versions `versions` of the streams of `batch`.
fn note(
    last: &mut HashMap<String, Option<u64>>,
    batch: &[(String, Vec<EventData>)],
    versions: impl Iterator<Item = u64>,
) {
    for ((s, _), v) in batch.iter().zip(versions) {
        last.insert(s.clone(), Some(v));
    }
}

fn meta_of(e: &EventData) -> &str {
    e.metadata.extra.get(META).unwrap()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

// ---------------------------------------------------------------------------------------------
// evlog

fn evlog_options(durability: Durability) -> StoreOptions {
    StoreOptions::new()
        .durability(durability)
        .segment_bytes(64 << 20)
}

/// The expected version of a stream whose last version is `last`.
fn expected(last: Option<u64>) -> ExpectedVersion {
    last.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

/// What a reader does with each event: it reads every field (and the metadata value when
/// `meta`), adding up lengths and a byte of each so that nothing is optimised away.
fn touch(fields: [u64; 3], id: &[u8], texts: [&str; 2], payload: &[u8], meta: &str) -> u64 {
    fields.iter().sum::<u64>()
        + u64::from(id[0])
        + (texts[0].len() + texts[1].len() + payload.len() + meta.len()) as u64
        + u64::from(payload[payload.len() / 2])
        + meta.as_bytes().last().copied().map_or(0, u64::from)
}

/// Replays `filter` through `Store::replay`; returns (events, checksum).
fn evlog_replay(store: &Store, filter: &ReadFilter, read_meta: bool) -> (u64, u64) {
    let mut sum = 0u64;
    let end = store
        .replay(0, u64::MAX, filter, |e| {
            let meta = if read_meta {
                e.metadata_value(META).unwrap()
            } else {
                ""
            };
            sum = sum.wrapping_add(touch(
                [e.position, e.version, e.timestamp_us],
                e.id.as_bytes(),
                [e.stream, e.event_type],
                e.payload,
                meta,
            ));
            ControlFlow::Continue(())
        })
        .unwrap();
    (end.events, std::hint::black_box(sum))
}

// ---------------------------------------------------------------------------------------------
// SQLite

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events(
    position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,
    id BLOB NOT NULL, type TEXT NOT NULL, payload BLOB NOT NULL, metadata TEXT NOT NULL,
    ts INTEGER NOT NULL, UNIQUE(stream, version));
  CREATE INDEX IF NOT EXISTS events_type ON events(type);";

const INSERT: &str = "INSERT INTO events(stream, version, id, type, payload, metadata, ts)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn sqlite_open(path: &Path, durable: bool) -> Connection {
    let c = Connection::open(path).unwrap();
    let sync = if durable { "FULL" } else { "OFF" };
    c.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA mmap_size=1073741824;"
    ))
    .unwrap();
    c
}

/// One `BEGIN IMMEDIATE` transaction: for each (stream, expected last version, events), checks
/// the stream's last version and inserts the events after it. Returns each stream's new last
/// version.
fn sqlite_append(c: &mut Connection, batch: &[(&str, Option<u64>, &[EventData])]) -> Vec<u64> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let mut versions = Vec::with_capacity(batch.len());
    {
        let mut cur = tx
            .prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")
            .unwrap();
        let mut ins = tx.prepare_cached(INSERT).unwrap();
        let ts = now_us() as i64;
        for &(stream, last, evs) in batch {
            let v: Option<i64> = cur.query_row([stream], |r| r.get(0)).unwrap();
            // The optimistic check: a real caller would roll back and report the conflict.
            assert_eq!(v.map(|v| v as u64), last, "wrong expected version");
            let first = v.map_or(0, |v| v + 1);
            versions.push((first + evs.len() as i64 - 1) as u64);
            for (v, e) in (first..).zip(evs) {
                ins.execute(params![
                    stream,
                    v,
                    e.id.as_bytes().as_slice(),
                    e.event_type,
                    e.payload,
                    meta_of(e),
                    ts
                ])
                .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    versions
}

/// Replays every event (or those of `event_type`) in position order, reading every column;
/// returns (events, checksum).
fn sqlite_replay(c: &Connection, event_type: Option<&str>) -> (u64, u64) {
    let sql = match event_type {
        None => {
            "SELECT position, stream, version, id, type, payload, metadata, ts FROM events ORDER BY position"
        }
        Some(_) => {
            "SELECT position, stream, version, id, type, payload, metadata, ts FROM events WHERE type = ?1 ORDER BY position"
        }
    };
    let mut q = c.prepare_cached(sql).unwrap();
    let mut rows = q.query(rusqlite::params_from_iter(event_type)).unwrap();
    let (mut n, mut sum) = (0u64, 0u64);
    while let Some(r) = rows.next().unwrap() {
        let int = |i| r.get_ref(i).unwrap().as_i64().unwrap() as u64;
        let text = |i| r.get_ref(i).unwrap().as_str().unwrap();
        let blob = |i| r.get_ref(i).unwrap().as_blob().unwrap();
        sum = sum.wrapping_add(touch(
            [int(0), int(2), int(7)],
            blob(3),
            [text(1), text(4)],
            blob(5),
            text(6),
        ));
        n += 1;
    }
    (n, std::hint::black_box(sum))
}

// ---------------------------------------------------------------------------------------------
// Rounds and figures

/// Median and range of one system's per-round figures.
#[derive(Clone, Copy)]
struct Fig {
    med: f64,
    min: f64,
    max: f64,
}

impl Fig {
    fn of(mut v: Vec<f64>) -> Fig {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Fig {
            med: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// Runs `rounds` rounds; in each, every measurement in turn. Returns each one's figures.
fn interleaved<const K: usize>(rounds: usize, mut fs: [&mut dyn FnMut() -> f64; K]) -> [Fig; K] {
    let mut v: [Vec<f64>; K] = std::array::from_fn(|_| Vec::new());
    for _ in 0..rounds {
        for (f, out) in fs.iter_mut().zip(v.iter_mut()) {
            out.push(f());
        }
    }
    v.map(Fig::of)
}

/// Events per second of `f`, which returns how many events it handled.
fn per_sec(f: impl FnOnce() -> u64) -> f64 {
    let t = Instant::now();
    let n = f();
    n as f64 / t.elapsed().as_secs_f64()
}

/// A rate in events/s (`unit` ""), or milliseconds (`unit` "ms"), without its unit.
fn num(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{v:.2}"),
        _ if v >= 1e6 => format!("{:.2}M", v / 1e6),
        _ => format!("{:.1}k", v / 1e3),
    }
}

/// Events per second of appending `batches`, each with one call of `append`.
fn batch_rate(
    batches: &[Vec<(String, Vec<EventData>)>],
    mut append: impl FnMut(&[(String, Vec<EventData>)]),
) -> f64 {
    per_sec(|| {
        batches.iter().for_each(|b| append(b));
        batches.iter().flatten().map(|(_, e)| e.len() as u64).sum()
    })
}

fn fmt(v: f64, unit: &str) -> String {
    format!(
        "{} {}",
        num(v, unit),
        if unit == "ms" { "ms" } else { "ev/s" }
    )
}

/// The median and, in brackets, the range of the rounds.
fn fig(f: Fig, unit: &str) -> String {
    format!(
        "{} ({}..{})",
        fmt(f.med, unit),
        num(f.min, unit),
        num(f.max, unit)
    )
}

/// Prints one operation: both systems, the ratio evlog/SQLite of the medians, the goal.
fn report(name: &str, unit: &str, evlog: Fig, sqlite: Fig, goal: &str, extra: &str) {
    println!(
        "{name:<44} | evlog {} | SQLite {} | evlog/SQLite {:.2} (goal {goal}){extra}",
        fig(evlog, unit),
        fig(sqlite, unit),
        evlog.med / sqlite.med
    );
}

/// zstd's decompression of every compressed segment in `dir`, block by block into one buffer
/// that stays in the processor's cache (no page faults, no checks, no events walked), on one
/// thread: the best of three passes in bytes/s, and the bytes of the images.
fn zstd_alone(dir: &Path) -> (f64, u64) {
    let segs = common::compressed_segments(dir);
    let bytes: u64 = segs.iter().map(|(_, l)| l.image_len).sum();
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let mut out = vec![0u8; 4 << 20];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        common::zstd_over_blocks(&segs, &mut dec, &mut out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (bytes as f64 / best, bytes)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, rounds, cold_rounds, open_rounds, n_batches, batch_rounds) = if quick {
        (100_000u64, 3, 2, 5, 100, 5)
    } else {
        (1_000_000u64, 5, 3, 7, 500, 10)
    };
    let t_all = Instant::now();
    println!(
        "the shapes users run: {n} events over {STANDARD_STREAMS} streams, one event per append; evlog (64 MiB segments, sealed + compressed) vs SQLite {} (WAL); load average {}",
        rusqlite::version(),
        load_average()
    );

    // The load: the same events into both, one event per append.
    let evlog_dir = tempfile::tempdir().unwrap();
    let sqlite_dir = tempfile::tempdir().unwrap();
    let db = sqlite_dir.path().join("events.db");
    let (mut pmin, mut pmax, mut msum) = (usize::MAX, 0, 0);
    let t = Instant::now();
    {
        let store = evlog_options(Durability::Never)
            .open(evlog_dir.path())
            .unwrap();
        let mut g = Events::new(21);
        for _ in 0..n {
            let (s, e) = g.next_event();
            (pmin, pmax) = (pmin.min(e.payload.len()), pmax.max(e.payload.len()));
            msum += meta_of(&e).len();
            store
                .append(&s, expected(store.stream_version(&s)), &[e])
                .unwrap();
        }
        let loaded = t.elapsed().as_secs_f64();
        store.seal_active().unwrap();
        let c = store.compress_sealed().unwrap();
        store.close().unwrap();
        println!(
            "load: payloads {pmin}-{pmax} bytes, metadata value {:.0} bytes on average; evlog (Durability::Never, ExpectedVersion::Exact) {:.1} s ({}), sealed + compressed {} segments {:.1} -> {:.1} MB in {:.1} s; {:.1} MB on disk",
            msum as f64 / n as f64,
            loaded,
            fmt(n as f64 / loaded, ""),
            c.segments,
            c.bytes_before as f64 / 1e6,
            c.bytes_after as f64 / 1e6,
            t.elapsed().as_secs_f64() - loaded,
            evlog::stats::stats_dir(evlog_dir.path())
                .unwrap()
                .bytes_on_disk as f64
                / 1e6
        );
    }
    let t = Instant::now();
    {
        let mut c = sqlite_open(&db, false);
        c.execute_batch(SCHEMA).unwrap();
        let mut g = Events::new(21);
        let mut last: HashMap<String, u64> = HashMap::new();
        for _ in 0..n {
            let (s, e) = g.next_event();
            let v = last.get(&s).copied();
            sqlite_append(&mut c, &[(&s, v, std::slice::from_ref(&e))]);
            last.insert(s, v.map_or(0, |v| v + 1));
        }
    }
    println!(
        "load: SQLite (synchronous=OFF, one BEGIN IMMEDIATE transaction per event) {:.1} s ({}); {:.1} MB on disk",
        t.elapsed().as_secs_f64(),
        fmt(n as f64 / t.elapsed().as_secs_f64(), ""),
        std::fs::metadata(&db).unwrap().len() as f64 / 1e6
    );

    // 1 and 2: warm replays. One pass of each first fills the page cache and evlog's cache of
    // decompressed images.
    let warm_meta = {
        let store = evlog_options(Durability::Never)
            .open(evlog_dir.path())
            .unwrap();
        let conn = sqlite_open(&db, false);
        let all = ReadFilter::all();
        let one = ReadFilter::all().event_types([ONE_TYPE]);
        assert_eq!(evlog_replay(&store, &all, true).0, n);
        assert_eq!(sqlite_replay(&conn, None).0, n);
        let [meta, no_meta, sql] = interleaved(
            rounds,
            [
                &mut || per_sec(|| evlog_replay(&store, &all, true).0),
                &mut || per_sec(|| evlog_replay(&store, &all, false).0),
                &mut || per_sec(|| sqlite_replay(&conn, None).0),
            ],
        );
        report(
            "1. replay all, warm, reading metadata",
            "",
            meta,
            sql,
            ">= 3",
            &format!(
                " | evlog without reading metadata {}: {:.2} of it (goal >= 0.7)",
                fig(no_meta, ""),
                meta.med / no_meta.med
            ),
        );
        let matched = evlog_replay(&store, &one, true).0;
        assert_eq!(sqlite_replay(&conn, Some(ONE_TYPE)).0, matched);
        let [ev, sql] = interleaved(
            rounds,
            [
                &mut || per_sec(|| evlog_replay(&store, &one, true).0),
                &mut || per_sec(|| sqlite_replay(&conn, Some(ONE_TYPE)).0),
            ],
        );
        report(
            "2. replay one type in 7, warm (matched/s)",
            "",
            ev,
            sql,
            ">= 3",
            &format!(" | {matched} matched"),
        );
        meta.med
    };

    // 3: cold replays, each after dropping the page cache (and emptying evlog's image cache),
    // from a freshly opened store or connection; the open is not timed.
    let dirs = [evlog_dir.path(), sqlite_dir.path()];
    let how = std::cell::Cell::new("");
    let evict = || how.set(common::make_cold(&dirs));
    let [ev, sql] = interleaved(
        cold_rounds,
        [
            &mut || {
                evict();
                let store = evlog_options(Durability::Never)
                    .open(evlog_dir.path())
                    .unwrap();
                per_sec(|| evlog_replay(&store, &ReadFilter::all(), true).0)
            },
            &mut || {
                evict();
                let conn = sqlite_open(&db, false);
                per_sec(|| sqlite_replay(&conn, None).0)
            },
        ],
    );
    report(
        "3. replay all, cold, reading metadata",
        "",
        ev,
        sql,
        ">= 2",
        &format!(" | cache dropped by {}", how.get()),
    );
    // What a cold replay has to do at least, on this machine's processors: zstd over every
    // image (measured alone, into a buffer in cache) and the walk of a warm replay (goal 1's
    // rate), spread perfectly over all of them, with no disk wait, page fault or check. No
    // replay can beat it.
    let (zstd_rate, image_bytes) = zstd_alone(evlog_dir.path());
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let work = image_bytes as f64 / zstd_rate + n as f64 / warm_meta;
    let bound = n as f64 / (work / cpus);
    println!(
        "   its processor work at least: zstd alone {:.2} GB/s on one thread ({} MB of images) plus goal 1's walk, over {cpus} processors: at most {}, {:.2} x SQLite's cold replay",
        zstd_rate / 1e9,
        image_bytes >> 20,
        fmt(bound, ""),
        bound / sql.med
    );

    // 5: open a cleanly closed store and make its first durable append to a new stream.
    let mut g = Events::new(55);
    let mut k = 0;
    let mut new_event = || {
        k += 1;
        (format!("reopened-{k}"), g.event())
    };
    let new_event = std::cell::RefCell::new(&mut new_event);
    let [ev, sql] = interleaved(
        open_rounds,
        [
            &mut || {
                let (s, e) = (new_event.borrow_mut())();
                let t = Instant::now();
                let store = evlog_options(Durability::Always)
                    .open(evlog_dir.path())
                    .unwrap();
                store.append(&s, ExpectedVersion::NoStream, &[e]).unwrap();
                let ms = t.elapsed().as_secs_f64() * 1e3;
                store.close().unwrap();
                ms
            },
            &mut || {
                let (s, e) = (new_event.borrow_mut())();
                let t = Instant::now();
                let mut c = sqlite_open(&db, true);
                sqlite_append(&mut c, &[(&s, None, std::slice::from_ref(&e))]);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                drop(c);
                ms
            },
        ],
    );
    report(
        "5. open + first durable append (ms)",
        "ms",
        ev,
        sql,
        "<= 0.75",
        "",
    );

    // 4: durable batches of 100 events, each to another of 100 distinct streams, one fsync per
    // batch, every stream's version checked; into the loaded stores.
    let mut g = Events::new(44);
    let batches: Vec<_> = (0..n_batches).map(|_| g.batch(100)).collect();
    let store = evlog_options(Durability::Always)
        .open(evlog_dir.path())
        .unwrap();
    let mut conn = sqlite_open(&db, true);
    let last: HashMap<String, Option<u64>> = (0..STANDARD_STREAMS)
        .map(Workload::stream_name)
        .map(|s| (s.clone(), store.stream_version(&s)))
        .collect();
    let (mut ev_last, mut sql_last) = (last.clone(), last);
    let mut ev_chunks = batches.chunks(n_batches / batch_rounds);
    let mut sql_chunks = ev_chunks.clone();
    let [ev, sql] = interleaved(
        batch_rounds,
        [
            &mut || {
                batch_rate(ev_chunks.next().unwrap(), |b| {
                    let req: Vec<_> = b
                        .iter()
                        .map(|(s, e)| (s, expected(ev_last[s]), e))
                        .collect();
                    let r = store.append_multi(&req).unwrap();
                    note(&mut ev_last, b, r.iter().map(|r| r.next_expected_version));
                })
            },
            &mut || {
                batch_rate(sql_chunks.next().unwrap(), |b| {
                    let req: Vec<_> = b
                        .iter()
                        .map(|(s, e)| (s.as_str(), sql_last[s], e.as_slice()))
                        .collect();
                    note(&mut sql_last, b, sqlite_append(&mut conn, &req).into_iter());
                })
            },
        ],
    );
    report(
        "4. durable batches of 100 (100 streams each)",
        "",
        ev,
        sql,
        ">= 10",
        &format!(" | {n_batches} batches in {batch_rounds} rounds"),
    );

    println!(
        "total {:.1} s; load average {}",
        t_all.elapsed().as_secs_f64(),
        load_average()
    );
}
