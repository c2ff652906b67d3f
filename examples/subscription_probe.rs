//! Catch-up delivery beside `Store::replay` over the same stored events: fills a store with the
//! standard workload once (`N` events, one per append, sealed and compressed), then, in
//! interleaved rounds, replays it to a no-op callback, and delivers it to a no-op handler
//! through a named subscription (polls of 10,000 events, a checkpoint every 1,000 events, a
//! fresh name each round). Prints the medians and their ratio.
//!
//! `cargo run --release --example subscription_probe -- DIR N`
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use evlog::subscription::{Subscription, SubscriptionOptions};
use evlog::workload::Workload;
use evlog::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    let opts = StoreOptions::new().durability(Durability::Never);
    if !dir.exists() {
        let s = opts.open(&dir).unwrap();
        Workload::standard(1).append_to(&s, n).unwrap();
        s.seal_active().unwrap();
        s.compress_sealed().unwrap();
        s.close().unwrap();
    }
    let store = opts.open(&dir).unwrap();
    let end = store.head_position().map_or(0, |h| h + 1);
    let (mut replay, mut sub) = (Vec::new(), Vec::new());
    for round in 0..7 {
        let t = Instant::now();
        let r = store
            .replay(0, end, &ReadFilter::all(), |_| ControlFlow::Continue(()))
            .unwrap();
        replay.push(r.events as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let o = SubscriptionOptions::default().checkpoint_every(1_000, Duration::from_secs(3600));
        let mut s = Subscription::named(&store, &format!("probe-{round}-{}", end), o).unwrap();
        let mut delivered = 0u64;
        while s.next_position() < end {
            delivered += s
                .poll(10_000, Duration::ZERO, |_| ControlFlow::Continue(()))
                .unwrap()
                .delivered;
        }
        sub.push(delivered as f64 / t.elapsed().as_secs_f64());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (r, s) = (med(&mut replay), med(&mut sub));
    println!(
        "replay {:.2} M events/s; subscription {:.2} M events/s; subscription/replay {:.2}",
        r / 1e6,
        s / 1e6,
        s / r
    );
}
