//! The storage-core figures of BENCHMARKS.md, each beside its baseline measured in the same run.
//!
//! `cargo bench --bench report` (1,000,000 events), `-- --quick` (100,000 events),
//! `-- --full` (adds the 10,000,000-event open time and memory). Prints medians and p99s.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evlog::workload::Workload;
use evlog::{Direction, Durability, EventData, ExpectedVersion, StoreOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Baseline for a latency's tail: the p50 and p99 (µs) of 5,000 runs of a fixed amount of
/// arithmetic whose median takes `p50_us`, measured right after the latencies it stands beside.
/// It touches no memory, so its tail is what the machine itself adds to work of that length
/// (interrupts, the hypervisor's ticks).
fn fixed_work_tail(p50_us: f64) -> (f64, f64) {
    let work = |iters: u64| {
        let mut x = std::hint::black_box(1u64);
        for _ in 0..iters {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        std::hint::black_box(x);
    };
    let time = |iters: u64| {
        let t = Instant::now();
        work(iters);
        t.elapsed().as_nanos() as f64 / 1000.0
    };
    let mut cal: Vec<f64> = (0..200).map(|_| time(10_000)).collect();
    let iters = (10_000.0 * p50_us / pct(&mut cal, 0.5)).max(1.0) as u64;
    let mut lat: Vec<f64> = (0..5000).map(|_| time(iters)).collect();
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

fn events(n: usize, seed: u64) -> Vec<(String, EventData)> {
    let mut w = Workload::standard(seed);
    (0..n).map(|_| w.next_event()).collect()
}

/// Bare baseline: pwrite `size` bytes at the end of a file and fdatasync, `n` times. With
/// `zeroed`, the file is first filled with zeros (written and fsynced before the clock starts),
/// as a durable evlog writer does ahead of its frames: each fdatasync then flushes data only.
fn bare_write_sync(dir: &std::path::Path, size: usize, n: usize, zeroed: bool) -> f64 {
    let p = dir.join("bare");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    if zeroed {
        f.write_all_at(&vec![0u8; size * n], 0).unwrap();
        f.sync_all().unwrap();
    }
    let buf = vec![0x5au8; size];
    let t = Instant::now();
    for i in 0..n {
        f.write_all_at(&buf, (i * size) as u64).unwrap();
        f.sync_data().unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    std::fs::remove_file(&p).unwrap();
    rate
}

fn durable_single(n: usize) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_write_sync(dir.path(), 4096, n, false);
    let bare_zeroed = bare_write_sync(dir.path(), 4096, n, true);
    (durable_one_writer(n), bare, bare_zeroed)
}

/// Appends per second of one writer, `n` single-event durable appends to a new store.
fn durable_one_writer(n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(n, 1);
    let store = StoreOptions::new()
        .durability(Durability::Always)
        .open(dir.path().join("s"))
        .unwrap();
    let t = Instant::now();
    for (s, e) in &evs {
        store
            .append(s, ExpectedVersion::Any, std::slice::from_ref(e))
            .unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn durable_threads(threads: usize, per_thread: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        StoreOptions::new()
            .durability(Durability::Always)
            .open(dir.path())
            .unwrap(),
    );
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let store = store.clone();
            let barrier = barrier.clone();
            let evs = events(per_thread, 100 + k as u64);
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
    let t = Instant::now();
    for h in hs {
        h.join().unwrap();
    }
    (threads * per_thread) as f64 / t.elapsed().as_secs_f64()
}

fn durable_batches(batches: usize) -> (f64, f64, f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .durability(Durability::Always)
        .open(dir.path().join("s"))
        .unwrap();
    let mut w = Workload::standard(7);
    let all: Vec<Vec<EventData>> = (0..batches)
        .map(|_| (0..100).map(|_| w.next_event().1).collect())
        .collect();
    let t = Instant::now();
    for (i, b) in all.iter().enumerate() {
        store
            .append(&Workload::stream_name(i as u64), ExpectedVersion::Any, b)
            .unwrap();
    }
    let rate = batches as f64 / t.elapsed().as_secs_f64();
    drop(store);
    let seg_bytes: u64 = std::fs::read_dir(dir.path().join("s"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let per_batch = (seg_bytes as usize - 64) / batches;
    let bare = bare_write_sync(dir.path(), per_batch, batches, false);
    let bare_zeroed = bare_write_sync(dir.path(), per_batch, batches, true);
    (rate, bare, bare_zeroed, per_batch)
}

fn nondurable_latency(n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    let evs = events(n, 3);
    let mut lat = Vec::with_capacity(n);
    for (s, e) in &evs {
        let t = Instant::now();
        store
            .append(s, ExpectedVersion::Any, std::slice::from_ref(e))
            .unwrap();
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

fn fill(dir: &std::path::Path, n: usize, seed: u64) {
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    let mut w = Workload::standard(seed);
    for _ in 0..n {
        let (s, e) = w.next_event();
        store.append(&s, ExpectedVersion::Any, &[e]).unwrap();
    }
    store.close().unwrap();
}

fn rss_anon_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_and_read(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    fill(dir.path(), n, 11);
    println!("filled {n} events in {:.1} s", t.elapsed().as_secs_f64());
    let mut opens = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let store = StoreOptions::new()
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap();
        store
            .append(
                "open-probe",
                ExpectedVersion::Any,
                &[EventData::new("Probe", b"{}".to_vec())],
            )
            .unwrap();
        opens.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(store);
    }
    let rss_before = rss_anon_kib();
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    println!(
        "open until first append, {n} events: median {:.2} ms (7 runs)",
        pct(&mut opens, 0.5)
    );
    // Warm reads of whole streams (~n/10,000 events each).
    let mut rng = evlog::workload::Rng::new(5);
    for i in 0..2000 {
        let _ = store
            .read_stream(
                &Workload::stream_name(i % 10_000),
                0,
                Direction::Forward,
                usize::MAX,
            )
            .count();
    }
    let mut lat = Vec::new();
    let mut total = 0;
    for _ in 0..5000 {
        let s = Workload::stream_name(rng.below(10_000));
        let t = Instant::now();
        let mut c = 0;
        for e in store.read_stream(&s, 0, Direction::Forward, usize::MAX) {
            e.unwrap();
            c += 1;
        }
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        total += c;
    }
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    let (b50, b99) = fixed_work_tail(p50);
    println!(
        "read one whole stream (avg {:.0} events), warm: p50 {p50:.1} us, p99 {p99:.1} us; \
         fixed work of the same median: p50 {b50:.1} us, p99 {b99:.1} us",
        total as f64 / 5000.0,
    );
    // The same reads through Store::replay_stream (borrowed events).
    let mut rng = evlog::workload::Rng::new(5);
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
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    let (b50, b99) = fixed_work_tail(p50);
    println!(
        "read one whole stream through Store::replay_stream (borrowed events), warm: p50 {p50:.1} us, \
         p99 {p99:.1} us; fixed work of the same median: p50 {b50:.1} us, p99 {b99:.1} us",
    );
    let t = Instant::now();
    let c = store
        .read_all(0, Direction::Forward, evlog::ReadFilter::all())
        .count();
    println!(
        "replay all {c} events: {:.0} events/s",
        c as f64 / t.elapsed().as_secs_f64()
    );
    drop(store);
    let _ = rss_before;
    // Resident memory is measured in a fresh process, so nothing this one holds counts.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--child-memory")
        .arg(dir.path())
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let _ = n;
}

/// In a fresh process: open the store, append 1,000 events, read 1,000 streams, print the
/// anonymous resident memory (mapped files excluded).
fn child_memory(dir: &std::path::Path) {
    let before = rss_anon_kib();
    let store = StoreOptions::new()
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    for (s, e) in events(1000, 99) {
        store.append(&s, ExpectedVersion::Any, &[e]).unwrap();
    }
    for i in 0..1000 {
        for e in store.read_stream(&Workload::stream_name(i), 0, Direction::Forward, usize::MAX) {
            e.unwrap();
        }
    }
    println!(
        "writer anonymous resident memory after open, 1,000 appends and 1,000 stream reads: {} KiB (at process start: {before} KiB)",
        rss_anon_kib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-memory") {
        child_memory(std::path::Path::new(&args[i + 1]));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let full = args.iter().any(|a| a == "--full");
    let n_sync = if quick { 300 } else { 2000 };
    let (rate, bare, bare_zeroed) = durable_single(n_sync);
    println!(
        "durable appends, 1 writer: {rate:.0}/s; bare 4 KiB pwrite+fdatasync: {bare:.0}/s; ratio {:.2} \
         (over a zero-filled file: {bare_zeroed:.0}/s; ratio {:.2})",
        rate / bare,
        rate / bare_zeroed
    );
    // The 8-thread rate against the 1-writer rate: three rounds, each measuring one writer and
    // then 8 threads (so that both see the same state of the disk), compared as medians.
    let mut ones = vec![rate];
    let mut eights = Vec::new();
    for round in 0..3 {
        if round > 0 {
            ones.push(durable_one_writer(n_sync));
        }
        eights.push(durable_threads(8, n_sync / 2));
    }
    let rounds: Vec<String> = ones
        .iter()
        .zip(&eights)
        .map(|(o, e)| format!("{:.2}", e / o))
        .collect();
    let (one, r8) = (pct(&mut ones, 0.5), pct(&mut eights, 0.5));
    println!(
        "durable appends, 8 threads: {r8:.0}/s (median of 3); 1 writer beside them: {one:.0}/s (median of 3); \
         ratio {:.2} (rounds: {})",
        r8 / one,
        rounds.join(", ")
    );
    let (rb, bareb, bareb_zeroed, per) = durable_batches(if quick { 100 } else { 500 });
    println!(
        "durable batches of 100: {rb:.0} batches/s; bare {per}-byte pwrite+fdatasync: {bareb:.0}/s; ratio {:.2} \
         (over a zero-filled file: {bareb_zeroed:.0}/s; ratio {:.2})",
        rb / bareb,
        rb / bareb_zeroed
    );
    let (p50, p99) = nondurable_latency(if quick { 100_000 } else { 1_000_000 });
    println!("non-durable single appends: p50 {p50:.2} us, p99 {p99:.2} us");
    open_and_read(if quick { 100_000 } else { 1_000_000 });
    if full {
        open_and_read(10_000_000);
    }
    let _ = Duration::ZERO;
}
