//! The trading platform's event-driven backend, end to end, on one directory: users
//! authenticating; AI scoring requests, each run by the AI scoring saga (reserve credits, ask a
//! simulated provider that fails, hangs or rejects part of the time, record the result, or
//! compensate: credits released, the failure recorded); score notifications to webhooks, some
//! down for a while (parked in the dead-letter queue, then redriven); price feed updates on
//! aggregates with snapshots; oracle snapshots; audit events; read models kept by handlers on
//! the event bus; metrics and health on HTTP.
//!
//! The run: a child process drives the load and is killed with SIGKILL part-way; this process
//! then reopens the directory, resumes every handler from its checkpoint and every half-done
//! saga from its events, drives the rest of the load, redrives the dead letters once the
//! webhooks are back, and checks that every scoring request ended exactly once, that every
//! saga finished or was compensated, that the read models equal a replay of the log from zero,
//! that the store verifies clean, that health and metrics answer over HTTP, and what time
//! travel gives for one AI result. It prints a summary and exits 1 when a check fails.
//!
//! `cargo run --release --features serve --example trading -- [--quick] [--actions N]
//! [--reject-permille P] [--dir DIR] [--listen ADDR] [--serve]`

mod domain;
mod platform;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evlog::snapshot::{At, SnapshotStore};
use evlog::{ReadFilter, Store};
use indicatif::{ProgressBar, ProgressStyle};

use domain::*;
use platform::*;

struct Args {
    dir: PathBuf,
    /// Where the HTTP API listens (127.0.0.1 and a free port unless given).
    listen: String,
    /// Keep serving the HTTP API after the run, until Ctrl-C.
    serve: bool,
    actions: u64,
    reject_permille: u64,
    child: bool,
}

fn args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("trading-data"),
        listen: "127.0.0.1:0".into(),
        serve: false,
        actions: 20_000,
        reject_permille: 100,
        child: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--quick" => a.actions = 2_000,
            "--actions" => {
                a.actions = value("--actions")
                    .parse()
                    .unwrap_or_else(|_| die("--actions takes a number of actions"))
            }
            "--reject-permille" => {
                a.reject_permille = value("--reject-permille")
                    .parse()
                    .ok()
                    .filter(|p| *p <= 1000)
                    .unwrap_or_else(|| die("--reject-permille takes 0 to 1000"))
            }
            "--dir" => a.dir = PathBuf::from(value("--dir")),
            "--listen" => a.listen = value("--listen"),
            "--serve" => a.serve = true,
            "--child" => a.child = true,
            other => die(&format!(
                "unknown argument {other:?}; use --quick, --actions N, --reject-permille P, --dir DIR, --listen ADDR, --serve"
            )),
        }
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("trading: {msg}");
    std::process::exit(2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn provider(a: &Args) -> Arc<Provider> {
    Arc::new(Provider {
        reject_permille: a.reject_permille,
        healed: AtomicBool::new(false),
    })
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("  {msg:<28} [{bar:40}] {pos}/{len} ({per_sec})")
            .expect("template")
            .progress_chars("=> "),
    );
    b.set_message(msg.to_owned());
    b
}

/// The child: drives actions 0..N, printing how many are done, until it is killed.
fn child(a: &Args) {
    let rt = runtime();
    rt.block_on(async {
        let p = Platform::start(&a.dir, provider(a)).await.expect("start");
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        tokio::spawn(async move {
            loop {
                println!("done {}", d.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        p.drive(0..a.actions, 16, done).await;
        p.settle().await.expect("settle");
    });
    println!("finished");
}

/// Phase 1: the child runs until `kill_at` actions are done, then gets SIGKILL.
fn run_child_and_kill(a: &Args, kill_at: u64) -> u64 {
    let mut c = Command::new(std::env::current_exe().expect("own path"))
        .args(["--child", "--dir"])
        .arg(&a.dir)
        .args([
            "--actions",
            &a.actions.to_string(),
            "--reject-permille",
            &a.reject_permille.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let b = bar(kill_at, "phase 1 (child process)");
    let mut last = 0;
    for line in BufReader::new(c.stdout.take().unwrap()).lines() {
        let line = line.expect("child output");
        if let Some(n) = line.strip_prefix("done ") {
            last = n.parse().unwrap_or(last);
            b.set_position(last.min(kill_at));
            if last >= kill_at {
                c.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
                break;
            }
        }
    }
    let status = c.wait().expect("child status");
    b.finish_and_clear();
    println!(
        "phase 1: a child process ran the platform and was killed with SIGKILL after {last} actions ({status})"
    );
    last
}

struct Check {
    name: String,
    ok: bool,
}

/// The HTTP API over the running platform (`evlog::http`), as an application mounts it.
struct Http {
    base: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Http {
    async fn start(p: &Platform, listen: &str) -> Http {
        use evlog::http::{Api, ApiToken, Auth, Role};
        let token = evlog::Uuid::new_v4().simple().to_string();
        let auth = Auth::Tokens(vec![ApiToken {
            name: "trading-demo".into(),
            token: token.clone(),
            role: Role::Admin,
        }]);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| die(&format!("--listen {listen}: {e}")));
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let api = Api::new(p.monitor.clone(), auth);
        let task = tokio::spawn(evlog::http::serve(listener, api, async {
            let _ = stopped.await;
        }));
        println!("phase 2: HTTP API on {base} (bearer token {token}):");
        for path in [
            "/api/events/health",
            "/api/events/metrics",
            "/api/events/dead-letter",
            "/api/events?type=AIResultFailed&limit=10",
            "/api/streams/ai-result-00000000",
            "/api/events/stream",
            "/api/openapi.json",
        ] {
            println!("    {base}{path}");
        }
        Http {
            base,
            token,
            stop,
            task,
        }
    }

    /// Health over HTTP, and the metrics the handlers' deliveries fed.
    async fn check(&self, checks: &mut Vec<Check>) {
        let client = reqwest::Client::new();
        let health = client
            .get(format!("{}/api/events/health", self.base))
            .send()
            .await;
        let (code, body) = match health {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        checks.push(Check {
            name: format!("GET /api/events/health answers {code}: {body}"),
            ok: code == 200 && body.contains("\"ok\""),
        });
        let metrics = client
            .get(format!("{}/api/events/metrics", self.base))
            .bearer_auth(&self.token)
            .send()
            .await;
        let text = match metrics {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        let deliveries = text
            .lines()
            .filter(|l| l.starts_with("evlog_deliveries") && l.contains("handler=\"scoring\""))
            .count();
        checks.push(Check {
            name: format!(
                "GET /api/events/metrics with the token: {} lines, {deliveries} series of the scoring handler's deliveries",
                text.lines().count()
            ),
            ok: deliveries > 0,
        });
        let refused = client
            .get(format!("{}/api/events/metrics", self.base))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        checks.push(Check {
            name: format!("GET /api/events/metrics without a token is refused: {refused}"),
            ok: refused == 401,
        });
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn main() {
    let a = args();
    if a.child {
        child(&a);
        return;
    }
    let t0 = Instant::now();
    if a.dir.exists() {
        std::fs::remove_dir_all(&a.dir).unwrap_or_else(|e| die(&format!("{e}")));
    }
    println!(
        "evlog trading platform: {} actions (users, AI scoring, price feeds, oracles), {} per thousand scoring requests rejected, store in {}",
        a.actions,
        a.reject_permille,
        a.dir.display()
    );
    let kill_at = a.actions * 2 / 5;
    run_child_and_kill(&a, kill_at);

    let rt = runtime();
    let mut checks = Vec::new();
    let (summary, latencies) = rt.block_on(async {
        let t = Instant::now();
        let p = Platform::start(&a.dir, provider(&a)).await.expect("restart");
        println!(
            "phase 2: reopened after the kill in {:.0} ms: {} events; handlers resume from their checkpoints",
            t.elapsed().as_secs_f64() * 1e3,
            p.store.head_position().map_or(0, |h| h + 1),
        );
        println!(
            "phase 2: {} AI scoring sagas the kill left half done are driven again ($saga-ai_scoring-ID)",
            p.resumed.resumed.len()
        );
        let http = Http::start(&p, &a.listen).await;
        // The rest of the load: actions the child never reached.
        let rest = a.actions..a.actions + a.actions - kill_at;
        let done = Arc::new(AtomicU64::new(0));
        let b = bar(rest.end - rest.start, "phase 2 (this process)");
        let d = done.clone();
        let bb = b.clone();
        let ticker = tokio::spawn(async move {
            loop {
                bb.set_position(d.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        p.drive(rest, 16, done).await;
        ticker.abort();
        b.finish_and_clear();
        p.settle().await.expect("settle");
        let dlq = p.bus.dead_letters("notifier");
        let parked = dlq.count().expect("dead letters");
        println!(
            "phase 2: load done; {parked} score notifications parked in the dead-letter queue (webhooks down); the outage ends, redriving them"
        );
        p.provider.healed.store(true, Ordering::Relaxed);
        dlq.redrive_all("trading-demo").expect("redrive");
        while dlq.count().expect("dead letters") > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        p.settle().await.expect("settle");
        let stats: BTreeMap<&str, _> = HANDLERS
            .iter()
            .map(|h| (*h, p.bus.stats(h).expect("handler")))
            .collect();
        // Seal and compress what the run wrote (as a deployment does in the background).
        p.store.seal_active().expect("seal");
        let c = p.store.compress_sealed().expect("compress");
        println!(
            "phase 2: sealed and compressed {} segments: {:.1} -> {:.1} MB",
            c.segments,
            c.bytes_before as f64 / 1e6,
            c.bytes_after as f64 / 1e6
        );
        let summary = verify(&p.store, &p, parked, &mut checks);
        check_sagas(&p, &summary, &mut checks).await;
        http.check(&mut checks).await;
        let latencies = p.latencies.lock().unwrap().clone();
        if a.serve {
            println!(
                "\nserving the HTTP API until Ctrl-C (token above): {}/api/events/health",
                http.base
            );
            tokio::signal::ctrl_c().await.expect("Ctrl-C handler");
        }
        http.stop().await;
        p.bus.shutdown().await.expect("shutdown");
        (
            (summary, stats, parked),
            latencies,
        )
    });
    let ((counts, stats, parked), latencies) = (summary, latencies);
    let disk = evlog::stats::stats_dir(&a.dir).expect("stats");

    println!();
    println!("events by type");
    for t in EVENT_TYPES {
        println!("  {t:<26} {:>8}", counts.get(t).copied().unwrap_or(0));
    }
    println!(
        "  {:<26} {:>8}   (checkpoints, dead letters, saga transitions)",
        "system ($...)",
        counts.get("$system").copied().unwrap_or(0)
    );
    println!(
        "handlers (this process)      handled  skipped  failures  parked  redriven  p50 ms  p99 ms  (append -> handler start, every attempt)"
    );
    for (h, s) in &stats {
        let mut l = latencies.get(h).cloned().unwrap_or_default();
        l.sort_unstable();
        let q = |f: f64| {
            l.get(((l.len().max(1) - 1) as f64 * f) as usize)
                .map_or(0.0, |v| *v as f64 / 1e3)
        };
        println!(
            "  {h:<26} {:>8} {:>8} {:>9} {:>7} {:>9} {:>7.2} {:>7.2}",
            s.handled,
            s.skipped,
            s.failures,
            s.parked,
            s.redriven,
            q(0.5),
            q(0.99)
        );
    }
    println!(
        "dead letters: {parked} notifications parked while webhooks were down, all redriven after"
    );
    println!(
        "store: {} events, {} streams, {} segments ({} compressed), {:.1} MB on disk",
        disk.events,
        disk.streams,
        disk.segments_sealed + disk.segments_active,
        disk.compressed_segments,
        disk.bytes_on_disk as f64 / 1e6
    );
    println!();
    let mut failed = 0;
    for c in &checks {
        println!("  [{}] {}", if c.ok { "ok" } else { "FAILED" }, c.name);
        failed += usize::from(!c.ok);
    }
    println!(
        "\n{} in {:.1} s",
        if failed == 0 {
            "every check passed".to_owned()
        } else {
            format!("{failed} checks FAILED")
        },
        t0.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Every AI scoring saga ended: completed for each completed result, compensated for each
/// failed one, none running or parked.
async fn check_sagas(p: &Platform, counts: &BTreeMap<String, u64>, checks: &mut Vec<Check>) {
    let sagas = p.sagas.list().await.expect("sagas");
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for s in &sagas {
        *by.entry(format!("{:?}", s.status)).or_default() += 1;
    }
    let of = |k: &str, m: &BTreeMap<String, u64>| m.get(k).copied().unwrap_or(0);
    let (completed, compensated) = (of("Completed", &by), of("Compensated", &by));
    checks.push(Check {
        name: format!(
            "every AI scoring saga finished or compensated: {} sagas, {by:?}",
            sagas.len()
        ),
        ok: completed == of("AIResultCompleted", counts)
            && compensated == of("AIResultFailed", counts)
            && completed + compensated == sagas.len() as u64,
    });
}

/// The checks after the run; returns the events by type.
fn verify(
    store: &Store,
    p: &Platform,
    parked: usize,
    checks: &mut Vec<Check>,
) -> BTreeMap<String, u64> {
    let mut check = |name: String, ok: bool| checks.push(Check { name, ok });
    let end = store.head_position().map_or(0, |h| h + 1);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    // Each AI result stream: its types in order.
    let mut results: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The logins the security handler audits, and the audit events by the event that caused
    // them.
    let mut audited = Vec::new();
    let mut audits: BTreeMap<evlog::Uuid, u64> = BTreeMap::new();
    store
        .replay(0, end, &ReadFilter::all(), |e| {
            if e.event_type == "UserAuthenticated" && platform::audited(&e.id) {
                audited.push(e.id);
            }
            if e.event_type == "AuditLogCreated"
                && let Some(cause) = e.causation_id()
            {
                *audits.entry(cause).or_default() += 1;
            }
            let t = if e.stream.starts_with('$') {
                "$system"
            } else {
                e.event_type
            };
            *counts.entry(t.to_owned()).or_default() += 1;
            if e.stream.starts_with("ai-result-") {
                results
                    .entry(e.stream.to_owned())
                    .or_default()
                    .push(e.event_type.to_owned());
            }
            ControlFlow::Continue(())
        })
        .expect("replay");
    let ended = results
        .values()
        .filter(|v| {
            v.len() == 2
                && v[0] == "AIResultCreated"
                && (v[1] == "AIResultCompleted" || v[1] == "AIResultFailed")
        })
        .count();
    let failed = results
        .values()
        .filter(|v| v.get(1).is_some_and(|t| t == "AIResultFailed"))
        .count();
    check(
        format!(
            "every AI scoring request ended exactly once: {ended} of {} ({} completed, {failed} failed)",
            results.len(),
            ended - failed
        ),
        ended == results.len() && !results.is_empty(),
    );
    check(
        format!(
            "every audited login has exactly one audit event, emitted with the security handler's checkpoint: {} logins",
            audited.len()
        ),
        !audited.is_empty() && audited.iter().all(|id| audits.get(id) == Some(&1)),
    );
    let models = p.models.lock().unwrap().clone();
    let released = models
        .audit
        .values()
        .flat_map(|m| m.values())
        .filter(|a| *a == "credits-released")
        .count();
    check(
        format!("every failed request was compensated (credits released): {released} of {failed}"),
        released == failed,
    );
    check(
        format!("the dead-letter queue was used and emptied: {parked} parked, 0 left"),
        parked > 0 && p.bus.dead_letters("notifier").count().unwrap_or(1) == 0,
    );
    let replayed = replay_models(store).expect("replay");
    let scores: usize = models.scores.values().map(|m| m.len()).sum();
    check(
        format!(
            "the read models kept by the handlers equal a replay from zero ({scores} scores, {} feeds, {} audit entries)",
            models.prices.len(),
            models.audit.values().map(|m| m.len()).sum::<usize>()
        ),
        models == replayed,
    );
    let rep = store.verify().expect("verify");
    check(
        format!(
            "verify: every checksum and index ({} problems)",
            rep.problems.len()
        ),
        rep.is_clean(),
    );
    let snaps = SnapshotStore::open(store).with_policy(snapshot_policy());
    let taken = snaps.list().map(|l| l.len()).unwrap_or(0);
    check(
        format!("price feed aggregates have snapshots: {taken}"),
        taken > 0,
    );
    if let Some((stream, _)) = results.iter().find(|(_, v)| v[1] == "AIResultCompleted") {
        let then = snaps.load_at::<AIResult>(store, stream, At::Version(0));
        let now = snaps.load::<AIResult>(store, stream);
        let (then, now) = (then.expect("load_at").state, now.expect("load").state);
        check(
            format!(
                "time travel: {stream} at version 0 was {:?}, now {:?} with score {:?}",
                then.status, now.status, now.score
            ),
            then.status == "pending" && now.status == "completed" && now.score.is_some(),
        );
    }
    counts
}
