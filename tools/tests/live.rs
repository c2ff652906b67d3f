//! Read-only commands against a store another process is appending to, and `evlog bench`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Kills the appender (a child this test started) when the test ends, however it ends.
struct Appender(Child);

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const APPEND_DIR_VAR: &str = "EVLOG_TOOLS_TEST_APPEND_DIR";

/// Appends an event every millisecond or so (durably, each its own append and fsync) to the
/// store named by `EVLOG_TOOLS_TEST_APPEND_DIR`, for about a minute or until it is killed.
/// Run as a child process by `read_only_commands_work_while_another_process_appends`.
#[test]
#[ignore = "the appender process of read_only_commands_work_while_another_process_appends"]
fn appender_process() {
    let Some(dir) = std::env::var_os(APPEND_DIR_VAR) else {
        return;
    };
    let store = evlog::Store::open(dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let e = evlog::EventData::new("Tick", format!("{{\"i\":{i}}}"));
        store
            .append(&format!("s-{}", i % 5), evlog::ExpectedVersion::Any, &[e])
            .unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn read_only_commands_work_while_another_process_appends() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("live");
    // The appender: this test binary again, running only `appender_process` below.
    let mut appender = Appender(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "appender_process",
                "--ignored",
                "--test-threads",
                "1",
            ])
            .env(APPEND_DIR_VAR, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for the first events.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = evlog(&["stats", "--json", path(&dir)]);
        if o.status.code() == Some(0) {
            let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
            if v["events"].as_u64().unwrap() >= 20 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the appender wrote nothing");
        assert!(
            appender.0.try_wait().unwrap().is_none(),
            "the appender stopped"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut seen = 0;
    for round in 0..3 {
        let o = evlog(&["dump", path(&dir), "--format", "jsonl"]);
        assert_code(&o, 0, &format!("dump, round {round}"));
        let positions: Vec<u64> = stdout(&o)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["position"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(positions.len() >= 20);
        assert!(positions.iter().enumerate().all(|(i, &p)| p == i as u64));
        seen = positions.len() as u64;

        let o = evlog(&["export", path(&dir)]);
        assert_code(&o, 0, &format!("export, round {round}"));
        assert!(stdout(&o).lines().count() >= positions.len());

        let o = evlog(&["stats", path(&dir)]);
        assert_code(&o, 0, &format!("stats, round {round}"));

        let o = evlog(&["inspect", path(&dir)]);
        assert_code(&o, 0, &format!("inspect, round {round}"));

        let o = evlog(&["verify", path(&dir)]);
        assert_code(&o, 0, &format!("verify, round {round}"));
    }
    // The appender kept appending meanwhile: the store grows past what the reads saw.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = evlog(&["stats", "--json", path(&dir)]);
        assert_code(&o, 0, "stats");
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        if v["events"].as_u64().unwrap() > seen {
            break;
        }
        assert!(Instant::now() < deadline, "the appender stopped appending");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        appender.0.try_wait().unwrap().is_none(),
        "the appender was still running"
    );
    // The writer holds the lock: repair refuses.
    assert_code(&evlog(&["repair", path(&dir)]), 3, "repair of a live store");
}

#[test]
fn bench_prints_throughput_and_latency_percentiles() {
    let o = evlog(&[
        "bench",
        "--events",
        "2000",
        "--streams",
        "50",
        "--durability",
        "never",
    ]);
    assert_code(&o, 0, "bench");
    let out = stdout(&o);
    for phase in ["append:", "stream reads:", "replay:"] {
        let l = out
            .lines()
            .find(|l| l.starts_with(phase))
            .unwrap_or_else(|| panic!("no {phase} in\n{out}"));
        for w in ["events/s", "p50", "p99", "max"] {
            assert!(l.contains(w), "{w} in {l}");
        }
    }
    assert!(out.contains("2000 event(s) over 50 stream(s)"), "{out}");

    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let o = evlog(&[
        "bench",
        "--json",
        "--dir",
        path(&dir),
        "--events",
        "500",
        "--streams",
        "7",
        "--durability",
        "interval",
        "--threads",
        "2",
    ]);
    assert_code(&o, 0, "bench --json");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["append"]["events"], 500);
    assert_eq!(v["replay"]["events"], 500);
    assert_eq!(v["stream_reads"]["events"], 500);
    assert_eq!(v["stream_reads"]["operations"], 7);
    assert!(v["append"]["p50_us"].as_f64().unwrap() <= v["append"]["max_us"].as_f64().unwrap());
    // --dir keeps the store.
    let o = evlog(&["stats", "--json", path(&dir)]);
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["events"], 500);
    assert_eq!(s["streams"], 7);
}
