//! Fills a store with the standard workload once (compressed unless `NOCOMP` is set), then
//! replays it through Store::replay (through Store::read_all, owned events, with `owned`; with
//! one event type as filter when given `typed`; from a cold page cache with `cold`), or
//! with `streams` reads 20,000 random whole streams through Store::replay_stream (through
//! Store::read_stream, owned events, with `owned`), for profiling. `SEG_MIB` sets the segment
//! size (4 MiB unless set), `RUNS` the number of replays (5 unless set), `META` reads each
//! event's metadata value `ts` and payload length; `TYPES=k` filters on
//! the first k event types instead, `PREFIX=p` on the streams whose id starts with p. The outside benchmark's shape (1,000,000 events, one per append, to
//! 10,000 random streams, 7 types, 64 MiB segments sealed and compressed after the load), full
//! and one type in seven:
//!
//! ```text
//! SEG_MIB=64 cargo run --release --example replay_probe -- DIR 1000000 seal
//! SEG_MIB=64 cargo run --release --example replay_probe -- DIR 1000000 typed seal
//! ```
use evlog::workload::{EVENT_TYPES, Workload};
use evlog::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    let typed = args.get(3).is_some_and(|a| a == "typed");
    let opts = StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(std::env::var("SEG_MIB").map_or(4, |v| v.parse().unwrap()) << 20);
    if !dir.exists() {
        let s = opts.open(&dir).unwrap();
        Workload::standard(1).append_to(&s, n).unwrap();
        if std::env::var_os("NOCOMP").is_none() {
            s.compress_sealed().unwrap();
        }
        s.close().unwrap();
    }
    if args.iter().any(|a| a == "cold") {
        let _ = std::process::Command::new("sync").status();
        std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
    }
    let s = opts.open(&dir).unwrap();
    if args.iter().any(|a| a == "seal") {
        let t = std::time::Instant::now();
        s.seal_active().unwrap();
        eprintln!("seal_active: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        s.compress_sealed().unwrap();
    }
    let mut filter = if typed {
        ReadFilter::all().event_types([EVENT_TYPES[4]])
    } else {
        ReadFilter::all()
    };
    if let Ok(k) = std::env::var("TYPES") {
        let k: usize = k.parse().unwrap();
        filter = filter.event_types(EVENT_TYPES[..k].iter().copied());
    }
    if let Ok(p) = std::env::var("PREFIX") {
        filter = filter.stream_prefix(p);
    }
    if args.iter().any(|a| a == "streams") {
        let mut rng = evlog::workload::Rng::new(5);
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let mut n = 0;
            let mut lat = Vec::new();
            for _ in 0..20_000 {
                let st = Workload::stream_name(rng.below(10_000));
                let t0 = std::time::Instant::now();
                n += if args.iter().any(|a| a == "owned") {
                    s.read_stream(&st, 0, Direction::Forward, usize::MAX)
                        .map(|e| e.map(|_| 1u64).unwrap())
                        .sum::<u64>()
                } else {
                    s.replay_stream(&st, 0, |_| std::ops::ControlFlow::Continue(()))
                        .unwrap()
                        .events
                };
                lat.push(t0.elapsed().as_nanos() as u64);
            }
            lat.sort();
            println!(
                "p50 {} p99 {}",
                lat[lat.len() / 2],
                lat[lat.len() * 99 / 100]
            );
            println!(
                "{n} events in 20,000 stream reads: {:.1} us per read",
                t.elapsed().as_secs_f64() * 1e6 / 20_000.0
            );
        }
        return;
    }
    let runs = std::env::var("RUNS").map_or(5, |v| v.parse().unwrap());
    for _ in 0..runs {
        let t = std::time::Instant::now();
        let events = if args.iter().any(|a| a == "owned") {
            s.read_all(0, Direction::Forward, filter.clone())
                .map(|e| e.map(|_| 1u64).unwrap())
                .sum()
        } else {
            let meta = std::env::var_os("META").is_some();
            let mut sum = 0usize;
            let n = s
                .replay(0, u64::MAX, &filter, |e| {
                    if meta {
                        sum += e.metadata_value("ts").map_or(0, str::len) + e.payload.len();
                    }
                    std::ops::ControlFlow::Continue(())
                })
                .unwrap()
                .events;
            std::hint::black_box(sum);
            n
        };
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{events} events in {:.1} ms: {:.3} M events/s",
            secs * 1e3,
            events as f64 / secs / 1e6
        );
    }
}
