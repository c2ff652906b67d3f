//! The cost of recording metrics per event (issue 15: under 100 ns), each beside its baseline in
//! the same run. `cargo bench --features serve --bench metrics` (or `-- --quick`).
//!
//! - `delivery/baseline`: what the bus does per delivery without metrics for the same inputs (a
//!   call through `dyn HandlerObserver` that does nothing).
//! - `delivery/metrics`: `HandlerMetrics::delivered` for a known handler and event type (the
//!   counter and histogram of that type, found under a read lock), plus the clock reads the bus
//!   adds around a delivery when it has an observer (`delivery/metrics_timed`).
//! - `delivery/metrics_4_threads`: the same from 4 threads at once on one handler and type, the
//!   contended case (per event, wall time / events).
//! - `append/baseline` and `append/metrics`: one publish's recording (count, events, bytes,
//!   latency histogram).
//! - `bus/deliver_plain` and `bus/deliver_metrics`: the whole delivery path, end to end: a
//!   handler registered on a bus over a store of `BUS_EVENTS` events, timed until it is done
//!   with all of them; without an observer, and with `Metrics` as the observer (every attempt
//!   timed and recorded). The store is filled outside the timing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use evlog::bus::{Attempt, BusConfig, BusObserver, EventBus, HandlerObserver, Outcome};
use evlog::metrics::Metrics;
use evlog::{EventData, ExpectedVersion, Store};

/// Events each `bus/*` iteration delivers.
const BUS_EVENTS: u64 = 2_000;

struct Nothing;
impl HandlerObserver for Nothing {
    fn delivered(&self, event_type: &str, attempt: u32, result: Attempt, elapsed: Duration) {
        black_box((event_type, attempt, result, elapsed));
    }
    fn parked(&self, event_type: &str) {
        black_box(event_type);
    }
}

fn delivery(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::new());
    let observer: Arc<dyn HandlerObserver> = metrics.handler("mailer");
    let baseline: Arc<dyn HandlerObserver> = Arc::new(Nothing);
    let types = [
        "OrderPlaced",
        "OrderPaid",
        "OrderShipped",
        "AIResultCompletedEvent",
    ];
    for t in types {
        observer.delivered(t, 1, Attempt::Handled, Duration::ZERO);
    }
    let mut g = c.benchmark_group("delivery");
    let mut i = 0usize;
    g.bench_function("baseline", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let t = black_box(types[i & 3]);
            baseline.delivered(t, 1, Attempt::Handled, Duration::from_micros(40));
        })
    });
    g.bench_function("metrics", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let t = black_box(types[i & 3]);
            observer.delivered(t, 1, Attempt::Handled, Duration::from_micros(40));
        })
    });
    g.bench_function("metrics_timed", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let t = black_box(types[i & 3]);
            let start = Instant::now();
            observer.delivered(t, 1, Attempt::Handled, start.elapsed());
        })
    });
    g.bench_function("metrics_4_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..4 {
                    let o = observer.clone();
                    s.spawn(move || {
                        for n in 0..iters / 4 {
                            let t = black_box(types[(n & 3) as usize]);
                            o.delivered(t, 1, Attempt::Handled, Duration::from_micros(40));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut g = c.benchmark_group("append");
    g.bench_function("baseline", |b| {
        b.iter(|| {
            black_box((
                black_box(1usize),
                black_box(120u64),
                Duration::from_micros(900),
            ))
        })
    });
    g.bench_function("metrics", |b| {
        b.iter(|| metrics.record_append(black_box(1), black_box(120), Duration::from_micros(900)))
    });
    g.finish();
}

/// A store holding `BUS_EVENTS` events of 8 streams.
fn filled_store() -> (tempfile::TempDir, Arc<Store>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut last = 0;
    for chunk in 0..BUS_EVENTS / 100 {
        let events: Vec<_> = (0..100)
            .map(|i| EventData::new("OrderPlaced", format!(r#"{{"n":{i}}}"#).into_bytes()))
            .collect();
        let stream = format!("order-{}", chunk % 8);
        last = store
            .append(&stream, ExpectedVersion::Any, &events)
            .unwrap()
            .last_position;
    }
    (dir, store, last)
}

fn bus(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("bus");
    g.sample_size(10);
    for observed in [false, true] {
        let name = if observed {
            "deliver_metrics"
        } else {
            "deliver_plain"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_dir, store, last) = filled_store();
                    total += rt.block_on(async {
                        let config = BusConfig::default();
                        let bus = if observed {
                            EventBus::with_observer(store, config, Arc::new(Metrics::new()))
                        } else {
                            EventBus::new(store, config)
                        };
                        let start = Instant::now();
                        bus.subscribe_all("h", |_ctx, e| async move {
                            black_box(e);
                            Ok(Outcome::Handled)
                        })
                        .unwrap();
                        bus.wait_for("h", last).await.unwrap();
                        let took = start.elapsed();
                        bus.shutdown().await.unwrap();
                        took
                    });
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, delivery, append, bus);
criterion_main!(benches);
