//! kill -9 of a process running sagas: each child resumes what the last one left unsettled,
//! starts a few new sagas (some with a step that always fails, some with a compensation that
//! fails once), reports each start acknowledged, drives them, then waits, and is killed at a
//! random moment (mostly while it drives them); the last child runs until every saga is settled. The steps act on a second store (the "services"),
//! honouring their idempotency keys: an effect is an append to `effect-KEY` expecting no
//! stream, its undo an append expecting version 0. Then every saga started is completed or
//! compensated as its plan says, every effect of a completed step is there once, undone exactly
//! for the compensated sagas, last step first, and nothing was undone that was never applied.
//!
//! The child is this test binary itself, run with `EVLOG_SAGAKILL_CHILD_DIR` set.
//!
//! ```text
//! cargo test --release --all-features --test saga_kill9 -- --nocapture      # 200 kills
//! EVLOG_SAGAKILL_ROUNDS=1000 cargo test --release --all-features --test saga_kill9 -- --nocapture
//! ```

#![cfg(feature = "bus")]

mod common;
mod saga_common;

use common::{kill9_child, kill9_rounds_and_seed, run_child};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use evlog::saga::{SagaError, SagaManager, SagaStatus};
use evlog::{Direction, Durability, Error, EventData, ExpectedVersion, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use saga_common::{Effects, Plan, StepOut, definition_over, expected_status, step_name};

const CHILD_DIR_ENV: &str = "EVLOG_SAGAKILL_CHILD_DIR";
/// The ids the child starts: `FROM..TO`.
const CHILD_START_ENV: &str = "EVLOG_SAGAKILL_START";
const ROUNDS_ENV: &str = "EVLOG_SAGAKILL_ROUNDS";
const DEFAULT_ROUNDS: u64 = 200;
const PER_ROUND: u64 = 4;
const TEST_NAME: &str = "kill9_sagas_finish_or_compensate_with_each_effect_once";
const VIOLATIONS: &str = "violations";

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(64 << 10)
        .durability(Durability::Always)
}

/// Saga `n`: its type, step count and plan.
fn saga_of(n: u64) -> (&'static str, usize, Plan) {
    let (ty, steps) = if n.is_multiple_of(2) {
        ("three", 3)
    } else {
        ("four", 4)
    };
    let mut rng = StdRng::seed_from_u64(n);
    let fail_step = rng.gen_bool(0.5).then(|| rng.gen_range(0..steps));
    let fail_compensation = fail_step
        .filter(|f| *f > 0 && rng.gen_bool(0.5))
        .map(|f| rng.gen_range(0..f));
    (
        ty,
        steps,
        Plan {
            fail_step,
            fail_compensation,
        },
    )
}

fn effect_stream(key: &str) -> String {
    format!("effect-{key}")
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// The services: streams of a second store.
struct StoreEffects(Arc<Store>);

impl StoreEffects {
    fn event(&self, stream: &str, version: u64) -> Option<Vec<u8>> {
        self.0
            .read_stream(stream, version, Direction::Forward, 1)
            .next()
            .map(|e| e.unwrap().payload)
    }
}

impl Effects for StoreEffects {
    fn apply(&self, key: &str) -> String {
        report(&format!("@@X {key}\n"));
        let stream = effect_stream(key);
        let token = format!("{key}@{}", evlog::Uuid::new_v4());
        let e = EventData::new("Applied", token.clone().into_bytes());
        match self.0.append(&stream, ExpectedVersion::NoStream, &[e]) {
            Ok(_) => token,
            Err(Error::WrongExpectedVersion { .. }) => {
                String::from_utf8(self.event(&stream, 0).unwrap()).unwrap()
            }
            Err(e) => panic!("effects store: {e}"),
        }
    }

    fn token(&self, key: &str) -> Option<String> {
        self.event(&effect_stream(key), 0)
            .map(|p| String::from_utf8(p).unwrap())
    }

    fn undo(&self, key: &str, out: &StepOut) {
        match self.token(key) {
            None => self.violation(format!("undo of {key}, never applied")),
            Some(t) if t != out.token => {
                self.violation(format!("undo of {key} with token {}, not {t}", out.token))
            }
            Some(_) => {
                let e = EventData::new("Undone", Vec::new());
                match self
                    .0
                    .append(&effect_stream(key), ExpectedVersion::Exact(0), &[e])
                {
                    Ok(_) | Err(Error::WrongExpectedVersion { .. }) => {}
                    Err(e) => panic!("effects store: {e}"),
                }
            }
        }
    }

    /// A failing compensation fails on its first attempt, then succeeds.
    fn compensation_allowed(&self, attempt: u32) -> bool {
        attempt > 1
    }

    fn violation(&self, v: String) {
        let e = EventData::new("Violation", v.into_bytes());
        self.0
            .append(VIOLATIONS, ExpectedVersion::Any, &[e])
            .unwrap();
    }
}

fn child_main(dir: &Path) -> ! {
    let (from, to) = std::env::var(CHILD_START_ENV)
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once("..")?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        })
        .unwrap_or((0, 0));
    let open = |sub: &str| {
        Arc::new(opts().open(dir.join(sub)).unwrap_or_else(|e| {
            eprintln!("child: open {sub}: {e}");
            std::process::exit(2)
        }))
    };
    let (sagas, services) = (open("sagas"), open("services"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let effects: Arc<dyn Effects> = Arc::new(StoreEffects(services));
        let manager = SagaManager::new(sagas);
        let three = manager
            .register(definition_over("three", 3, effects.clone(), None))
            .unwrap();
        let four = manager
            .register(definition_over("four", 4, effects, None))
            .unwrap();
        manager.resume().await.unwrap();
        for n in from..to {
            let (ty, _, plan) = saga_of(n);
            let handle = if ty == "three" { &three } else { &four };
            match handle.start(&n.to_string(), &plan).await {
                Ok(()) => report(&format!("@@S {n}\n")),
                Err(SagaError::AlreadyStarted { .. }) => {}
                Err(e) => panic!("start {n}: {e}"),
            }
        }
        manager.wait_idle().await;
        let c = manager.counts();
        assert_eq!((c.active, c.needs_attention, c.lost), (0, 0, 0));
        if from < to {
            // Not the last child: wait for the kill.
            report("@@D\n");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    std::process::exit(0)
}

#[test]
fn kill9_sagas_finish_or_compensate_with_each_effect_once() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        child_main(Path::new(&dir));
    }
    let (rounds, seed) = kill9_rounds_and_seed(ROUNDS_ENV, DEFAULT_ROUNDS);
    println!("saga kill9: {rounds} rounds, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut started: BTreeSet<u64> = BTreeSet::new();
    let mut executions = 0u64;
    let mut kills = 0;
    let mut idle_kills = 0;
    for round in 0..=rounds {
        let finish = round == rounds;
        let from = round * PER_ROUND;
        let mut cmd = kill9_child(TEST_NAME, CHILD_DIR_ENV, dir.path());
        if !finish {
            cmd.env(CHILD_START_ENV, format!("{from}..{}", from + PER_ROUND));
        }
        let kill_after = (!finish).then(|| Duration::from_micros(rng.gen_range(0..60_000)));
        let (lines, killed) = run_child(cmd, "@@", kill_after);
        kills += u64::from(killed);
        for l in lines {
            if let Some(n) = l.strip_prefix("S ") {
                started.insert(n.parse().unwrap());
            } else if l.starts_with("X ") {
                executions += 1;
            } else if l == "D" {
                idle_kills += 1;
            }
        }
    }
    assert_eq!(kills, rounds, "every child but the last is killed");

    let sagas = opts().open(dir.path().join("sagas")).unwrap();
    let services = opts().open(dir.path().join("services")).unwrap();
    let violations: Vec<String> = services
        .read_stream(VIOLATIONS, 0, Direction::Forward, usize::MAX)
        .map(|e| String::from_utf8(e.unwrap().payload).unwrap())
        .collect();
    assert!(violations.is_empty(), "seed {seed}: {violations:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = rt
        .block_on(SagaManager::new(Arc::new(sagas)).list())
        .unwrap();
    let mut by_status: BTreeMap<SagaStatus, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for s in &listed {
        let n: u64 = s.saga_id.parse().unwrap();
        seen.insert(n);
        let (ty, steps, plan) = saga_of(n);
        assert_eq!(s.saga_type, ty);
        let want = expected_status(steps, plan, true);
        assert_eq!(s.status, want, "seed {seed}: saga {n} {plan:?}");
        *by_status.entry(s.status).or_default() += 1;
        // Its effects: the steps before the failing one applied once; undone, last first,
        // exactly when it compensated.
        let applied_steps = plan.fail_step.unwrap_or(steps);
        let mut undo_positions = Vec::new();
        for i in 0..steps {
            let key = format!("{ty}/{n}/{}", step_name(i));
            let events: Vec<_> = services
                .read_stream(&effect_stream(&key), 0, Direction::Forward, usize::MAX)
                .map(|e| e.unwrap())
                .collect();
            let want = match (i < applied_steps, s.status) {
                (false, _) => 0,
                (true, SagaStatus::Compensated) => 2,
                (true, _) => 1,
            };
            assert_eq!(events.len(), want, "seed {seed}: effects of {key}");
            if let Some(undo) = events.get(1) {
                undo_positions.push(undo.position);
            }
        }
        assert!(
            undo_positions.windows(2).all(|w| w[0] > w[1]),
            "seed {seed}: saga {n} undone out of order: {undo_positions:?}"
        );
    }
    let missing: Vec<_> = started.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: acknowledged starts lost: {missing:?}"
    );
    println!(
        "saga kill9: {kills} kills ({idle_kills} after the child had settled its sagas), {} sagas settled {by_status:?} ({} acknowledged starts), \
         {executions} step executions",
        listed.len(),
        started.len()
    );
}
