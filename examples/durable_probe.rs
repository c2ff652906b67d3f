//! Probe: the latency of one durable append (`Durability::Always`) from a plain thread
//! (`Store::append`), and from a task of a multi-threaded tokio runtime: `Store::append` inside
//! `block_in_place`, and `Store::append_async` awaited. Rounds of each alternate, so that the
//! disk's moods hit all three alike; medians (µs) and ratios to the plain thread's.
//!
//!     cargo run --release --example durable_probe -- DIR [APPENDS]

use std::sync::Arc;
use std::time::Instant;

use evlog::{Durability, EventData, ExpectedVersion, Store, StoreOptions};

fn event(i: u64) -> EventData {
    EventData::new(
        "Tick",
        format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200)).into_bytes(),
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// `k` appends on a task of `rt`, each inside `block_in_place` or with `append_async`.
fn on_task(
    rt: &tokio::runtime::Runtime,
    store: &Arc<Store>,
    k: u64,
    asynchronous: bool,
) -> Vec<f64> {
    let store = store.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut v = Vec::with_capacity(k as usize);
            for i in 0..k {
                let t = Instant::now();
                if asynchronous {
                    store
                        .append_async("async", ExpectedVersion::Any, &[event(i)])
                        .unwrap()
                        .await
                        .unwrap();
                } else {
                    tokio::task::block_in_place(|| {
                        store
                            .append("in-place", ExpectedVersion::Any, &[event(i)])
                            .unwrap()
                    });
                }
                v.push(us(t));
            }
            v
        })
        .await
        .unwrap()
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: durable_probe DIR [APPENDS]");
    let n: u64 = args.next().map_or(2_000, |a| a.parse().expect("APPENDS"));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(
        StoreOptions::new()
            .durability(Durability::Always)
            .open(&dir)
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut plain, mut in_place, mut asy) = (Vec::new(), Vec::new(), Vec::new());
    let k = n / 10;
    for _ in 0..10 {
        for i in 0..k {
            let t = Instant::now();
            store
                .append("plain", ExpectedVersion::Any, &[event(i)])
                .unwrap();
            plain.push(us(t));
        }
        in_place.extend(on_task(&rt, &store, k, false));
        asy.extend(on_task(&rt, &store, k, true));
    }
    let (p, b, a) = (median(&mut plain), median(&mut in_place), median(&mut asy));
    println!(
        "durable append p50: plain thread {p:.1} us | task, block_in_place {b:.1} us ({:.2}x) | task, append_async {a:.1} us ({:.2}x)",
        b / p,
        a / p
    );
}
