//! The compression, replay and snapshot figures of BENCHMARKS.md (issue: compression,
//! snapshots, retention and compaction), each beside its baseline measured in the same run.
//!
//! `cargo bench --bench compression` (1,000,000 events, 64 MiB segments) or `-- --quick`
//! (100,000 events, 4 MiB segments). The store is filled with the standard workload, closed,
//! reopened and every sealed segment compressed; then it measures bytes on disk, replay (all
//! events, one and two threads; one event type; cold page cache), whole-stream reads and an
//! aggregate load from a snapshot. Baselines: the same store before compression, and a bare
//! zstd decode of the same events' bytes (64 KiB blocks, level 3).

use std::time::Instant;

use evlog::snapshot::Aggregate;
use evlog::workload::{EVENT_TYPES, Rng, Workload};
use evlog::{
    Direction, Durability, EventData, ExpectedVersion, ReadFilter, RecordedEvent, SnapshotStore,
    Store, StoreOptions,
};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut f: impl FnMut() -> f64, runs: usize) -> f64 {
    let mut v: Vec<f64> = (0..runs).map(|_| f()).collect();
    pct(&mut v, 0.5)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Payload and metadata bytes of an event as the application gave them.
fn raw_bytes(e: &EventData) -> u64 {
    let m = &e.metadata;
    let ids = usize::from(m.correlation_id.is_some()) + usize::from(m.causation_id.is_some());
    let extra: usize = m.extra.iter().map(|(k, v)| k.len() + v.len()).sum();
    (e.payload.len() + 36 * ids + extra) as u64
}

/// Replays every event from `from` to `to` (exclusive) and returns how many it saw.
fn replay(store: &Store, from: u64, to: u64, filter: ReadFilter) -> u64 {
    let mut n = 0;
    for e in store.read_all(from, Direction::Forward, filter) {
        let e = e.unwrap();
        if e.position >= to {
            break;
        }
        n += 1;
    }
    n
}

/// Replays `from..to` through [`Store::replay`] (borrowed events) and returns how many passed.
fn replay_borrowed(store: &Store, from: u64, to: u64, filter: &ReadFilter) -> u64 {
    let mut bytes = 0usize;
    let end = store
        .replay(from, to, filter, |e| {
            bytes += e.payload.len();
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    std::hint::black_box(bytes);
    end.events
}

fn rate(mut f: impl FnMut() -> u64) -> f64 {
    median(
        || {
            let t = Instant::now();
            let n = f();
            n as f64 / t.elapsed().as_secs_f64()
        },
        3,
    )
}

fn replay_rate(store: &Store, head: u64) -> f64 {
    median(
        || {
            let t = Instant::now();
            let n = replay(store, 0, head, ReadFilter::all());
            n as f64 / t.elapsed().as_secs_f64()
        },
        3,
    )
}

fn replay_two_threads(store: &Store, head: u64) -> f64 {
    median(
        || {
            let t = Instant::now();
            let n: u64 = std::thread::scope(|s| {
                let a = s.spawn(|| replay(store, 0, head / 2, ReadFilter::all()));
                let b = s.spawn(|| replay(store, head / 2, head, ReadFilter::all()));
                a.join().unwrap() + b.join().unwrap()
            });
            n as f64 / t.elapsed().as_secs_f64()
        },
        3,
    )
}

fn replay_type(store: &Store, head: u64) -> f64 {
    median(
        || {
            let t = Instant::now();
            let n = replay(
                store,
                0,
                head,
                ReadFilter::all().event_types([EVENT_TYPES[4]]),
            );
            n as f64 / t.elapsed().as_secs_f64()
        },
        3,
    )
}

fn stream_reads_borrowed(store: &Store) -> (f64, f64) {
    let mut rng = Rng::new(5);
    let mut lat = Vec::new();
    for _ in 0..5000 {
        let s = Workload::stream_name(rng.below(10_000));
        let t = Instant::now();
        let mut bytes = 0;
        store
            .replay_stream(&s, 0, |e| {
                bytes += e.payload.len();
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        std::hint::black_box(bytes);
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

fn stream_reads(store: &Store) -> (f64, f64) {
    for i in 0..10_000 {
        let _ = store
            .read_stream(&Workload::stream_name(i), 0, Direction::Forward, usize::MAX)
            .count();
    }
    let mut rng = Rng::new(5);
    let mut lat = Vec::new();
    for _ in 0..5000 {
        let s = Workload::stream_name(rng.below(10_000));
        let t = Instant::now();
        for e in store.read_stream(&s, 0, Direction::Forward, usize::MAX) {
            e.unwrap();
        }
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

/// Drops the page cache (needs root); false when it cannot.
fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Ledger {
    events: u64,
    bytes: u64,
    last_type: String,
}

impl Aggregate for Ledger {
    const SCHEMA_VERSION: u32 = 1;
    fn apply(&mut self, e: &RecordedEvent) {
        self.events += 1;
        self.bytes += e.payload.len() as u64;
        self.last_type.clear();
        self.last_type.push_str(&e.event_type);
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 100_000 } else { 1_000_000 };
    let seg = if quick { 4 << 20 } else { 64 << 20 };
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(seg);
    let mut w = Workload::standard(3);
    let mut raw = 0u64;
    let mut plain = Vec::new();
    {
        let store = opts.open(dir.path()).unwrap();
        for _ in 0..n {
            let (s, e) = w.next_event();
            raw += raw_bytes(&e);
            plain.extend_from_slice(&e.payload);
            store.append(&s, ExpectedVersion::Any, &[e]).unwrap();
        }
        store.close().unwrap();
    }
    println!("standard workload: {n} events, {raw} bytes of payload + metadata");
    let store = opts.open(dir.path()).unwrap();
    let head = store.head_position().unwrap() + 1;
    let before = dir_bytes(dir.path());
    let r_plain = replay_rate(&store, head);
    let t_plain = replay_type(&store, head);
    let (s50_plain, s99_plain) = stream_reads(&store);
    let (b50_plain, b99_plain) = stream_reads_borrowed(&store);

    // "After sealing and compression": the active segment is sealed too.
    store.seal_active().unwrap();
    let t = Instant::now();
    let rep = store.compress_sealed().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let after = dir_bytes(dir.path());
    let (sealed, compressed) = store.sealed_segments();
    println!(
        "compressed {} of {sealed} sealed segments in {secs:.2} s ({:.0} MB/s): {} -> {} bytes ({:.2}x)",
        rep.segments,
        rep.bytes_before as f64 / secs / 1e6,
        rep.bytes_before,
        rep.bytes_after,
        rep.bytes_before as f64 / rep.bytes_after as f64
    );
    assert_eq!(compressed, sealed);
    println!(
        "bytes on disk, all files: {after} = {:.1}% of payload + metadata (before compression {before} = {:.1}%)",
        100.0 * after as f64 / raw as f64,
        100.0 * before as f64 / raw as f64
    );
    // Bare zstd of the payloads alone, 64 KiB blocks, level 3: the compression baseline.
    let blocks: Vec<Vec<u8>> = plain
        .chunks(64 << 10)
        .map(|c| zstd::bulk::compress(c, 3).unwrap())
        .collect();
    let zbytes: usize = blocks.iter().map(Vec::len).sum();
    let bare_decode = median(
        || {
            let mut d = zstd::bulk::Decompressor::new().unwrap();
            let t = Instant::now();
            for b in &blocks {
                std::hint::black_box(d.decompress(b, 64 << 10).unwrap());
            }
            n as f64 / t.elapsed().as_secs_f64()
        },
        3,
    );
    println!(
        "bare zstd of the payloads alone (64 KiB blocks, level 3): {:.1}% of their bytes; decode {:.2} M events/s",
        100.0 * zbytes as f64 / plain.len() as f64,
        bare_decode / 1e6
    );

    let r1 = replay_rate(&store, head);
    println!(
        "replay all, warm, 1 thread: {:.2} M events/s (uncompressed store: {:.2} M/s; ratio {:.2}; bare zstd decode {:.2} M/s)",
        r1 / 1e6,
        r_plain / 1e6,
        r1 / r_plain,
        bare_decode / 1e6
    );
    let r2 = replay_two_threads(&store, head);
    println!(
        "replay all, warm, 2 threads: {:.2} M events/s ({:.2}x one thread)",
        r2 / 1e6,
        r2 / r1
    );
    let all = ReadFilter::all();
    let b1 = rate(|| replay_borrowed(&store, 0, head, &all));
    let b2 = rate(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| replay_borrowed(&store, 0, head / 2, &all));
            let b = s.spawn(|| replay_borrowed(&store, head / 2, head, &all));
            a.join().unwrap() + b.join().unwrap()
        })
    });
    let one_type = ReadFilter::all().event_types([EVENT_TYPES[4]]);
    let bt = rate(|| replay_borrowed(&store, 0, head, &one_type));
    println!(
        "Store::replay (borrowed events), warm: 1 thread {:.2} M events/s, 2 threads {:.2} M/s ({:.2}x), one type (1 in 7) {:.2} M matching/s",
        b1 / 1e6,
        b2 / 1e6,
        b2 / b1,
        bt / 1e6
    );
    let rt = replay_type(&store, head);
    println!(
        "replay one type (1 in 7), warm: {:.2} M matching events/s (uncompressed store: {:.2} M/s)",
        rt / 1e6,
        t_plain / 1e6
    );
    let (s50, s99) = stream_reads(&store);
    println!(
        "read one whole stream, warm: p50 {s50:.1} us, p99 {s99:.1} us (uncompressed store: p50 {s50_plain:.1}, p99 {s99_plain:.1})"
    );
    let (b50, b99) = stream_reads_borrowed(&store);
    println!(
        "read one whole stream through Store::replay_stream, warm: p50 {b50:.1} us, p99 {b99:.1} us (uncompressed store: p50 {b50_plain:.1}, p99 {b99_plain:.1})"
    );
    drop(store);
    // Cold: nothing in the page cache and no decompressed image kept in this process.
    evlog::segment::set_image_cache_bytes(0);
    let cold = drop_page_cache();
    evlog::segment::set_image_cache_bytes(evlog::segment::DEFAULT_IMAGE_CACHE_BYTES);
    if cold {
        let store = opts.open(dir.path()).unwrap();
        let t = Instant::now();
        let c = replay(&store, 0, head, ReadFilter::all());
        let owned = c as f64 / t.elapsed().as_secs_f64() / 1e6;
        drop(store);
        evlog::segment::set_image_cache_bytes(0);
        drop_page_cache();
        evlog::segment::set_image_cache_bytes(evlog::segment::DEFAULT_IMAGE_CACHE_BYTES);
        let store = opts.open(dir.path()).unwrap();
        let t = Instant::now();
        let c = replay_borrowed(&store, 0, head, &ReadFilter::all());
        println!(
            "replay all, cold page cache, 1 thread: {owned:.2} M events/s; Store::replay {:.2} M events/s",
            c as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    } else {
        println!("replay all, cold page cache: not measured (dropping the page cache needs root)");
    }

    // An aggregate of 10,000 events with a snapshot at version 9,900.
    let store = opts.open(dir.path()).unwrap();
    let mut w = Workload::standard(8);
    for _ in 0..10_000 {
        let e = w.event_of_type(5);
        store
            .append("big-aggregate", ExpectedVersion::Any, &[e])
            .unwrap();
    }
    let snaps = SnapshotStore::open(&store);
    let mut state = Ledger::default();
    for e in store.read_stream("big-aggregate", 0, Direction::Forward, 9_900) {
        state.apply(&e.unwrap());
    }
    snaps.save_state("big-aggregate", 9_899, &state).unwrap();
    let mut lat = Vec::new();
    let mut full = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let l = snaps.load::<Ledger>(&store, "big-aggregate").unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!((l.events_applied, l.state.events), (100, 10_000));
        let t = Instant::now();
        let mut s = Ledger::default();
        for e in store.read_stream("big-aggregate", 0, Direction::Forward, usize::MAX) {
            s.apply(&e.unwrap());
        }
        full.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "load an aggregate of 10,000 events from a snapshot at 9,900: median {:.0} us, p99 {:.0} us (full replay of its events: {:.0} us)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut full, 0.5)
    );
}
