//! Fills a store with the standard workload once (default segment size), then reads random
//! whole streams and prints p50/p99, for profiling the stream-read path.
use evlog::workload::Workload;
use evlog::*;
fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p) as usize]
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    let compress = args.iter().any(|a| a == "compress");
    let opts = StoreOptions::new().durability(Durability::Never);
    if !dir.exists() {
        let s = opts.open(&dir).unwrap();
        let mut w = Workload::standard(11);
        for _ in 0..n {
            let (st, e) = w.next_event();
            s.append(&st, ExpectedVersion::Any, &[e]).unwrap();
        }
        if compress {
            s.seal_active().unwrap();
            s.compress_sealed().unwrap();
        }
        s.close().unwrap();
    }
    let s = opts.open(&dir).unwrap();
    let rounds: usize = std::env::var("ROUNDS").map_or(5000, |v| v.parse().unwrap());
    for i in 0..2000 {
        let _ = s
            .read_stream(
                &Workload::stream_name(i % 10_000),
                0,
                Direction::Forward,
                usize::MAX,
            )
            .count();
    }
    for pass in 0..3 {
        let mut rng = evlog::workload::Rng::new(5 + pass);
        let mut lat = Vec::new();
        for _ in 0..rounds {
            let st = Workload::stream_name(rng.below(10_000));
            let t = std::time::Instant::now();
            if std::env::var_os("ONLY_REPLAY").is_none() {
                for e in s.read_stream(&st, 0, Direction::Forward, usize::MAX) {
                    e.unwrap();
                }
            }
            lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        let (a, b) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
        let mut rng = evlog::workload::Rng::new(5 + pass);
        let mut lat = Vec::new();
        for _ in 0..rounds {
            if std::env::var_os("ONLY_READ").is_some() {
                lat.push(0.0);
                continue;
            }
            let st = Workload::stream_name(rng.below(10_000));
            let t = std::time::Instant::now();
            let mut bytes = 0;
            s.replay_stream(&st, 0, |e| {
                bytes += e.payload.len();
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            std::hint::black_box(bytes);
            lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        println!(
            "read_stream p50 {a:.1} p99 {b:.1} | replay_stream p50 {:.1} p99 {:.1}",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
    }
}
