//! One event type in seven, replayed from evlog and from SQLite in the same run, on the outside
//! benchmark's shape: N events (one per append) of the standard workload (10,000 streams, 7
//! types), evlog with 64 MiB segments sealed and compressed after the load, SQLite (bundled,
//! WAL, `synchronous=OFF`) with an index on the type column.
//!
//! ```text
//! cargo run --release --example typed_replay_sqlite -- DIR 1000000 [ROUNDS]
//! ```
//!
//! Fills `DIR/evlog` and `DIR/sqlite.db` once (kept for later runs), then runs ROUNDS (5)
//! interleaved rounds of: evlog `Store::replay` (borrowed events), evlog `Store::read_all`
//! (owned events), and SQLite `SELECT ... WHERE type = ? ORDER BY position` (owned rows: every
//! column read into owned values), each for one type. Prints each round and the medians, in
//! matched events per second. The first round is the warm-up (page cache, image cache) and is
//! left out of the medians. SQLite stores the metadata as text; evlog decodes it.
use std::ops::ControlFlow;
use std::time::Instant;

use evlog::workload::{EVENT_TYPES, Workload};
use evlog::{Direction, Durability, ExpectedVersion, ReadFilter, StoreOptions};
use rusqlite::Connection;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    let rounds: usize = args.get(3).map_or(5, |r| r.parse().unwrap());
    let opts = StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(64 << 20);
    let evlog_dir = dir.join("evlog");
    let db_path = dir.join("sqlite.db");
    if !evlog_dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let s = opts.open(&evlog_dir).unwrap();
        let mut db = Connection::open(&db_path).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA mmap_size=1073741824;
             CREATE TABLE events(position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
               version INTEGER NOT NULL, id BLOB NOT NULL, type TEXT NOT NULL,
               payload BLOB NOT NULL, metadata TEXT NOT NULL, ts INTEGER NOT NULL);",
        )
        .unwrap();
        let tx = db.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .unwrap();
            let mut w = Workload::standard(1);
            for _ in 0..n {
                let (stream, e) = w.next_event();
                let r = s
                    .append(&stream, ExpectedVersion::Any, std::slice::from_ref(&e))
                    .unwrap();
                ins.execute(rusqlite::params![
                    r.first_position as i64,
                    stream,
                    r.next_expected_version as i64,
                    e.id.as_bytes().as_slice(),
                    e.event_type,
                    e.payload,
                    format!("{:?}", e.metadata),
                    r.first_position as i64,
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        db.execute_batch("CREATE INDEX events_type ON events(type);")
            .unwrap();
        s.seal_active().unwrap();
        s.compress_sealed().unwrap();
        s.close().unwrap();
    }
    let s = opts.open(&evlog_dir).unwrap();
    let db = Connection::open(&db_path).unwrap();
    db.execute_batch("PRAGMA mmap_size=1073741824;").unwrap();
    let t = EVENT_TYPES[4];
    let filter = ReadFilter::all().event_types([t]);
    let mut figs: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (k, fig) in figs.iter_mut().enumerate() {
            let start = Instant::now();
            let matched = match k {
                0 => {
                    s.replay(0, u64::MAX, &filter, |e| {
                        std::hint::black_box(e);
                        ControlFlow::Continue(())
                    })
                    .unwrap()
                    .events
                }
                1 => s
                    .read_all(0, Direction::Forward, filter.clone())
                    .map(|e| {
                        std::hint::black_box(e.unwrap());
                        1
                    })
                    .sum(),
                _ => {
                    let mut q = db
                        .prepare_cached(
                            "SELECT position, stream, version, id, type, payload, metadata, ts \
                             FROM events WHERE type = ?1 ORDER BY position",
                        )
                        .unwrap();
                    let rows = q
                        .query_map([t], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, i64>(2)?,
                                r.get::<_, Vec<u8>>(3)?,
                                r.get::<_, String>(4)?,
                                r.get::<_, Vec<u8>>(5)?,
                                r.get::<_, String>(6)?,
                                r.get::<_, i64>(7)?,
                            ))
                        })
                        .unwrap();
                    rows.map(|r| {
                        std::hint::black_box(r.unwrap());
                        1
                    })
                    .sum()
                }
            };
            let rate = matched as f64 / start.elapsed().as_secs_f64() / 1e6;
            if round > 0 {
                fig.push(rate);
            }
            line += &format!(
                " {} {matched} matched at {rate:.3} M/s;",
                ["evlog replay", "evlog read_all", "sqlite"][k]
            );
        }
        println!("{line}");
    }
    if rounds > 1 {
        let [a, b, c] = figs.map(median);
        println!(
            "medians (matched events/s): evlog replay {a:.3} M, evlog read_all {b:.3} M, \
             sqlite {c:.3} M; replay / sqlite {:.1}x, read_all / sqlite {:.1}x",
            a / c,
            b / c
        );
    }
}
