//! The saga goals beside their baselines (issue 14; figures in BENCHMARKS.md).
//!
//! 1. Sagas beside plain appends, both durable (`Durability::Always`), in the same run: `N`
//!    sagas of 3 no-op steps driven 64 at once (each saga is 4 appends: started, two steps
//!    completed, the last step completed together with the saga), against 64 threads each
//!    appending one event at a time until they have made the same number of appends (4 × N).
//!    Interleaved rounds, each on a fresh store; prints sagas/s, the appends' rate, the ratio
//!    of the two times (goal ≥ 0.8), and the per-step latency (from one step's call to the
//!    next one's: the step, its record durable, the next dispatch) p50 and p99.
//! 2. Resume: a store of 1,000,000 standard-workload events among which 10,000 sagas were
//!    started and left open (built once, kept under the bench directory), reopened; prints the
//!    time `SagaManager::list` takes to find every saga (the status records' filtered read;
//!    goal under 100 ms), and the time `resume` takes to find, load and drive again the open
//!    ones.
//!
//! ```text
//! cargo bench --features bus --bench saga                # both, N = 10,000, 5 rounds
//! cargo bench --features bus --bench saga -- 1 20000 5   # only 1, N = 20,000, 5 rounds
//! cargo bench --features bus --bench saga -- 2           # only 2
//! cargo bench --features bus --bench saga -- --quick     # both, small (1,000 sagas; 100,000 events)
//! ```
//!
//! Stores go under `EVLOG_BENCH_DIR` if set, else cargo's target/tmp (on the disk: a tmpfs
//! makes every fsync free).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evlog::saga::{SagaDefinition, SagaManager, SagaStatus, StepPolicy};
use evlog::{Durability, EventData, ExpectedVersion, StoreOptions};

const CONCURRENT: usize = 64;

fn bench_root() -> std::path::PathBuf {
    std::env::var_os("EVLOG_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join("saga")
}

fn opts() -> StoreOptions {
    StoreOptions::new().durability(Durability::Always)
}

/// Runs `n` sagas, 64 at once; returns the time and the step-to-step latencies.
fn sagas(dir: &std::path::Path, n: u64) -> (Duration, Vec<Duration>) {
    let store = Arc::new(opts().open(dir).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gaps = Arc::new(Mutex::new(Vec::with_capacity(2 * n as usize)));
    let t = rt.block_on(async {
        let manager = SagaManager::new(store.clone());
        let mut def = SagaDefinition::<u64>::new("probe").default_policy(StepPolicy::default());
        let last = Arc::new(Mutex::new(std::collections::HashMap::<u64, Instant>::new()));
        for step in 0..3 {
            let (last, gaps) = (last.clone(), gaps.clone());
            def = def.step_without_compensation(format!("s{step}"), move |ctx| {
                let now = Instant::now();
                let prev = last.lock().unwrap().insert(*ctx.input(), now);
                if let Some(p) = prev.filter(|_| step > 0) {
                    gaps.lock().unwrap().push(now - p);
                }
                async { Ok(()) }
            });
        }
        let saga = manager.register(def).unwrap();
        let next = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let workers: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (saga, next) = (saga.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let id = i.to_string();
                        saga.start(&id, &i).await.unwrap();
                        assert_eq!(saga.wait(&id).await.unwrap(), SagaStatus::Completed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let elapsed = t.elapsed();
        assert_eq!(manager.counts().completed, n);
        elapsed
    });
    let gaps = std::mem::take(&mut *gaps.lock().unwrap());
    (t, gaps)
}

/// `appends` single-event durable appends by 64 threads, each to its own stream.
fn appends(dir: &std::path::Path, appends: u64) -> Duration {
    let store = Arc::new(opts().open(dir).unwrap());
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let threads: Vec<_> = (0..CONCURRENT)
        .map(|k| {
            let (store, next) = (store.clone(), next.clone());
            std::thread::spawn(move || {
                let stream = format!("appender-{k}");
                while next.fetch_add(1, Ordering::Relaxed) < appends {
                    let e = EventData::new(
                        "SagaStepCompleted",
                        br#"{"step":"s1","index":1,"attempts":1,"output":null}"#.to_vec(),
                    );
                    store.append(&stream, ExpectedVersion::Any, &[e]).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    t.elapsed()
}

/// A saga type whose first step never returns: its sagas stay open.
fn open_sagas() -> SagaDefinition<u64> {
    SagaDefinition::<u64>::new("open").step_without_compensation("wait", |_ctx| async {
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// Section 2 over `EVENTS` events among which `OPEN` sagas are left open.
fn resume(dir: &std::path::Path, events: u64, open: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fill = StoreOptions::new().durability(Durability::Never);
    if !dir.join("done").exists() {
        let _ = std::fs::remove_dir_all(dir);
        let store = Arc::new(fill.open(dir).unwrap());
        let mut w = evlog::workload::Workload::standard(1);
        rt.block_on(async {
            let manager = SagaManager::new(store.clone());
            let handle = manager.register(open_sagas()).unwrap();
            for i in 0..open {
                w.append_to(&store, events / open).unwrap();
                handle.start(&i.to_string(), &i).await.unwrap();
            }
        });
        drop(rt);
        Arc::try_unwrap(store).unwrap().close().unwrap();
        std::fs::write(dir.join("done"), b"").unwrap();
        return resume(dir, events, open);
    }
    let store = Arc::new(fill.open(dir).unwrap());
    rt.block_on(async {
        for round in 0..3 {
            let manager = SagaManager::new(store.clone());
            manager.register(open_sagas()).unwrap();
            let t = Instant::now();
            let all = manager.list().await.unwrap();
            let listed = t.elapsed();
            let t = Instant::now();
            let report = manager.resume().await.unwrap();
            let resumed = t.elapsed();
            println!(
                "round {round}: {} events, {} sagas found by list in {listed:.2?}; resume found, \
                 loaded and drove again {} open sagas in {resumed:.2?}",
                store.head_position().map_or(0, |h| h + 1),
                all.len(),
                report.resumed.len()
            );
            manager.shutdown().await;
        }
    });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let only = args.first().map(String::as_str);
    let base = bench_root();
    if only != Some("2") {
        rates(&base.join("rate"), quick, &args);
    }
    if only != Some("1") {
        let (events, open) = if quick {
            (100_000, 1_000)
        } else {
            (1_000_000, 10_000)
        };
        println!("2. resume: {events} events, {open} open sagas");
        resume(&base.join(format!("resume-{events}")), events, open);
    }
}

/// Section 1: `args` may give N and the rounds after the section number.
fn rates(root: &std::path::Path, quick: bool, args: &[String]) {
    let n: u64 = args
        .get(1)
        .map_or(if quick { 1_000 } else { 10_000 }, |a| a.parse().unwrap());
    let rounds: usize = args
        .get(2)
        .map_or(if quick { 2 } else { 5 }, |a| a.parse().unwrap());
    println!("1. {n} sagas of 3 no-op steps, 64 at once, beside 64 appenders, {rounds} rounds");
    std::fs::create_dir_all(root).unwrap();
    let (mut saga_rates, mut append_rates, mut ratios, mut all_gaps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let d = root.join(format!("appends-{round}"));
        let _ = std::fs::remove_dir_all(&d);
        let ta = appends(&d, 4 * n);
        let d = root.join(format!("sagas-{round}"));
        let _ = std::fs::remove_dir_all(&d);
        let (ts, gaps) = sagas(&d, n);
        let (sr, ar) = (
            n as f64 / ts.as_secs_f64(),
            4.0 * n as f64 / ta.as_secs_f64(),
        );
        println!(
            "round {round}: {n} sagas in {ts:.2?} ({sr:.0}/s); {} appends in {ta:.2?} ({ar:.0}/s); \
             time ratio appends/sagas {:.2}",
            4 * n,
            ta.as_secs_f64() / ts.as_secs_f64()
        );
        saga_rates.push(sr);
        append_rates.push(ar);
        ratios.push(ta.as_secs_f64() / ts.as_secs_f64());
        all_gaps.extend(gaps);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    all_gaps.sort();
    let pct = |p: f64| all_gaps[((all_gaps.len() - 1) as f64 * p) as usize];
    println!(
        "median: {:.0} sagas/s, {:.0} appends/s, ratio {:.2} (goal >= 0.8); per step p50 {:.2?}, \
         p99 {:.2?} ({} steps)",
        med(&mut saga_rates),
        med(&mut append_rates),
        med(&mut ratios),
        pct(0.5),
        pct(0.99),
        all_gaps.len()
    );
}
