//! Durable appends from N threads (one event per append), for profiling group commit.
use evlog::workload::Workload;
use evlog::*;
use std::sync::Arc;
fn run(threads: usize, per: usize) -> f64 {
    let dir = tempfile::tempdir_in(std::env::var("PROBE_DIR").unwrap_or("/tmp".into())).unwrap();
    let store = Arc::new(
        StoreOptions::new()
            .durability(Durability::Always)
            .open(dir.path())
            .unwrap(),
    );
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let mut w = Workload::standard(100 + k as u64);
            let evs: Vec<_> = (0..per).map(|_| w.next_event()).collect();
            std::thread::spawn(move || {
                barrier.wait();
                for (s, e) in &evs {
                    store
                        .append(s, ExpectedVersion::Any, std::slice::from_ref(e))
                        .unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let t = std::time::Instant::now();
    for h in hs {
        h.join().unwrap();
    }
    (threads * per) as f64 / t.elapsed().as_secs_f64()
}
fn main() {
    let per: usize = std::env::args().nth(1).map_or(1000, |v| v.parse().unwrap());
    for _ in 0..3 {
        let one = run(1, per * 2);
        let eight = run(8, per);
        println!(
            "1 thread {one:.0}/s, 8 threads {eight:.0}/s, ratio {:.2}",
            eight / one
        );
    }
}
