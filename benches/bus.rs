//! The event bus beside its baselines, each measured in the same run (issue 13's speed goals).
//! Goals are printed, never asserted.
//!
//! `cargo bench --features bus --bench bus` or `-- --quick` (smaller counts, fewer rounds; CI
//! runs it). Stores live under `CARGO_TARGET_TMPDIR` (on disk, so that durable means an
//! `fdatasync` that waits for the device), or under `EVLOG_BENCH_DIR` when it is set.
//!
//! 1. Catch-up: a handler that does nothing, registered on a store holding `N` events of the
//!    standard workload (sealed and compressed), until it is done with all of them; beside
//!    `Store::replay` of the same events to a callback that does nothing. Then the same cold
//!    (1c): from a store opened after evlog's image cache and the page cache were emptied.
//! 2. Live, non-durable store: `publish` of one event -> the handler starts, one at a time, p50
//!    and p99; beside a bare tokio mpsc hop (send -> the receiving task runs).
//! 3. Live, durable store: the same, beside `Store::append` of one event, durable, and beside
//!    that append followed by the wake-up of a parked tokio task (the floor of any handler
//!    that runs on another thread than the publisher).
//! 4. 8 publishing tasks, durable, each to its own streams: events/s beside 8 threads calling
//!    `Store::append` durable.
//! 5. A handler (concurrency 4) catching up 100 streams' events, one stream of which always fails
//!    (retries with backoff pending, then parked): time until the other 99 streams' events are
//!    handled, beside the same with no failing stream.
//! 6. `append_multi` of 3 streams, durable, beside `append` of one stream with the same events
//!    (p50 latency).
//! 7. A handler (concurrency 4) that writes one output event per event it handles, catching up
//!    100 streams' events on a durable store: outputs emitted with `HandlerContext::emit` (stored
//!    with the checkpoints, exactly once) beside the same outputs published with
//!    `HandlerContext::publish` (a durable append each, at least once). No goal: it shows what
//!    the exactly-once path costs, or saves. 7b: every output to one shared stream, expecting
//!    the version the handler read (concurrency 1): `emit` in batches (the outputs of a batch's
//!    events are stored together after it, so the handlers of its later events read a stale
//!    version and are retried after the backoff), `emit` one event per poll, and `publish`.

#[path = "common/mod.rs"]
mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evlog::bus::{BusConfig, EventBus, Outcome};
use evlog::subscription::{Subscription, SubscriptionOptions};
use evlog::workload::Workload;
use evlog::{Durability, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions};

fn bench_root() -> PathBuf {
    std::env::var_os("EVLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn tempdir(root: &Path) -> tempfile::TempDir {
    std::fs::create_dir_all(root).unwrap();
    tempfile::tempdir_in(root).unwrap()
}

/// A fresh store under `root` with `durability`, and the directory that holds it.
fn fresh_store(root: &Path, durability: Durability) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempdir(root);
    let store = StoreOptions::new()
        .durability(durability)
        .open(dir.path())
        .unwrap();
    (dir, Arc::new(store))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn small_event(i: u64) -> EventData {
    EventData::new(
        "Tick",
        format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200)).into_bytes(),
    )
}

/// A bus with a no-op handler over every event, named `name`, that records in `done` how many
/// events it handled.
fn noop_handler(bus: &EventBus, name: &str, done: Arc<AtomicU64>) {
    bus.subscribe_all(name, move |_ctx, _e| {
        done.fetch_add(1, Ordering::Relaxed);
        async { Ok(Outcome::Handled) }
    })
    .unwrap();
}

/// 1. Catch-up delivery beside `Store::replay`.
fn catch_up(rt: &tokio::runtime::Runtime, root: &Path, n: u64, rounds: usize, cold_rounds: usize) {
    let dir = tempdir(root);
    let opts = StoreOptions::new().durability(Durability::Never);
    {
        let s = opts.clone().open(dir.path()).unwrap();
        Workload::standard(1).append_to(&s, n).unwrap();
        s.seal_active().unwrap();
        s.compress_sealed().unwrap();
        s.close().unwrap();
    }
    let store = Arc::new(opts.clone().open(dir.path()).unwrap());
    let end = store.head_position().unwrap() + 1;
    let replay = |store: &Store| {
        let t = Instant::now();
        let r = store
            .replay(0, end, &ReadFilter::all(), |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(r.events, n);
        n as f64 / t.elapsed().as_secs_f64()
    };
    replay(&store);
    // What the bus's read costs alone: a named subscription's owned batches, as the bus polls
    // them.
    let owned = |round: usize| {
        let o = SubscriptionOptions::default().checkpoint_every(100, Duration::from_secs(3600));
        let mut s = Subscription::named(&*store, &format!("owned-{round}"), o).unwrap();
        let t = Instant::now();
        let mut got = 0u64;
        while s.next_position() < end {
            got += s.poll_owned(4_096, Duration::ZERO).unwrap().len() as u64;
        }
        assert_eq!(got, n);
        n as f64 / t.elapsed().as_secs_f64()
    };
    let (mut r, mut b, mut o, mut br) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        r.push(replay(&store));
        o.push(owned(round));
        br.push(rt.block_on(subscribe_ref_rate(
            &store,
            &format!("catch-up-ref-{round}"),
            n,
        )));
        b.push(rt.block_on(async {
            let bus = EventBus::new(store.clone(), BusConfig::default().batch_events(10_000));
            let done = Arc::new(AtomicU64::new(0));
            let t = Instant::now();
            noop_handler(&bus, &format!("catch-up-{round}"), done.clone());
            bus.wait_for(&format!("catch-up-{round}"), end - 1)
                .await
                .unwrap();
            let rate = n as f64 / t.elapsed().as_secs_f64();
            assert_eq!(done.load(Ordering::Relaxed), n);
            bus.shutdown().await.unwrap();
            rate
        }));
    }
    let (r, b, o, br) = (
        median(&mut r),
        median(&mut b),
        median(&mut o),
        median(&mut br),
    );
    println!(
        "1. catch-up, {n} stored events, no-op handler | subscribe_ref (borrowed) {:.2} M/s, subscribe_all (async, owned) {:.2} M/s | Store::replay {:.2} M/s | ref/replay {:.2}, all/replay {:.2} (goal >= 0.8, and >= 5 M/s) | the subscription's owned batches alone {:.2} M/s",
        br / 1e6,
        b / 1e6,
        r / 1e6,
        br / r,
        b / r,
        o / 1e6
    );
    drop(store);
    // Cold: each round from a store opened after the image cache and the page cache were
    // emptied, the subscription and the replay in turn.
    let (mut rc, mut bc, mut how) = (Vec::new(), Vec::new(), "");
    for round in 0..cold_rounds {
        let mut cold = || {
            how = common::make_cold(&[dir.path()]);
            Arc::new(opts.clone().open(dir.path()).unwrap())
        };
        rc.push(replay(&cold()));
        let store = cold();
        bc.push(rt.block_on(subscribe_ref_rate(&store, &format!("cold-ref-{round}"), n)));
    }
    if cold_rounds > 0 {
        let (rc, bc) = (median(&mut rc), median(&mut bc));
        println!(
            "1c. catch-up, cold (compressed, image and page caches emptied; {how}) | subscribe_ref {:.2} M/s | Store::replay {:.2} M/s | ref/replay {:.2}",
            bc / 1e6,
            rc / 1e6,
            bc / rc
        );
    }
}

/// Events/s of a `subscribe_ref` handler that does nothing, named `name` (a new name: from
/// the first event), until it handled the `n` events of `store`.
async fn subscribe_ref_rate(store: &Arc<Store>, name: &str, n: u64) -> f64 {
    let end = store.head_position().unwrap() + 1;
    let bus = EventBus::new(store.clone(), BusConfig::default().batch_events(10_000));
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let t = Instant::now();
    bus.subscribe_ref(name, ReadFilter::all(), move |_e, _attempt| {
        d.fetch_add(1, Ordering::Relaxed);
        Ok(Outcome::Handled)
    })
    .unwrap();
    bus.wait_for(name, end - 1).await.unwrap();
    let rate = n as f64 / t.elapsed().as_secs_f64();
    assert_eq!(done.load(Ordering::Relaxed), n);
    bus.shutdown().await.unwrap();
    rate
}

/// Latencies (µs) of `k` publishes, each until the handler started, and until `publish`
/// returned.
async fn publish_latencies(store: Arc<Store>, k: usize) -> (Vec<f64>, Vec<f64>) {
    let bus = EventBus::new(store, BusConfig::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    bus.subscribe_all("live", move |_ctx, e| {
        // Only what this function publishes (the store also gets the baseline's appends).
        if &*e.stream == "live-1" {
            let _ = tx.send(Instant::now());
        }
        async { Ok(Outcome::Handled) }
    })
    .unwrap();
    let (mut v, mut returned) = (Vec::with_capacity(k), Vec::with_capacity(k));
    for i in 0..k as u64 {
        let t = Instant::now();
        bus.publish("live-1", ExpectedVersion::Any, vec![small_event(i)])
            .await
            .unwrap();
        returned.push(us(t.elapsed()));
        let started = rx.recv().await.unwrap();
        v.push(us(started - t));
    }
    bus.shutdown().await.unwrap();
    (v, returned)
}

/// Latencies (µs) of `k` hops through a tokio mpsc channel to another task.
async fn mpsc_latencies(k: usize) -> Vec<f64> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (back, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let task = tokio::spawn(async move {
        while let Some(t) = rx.recv().await {
            let _ = back.send(t.elapsed());
        }
    });
    let mut v = Vec::with_capacity(k);
    for _ in 0..k {
        tx.send(Instant::now()).unwrap();
        v.push(us(back_rx.recv().await.unwrap()));
    }
    drop(tx);
    task.await.unwrap();
    v
}

/// 2 and 3. Publish -> handler start, non-durable and durable.
fn live(rt: &tokio::runtime::Runtime, root: &Path, k: usize, k_durable: usize) {
    let (_dir, store) = fresh_store(root, Durability::Never);
    let (mut bus, mut returned) = rt.block_on(publish_latencies(store, k));
    let mut hop = rt.block_on(mpsc_latencies(k));
    println!(
        "2. live, non-durable: publish -> handler start | bus p50 {:.1} us, p99 {:.1} us (publish returned: p50 {:.1} us) | tokio mpsc hop p50 {:.1} us, p99 {:.1} us (goal: bus p50 < 20 us, p99 < 200 us)",
        quantile(&mut bus, 0.5),
        quantile(&mut bus, 0.99),
        quantile(&mut returned, 0.5),
        quantile(&mut hop, 0.5),
        quantile(&mut hop, 0.99),
    );

    let (_dir, store) = fresh_store(root, Durability::Always);
    // The floor of any handler that runs on another thread than the publisher: a durable
    // append, then a tokio task (its worker parked meanwhile, as it is during an fsync) woken
    // by a channel send. Latency from the append's start to the task's start.
    let (wake_tx, mut wake_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let waker_task = rt.spawn(async move {
        while let Some(t) = wake_rx.recv().await {
            let _ = back_tx.send(t.elapsed());
        }
    });
    // Interleaved, one of each in turn, so that the disk's moods hit both alike.
    let (mut bus, mut returned, mut append) = (Vec::new(), Vec::new(), Vec::new());
    let mut append_wake = Vec::new();
    for chunk in 0..10 {
        let (b, r) = rt.block_on(publish_latencies(store.clone(), k_durable / 10));
        bus.extend(b);
        returned.extend(r);
        append.extend((0..(k_durable / 10) as u64).map(|i| {
            let t = Instant::now();
            store
                .append(
                    "append-1",
                    ExpectedVersion::Any,
                    &[small_event(chunk * 1_000 + i)],
                )
                .unwrap();
            us(t.elapsed())
        }));
        append_wake.extend((0..(k_durable / 10) as u64).map(|i| {
            let t = Instant::now();
            store
                .append(
                    "append-2",
                    ExpectedVersion::Any,
                    &[small_event(chunk * 1_000 + i)],
                )
                .unwrap();
            wake_tx.send(t).unwrap();
            us(back_rx.blocking_recv().unwrap())
        }));
    }
    drop(wake_tx);
    rt.block_on(waker_task).unwrap();
    let (b, a) = (quantile(&mut bus, 0.5), quantile(&mut append, 0.5));
    let w = quantile(&mut append_wake, 0.5);
    println!(
        "3. live, durable: publish -> handler start | bus p50 {b:.1} us, p99 {:.1} us (publish returned: p50 {:.1} us) | Store::append p50 {a:.1} us, p99 {:.1} us | bus/append {:.2} (goal <= 1.2) | append then a parked task woken: p50 {w:.1} us, {:.2} x append; bus/that {:.2}",
        quantile(&mut bus, 0.99),
        quantile(&mut returned, 0.5),
        quantile(&mut append, 0.99),
        b / a,
        w / a,
        b / w
    );
}

/// 4. 8 publishing tasks beside 8 appending threads, durable.
fn publishers(rt: &tokio::runtime::Runtime, root: &Path, per: u64, rounds: usize) {
    const W: u64 = 8;
    let (mut bus, mut threads) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (_dir, store) = fresh_store(root, Durability::Always);
        bus.push(rt.block_on(async {
            let bus = EventBus::new(store.clone(), BusConfig::default());
            let t = Instant::now();
            let tasks: Vec<_> = (0..W)
                .map(|w| {
                    let bus = bus.clone();
                    tokio::spawn(async move {
                        for i in 0..per {
                            bus.publish(
                                &format!("pub-{round}-{w}"),
                                ExpectedVersion::Any,
                                vec![small_event(i)],
                            )
                            .await
                            .unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            (W * per) as f64 / t.elapsed().as_secs_f64()
        }));
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..W {
                let store = &store;
                s.spawn(move || {
                    for i in 0..per {
                        store
                            .append(
                                &format!("thread-{round}-{w}"),
                                ExpectedVersion::Any,
                                &[small_event(i)],
                            )
                            .unwrap();
                    }
                });
            }
        });
        threads.push((W * per) as f64 / t.elapsed().as_secs_f64());
    }
    let (b, t) = (median(&mut bus), median(&mut threads));
    println!(
        "4. 8 publishers, durable | bus {:.1} k/s | 8 threads Store::append {:.1} k/s | bus/threads {:.2} (goal >= 0.9)",
        b / 1e3,
        t / 1e3,
        b / t
    );
}

/// 5. Delivery of 99 streams' events with and without a 100th stream that always fails.
fn failing(rt: &tokio::runtime::Runtime, root: &Path, per_stream: u64, rounds: usize) {
    let run = |with_failing: bool, round: usize| -> f64 {
        let (_dir, store) = fresh_store(root, Durability::Never);
        for i in 0..per_stream {
            for s in 0..100u64 {
                store
                    .append(
                        &format!("s-{s:03}"),
                        ExpectedVersion::Any,
                        &[small_event(i)],
                    )
                    .unwrap();
            }
        }
        let others = 99 * per_stream;
        rt.block_on(async {
            let config = BusConfig::default()
                .concurrency(4)
                .max_retries(3)
                .retry_delay_ms(20);
            let bus = EventBus::new(store.clone(), config);
            let done = Arc::new(AtomicU64::new(0));
            let d = done.clone();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            let t = Instant::now();
            bus.subscribe_all(&format!("failing-{round}"), move |ctx, _e| {
                let fail = with_failing && &*ctx.event().stream == "s-000";
                if &*ctx.event().stream != "s-000"
                    && d.fetch_add(1, Ordering::Relaxed) + 1 == others
                {
                    let _ = tx.send(());
                }
                async move {
                    if fail {
                        Err("always fails".into())
                    } else {
                        Ok(Outcome::Handled)
                    }
                }
            })
            .unwrap();
            rx.recv().await.unwrap();
            let rate = others as f64 / t.elapsed().as_secs_f64();
            bus.shutdown().await.unwrap();
            rate
        })
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        without.push(run(false, round));
        with.push(run(true, round));
    }
    let (w, wo) = (median(&mut with), median(&mut without));
    println!(
        "5. 99 streams delivered beside one always failing (retries pending) | with it {:.1} k/s | without {:.1} k/s | with/without {:.2} (goal >= 0.9)",
        w / 1e3,
        wo / 1e3,
        w / wo
    );
}

/// 6. `append_multi` of 3 streams beside `append` of one stream, the same events, durable.
fn multi(root: &Path, k: u64) {
    let (_dir, store) = fresh_store(root, Durability::Always);
    let (mut m, mut one) = (Vec::new(), Vec::new());
    for i in 0..k {
        let events: Vec<EventData> = (0..3).map(|j| small_event(i * 3 + j)).collect();
        let t = Instant::now();
        store
            .append("single", ExpectedVersion::Any, &events)
            .unwrap();
        one.push(us(t.elapsed()));
        // The same bytes, new ids (an id already stored would be refused as a duplicate).
        let parts: Vec<(String, ExpectedVersion, Vec<EventData>)> = (0..3)
            .map(|j| {
                let e = small_event(i * 3 + j);
                (format!("multi-{j}"), ExpectedVersion::Any, vec![e])
            })
            .collect();
        let t = Instant::now();
        store.append_multi(&parts).unwrap();
        m.push(us(t.elapsed()));
    }
    let (m, o) = (median(&mut m), median(&mut one));
    println!(
        "6. durable, 3 events | append_multi of 3 streams p50 {m:.1} us | append of 1 stream p50 {o:.1} us | multi/single {:.2} (goal <= 1.2)",
        m / o
    );
}

/// How the handler of shape 7 writes its output.
#[derive(Clone, Copy)]
enum Write {
    /// `ctx.emit`, with the default batch of events per poll.
    Emit,
    /// `ctx.emit` with one event per poll (each event's outputs stored before the next).
    EmitOneByOne,
    /// `ctx.publish` (a durable append each).
    Publish,
}

/// Shape 7: a handler writing one output per event, durable, `emit` beside `publish`. With
/// `shared`, every output goes to one stream expecting the exact version the handler reads
/// (concurrency 1, so that `publish` never conflicts); otherwise each input stream has its
/// output stream (`Any`, concurrency 4).
fn outputs_rate(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    per_stream: u64,
    write: Write,
    shared: bool,
    round: usize,
) -> f64 {
    let (_dir, store) = fresh_store(root, Durability::Always);
    for i in 0..per_stream {
        let parts: Vec<(String, ExpectedVersion, Vec<EventData>)> = (0..100u64)
            .map(|s| {
                let e = small_event(i * 100 + s);
                (format!("in-{s:03}"), ExpectedVersion::Any, vec![e])
            })
            .collect();
        store.append_multi(&parts).unwrap();
    }
    let n = 100 * per_stream;
    rt.block_on(async {
        let mut config = BusConfig::default().concurrency(if shared { 1 } else { 4 });
        if let Write::EmitOneByOne = write {
            config = config.batch_events(1);
        }
        let bus = EventBus::new(store.clone(), config);
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let t = Instant::now();
        let name = format!("outputs-{round}");
        bus.subscribe_all(&name, move |ctx, e| {
            let (d, tx) = (d.clone(), tx.clone());
            async move {
                if !e.stream.starts_with("in-") {
                    return Ok(Outcome::Skip);
                }
                let (out, expected) = if shared {
                    let v = ctx.bus().store().stream_version("totals");
                    let x = v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    ("totals".to_owned(), x)
                } else {
                    (format!("out-{}", e.stream), ExpectedVersion::Any)
                };
                let data = small_event(e.position);
                match write {
                    Write::Emit | Write::EmitOneByOne => ctx.emit(&out, expected, vec![data]),
                    Write::Publish => {
                        ctx.publish(&out, expected, vec![data]).await?;
                    }
                }
                if d.fetch_add(1, Ordering::Relaxed) + 1 >= n {
                    let _ = tx.send(());
                }
                Ok(Outcome::Handled)
            }
        })
        .unwrap();
        rx.recv().await.unwrap();
        // Handled; the last batch's outputs are stored when its checkpoint is (and refused
        // outputs are handled again after their retry).
        loop {
            let head = store.head_position().unwrap();
            bus.wait_for(&name, head).await.unwrap();
            if store.head_position() == Some(head) {
                break;
            }
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        bus.shutdown().await.unwrap();
        let outs: u64 = if shared {
            store.stream_version("totals").map_or(0, |v| v + 1)
        } else {
            (0..100u64)
                .map(|s| {
                    store
                        .stream_version(&format!("out-in-{s:03}"))
                        .map_or(0, |v| v + 1)
                })
                .sum()
        };
        assert_eq!(outs, n, "every output stored once");
        rate
    })
}

/// 7 and 7b: `outputs_rate` of each way of writing, rounds interleaved.
fn outputs(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    per_stream: u64,
    per_stream_shared: u64,
    rounds: usize,
) {
    let (mut emitted, mut published) = (Vec::new(), Vec::new());
    let (mut shared_batch, mut shared_one, mut shared_pub) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let r = 5 * round;
        emitted.push(outputs_rate(rt, root, per_stream, Write::Emit, false, r));
        published.push(outputs_rate(
            rt,
            root,
            per_stream,
            Write::Publish,
            false,
            r + 1,
        ));
        let k = per_stream_shared;
        shared_batch.push(outputs_rate(rt, root, k, Write::Emit, true, r + 2));
        shared_one.push(outputs_rate(rt, root, k, Write::EmitOneByOne, true, r + 3));
        shared_pub.push(outputs_rate(rt, root, k, Write::Publish, true, r + 4));
    }
    let (e, p) = (median(&mut emitted), median(&mut published));
    println!(
        "7. a handler writing one output per event, durable | emit (exactly once) {:.1} k/s | publish (at least once) {:.1} k/s | emit/publish {:.2}",
        e / 1e3,
        p / 1e3,
        e / p
    );
    let (b, o, p) = (
        median(&mut shared_batch),
        median(&mut shared_one),
        median(&mut shared_pub),
    );
    println!(
        "7b. the same, every output to one stream expecting the version the handler read | emit, batches of 256: {:.2} k/s | emit, one event per poll: {:.2} k/s | publish: {:.2} k/s | emit/publish {:.2}, one by one {:.2}",
        b / 1e3,
        o / 1e3,
        p / 1e3,
        b / p,
        o / p
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only: Option<String> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| a.chars().all(|c| c.is_ascii_digit()));
    let run = |k: &str| only.as_deref().is_none_or(|o| o.contains(k));
    let root = bench_root();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "the event bus beside its baselines; stores under {}",
        root.display()
    );
    if run("1") {
        let (n, rounds, cold) = if quick {
            (100_000, 3, 1)
        } else {
            (1_000_000, 5, 3)
        };
        catch_up(&rt, &root, n, rounds, cold);
    }
    if run("2") || run("3") {
        let (k, kd) = if quick { (2_000, 300) } else { (20_000, 2_000) };
        live(&rt, &root, k, kd);
    }
    if run("4") {
        let (per, rounds) = if quick { (100, 3) } else { (1_000, 5) };
        publishers(&rt, &root, per, rounds);
    }
    if run("5") {
        let (per, rounds) = if quick { (100, 3) } else { (1_000, 5) };
        failing(&rt, &root, per, rounds);
    }
    if run("6") {
        multi(&root, if quick { 300 } else { 2_000 });
    }
    if run("7") {
        let (per, shared, rounds) = if quick { (5, 1, 1) } else { (20, 3, 3) };
        outputs(&rt, &root, per, shared, rounds);
    }
}
