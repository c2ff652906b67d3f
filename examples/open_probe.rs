//! Fills a store with the standard workload once, then times open-until-first-append.
use evlog::workload::Workload;
use evlog::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    if !dir.exists() {
        let s = StoreOptions::new()
            .durability(Durability::Never)
            .open(&dir)
            .unwrap();
        let mut w = Workload::standard(1);
        for _ in 0..n {
            let (st, e) = w.next_event();
            s.append(&st, ExpectedVersion::Any, &[e]).unwrap();
        }
        s.close().unwrap();
    }
    let mut v = Vec::new();
    for _ in 0..9 {
        let t = std::time::Instant::now();
        let s = StoreOptions::new()
            .durability(Durability::Never)
            .open(&dir)
            .unwrap();
        s.append(
            "probe",
            ExpectedVersion::Any,
            &[EventData::new("P", b"{}".to_vec())],
        )
        .unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e3);
        drop(s);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("open+append median {:.2} ms (min {:.2})", v[4], v[0]);
}
