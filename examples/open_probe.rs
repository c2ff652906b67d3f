//! Fills a store with the standard workload once (`N` events, one per append, 10,000 streams,
//! sealed and compressed when `seal` is given), then times, in rounds: the open alone, the first
//! durable append (`Durability::Always`, a new stream) after it, a second one, and the close.
//!
//! `cargo run --release --example open_probe -- DIR N [seal]` (DIR on the disk to measure: a
//! tmpfs makes every fsync free)
use evlog::workload::Workload;
use evlog::*;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    if !dir.exists() {
        let s = StoreOptions::new()
            .durability(Durability::Never)
            .open(&dir)
            .unwrap();
        Workload::standard(1).append_to(&s, n).unwrap();
        if args.iter().any(|a| a == "seal") {
            s.seal_active().unwrap();
            s.compress_sealed().unwrap();
        }
        s.close().unwrap();
    }
    // Fresh ids each time: an id the store already holds would make the append a re-send.
    let event = || [EventData::new("P", b"{}".to_vec())];
    let mut rows = Vec::new();
    for _ in 0..15 {
        let stream = format!("probe-{}", Uuid::new_v4());
        let t = Instant::now();
        let s = StoreOptions::new()
            .durability(Durability::Always)
            .open(&dir)
            .unwrap();
        let open = t.elapsed();
        let t1 = Instant::now();
        s.append(&stream, ExpectedVersion::NoStream, &event())
            .unwrap();
        let first = t1.elapsed();
        let t2 = Instant::now();
        s.append(&stream, ExpectedVersion::Exact(0), &event())
            .unwrap();
        let second = t2.elapsed();
        let t3 = Instant::now();
        s.close().unwrap();
        let close = t3.elapsed();
        rows.push([open, first, second, close, open + first].map(|d| d.as_secs_f64() * 1e3));
    }
    let names = [
        "open",
        "first durable append",
        "second durable append",
        "close",
        "open + first append",
    ];
    for (k, name) in names.iter().enumerate() {
        let mut v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{name:>22}: median {:.3} ms (min {:.3})",
            v[v.len() / 2],
            v[0]
        );
    }
}
