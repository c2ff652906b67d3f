//! Power loss at every file operation of a run of several sagas (some of which fail and
//! compensate), on the fault-injecting file system, under each power-loss variant: the store
//! opens, a new manager resumes what the crash left unsettled and starts the sagas not started,
//! and then every saga is completed or compensated as its plan says, no step's effect was
//! applied twice (the steps honour their idempotency keys on a ledger that survives the crash),
//! nothing was compensated that never completed, and compensations ran last step first.
//!
//! `cargo test --release --all-features --test saga_crash_points -- --nocapture`

#![cfg(all(feature = "bus", feature = "fault-injection"))]

mod saga_common;

use std::path::Path;
use std::sync::Arc;

use evlog::io::fault::{ALL_POWER_LOSSES, FaultFs};
use evlog::saga::{SagaError, SagaManager};
use evlog::{Durability, Store, StoreOptions};
use saga_common::{Ledger, Plan, check_effects, definition, expected_status};

const DIR: &str = "/store";

/// The sagas of the run: (type, steps, id, plan).
fn sagas() -> Vec<(&'static str, usize, String, Plan)> {
    let fails = [
        None,
        Some(1),
        None,
        Some(2),
        Some(0),
        None,
        Some(3),
        Some(1),
    ];
    fails
        .iter()
        .enumerate()
        .map(|(i, &fail_step)| {
            let (ty, steps) = if i % 2 == 0 {
                ("three", 3)
            } else {
                ("four", 4)
            };
            let plan = Plan {
                fail_step,
                fail_compensation: None,
            };
            (ty, steps, format!("s{i}"), plan)
        })
        .collect()
}

fn opts(fs: &FaultFs) -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
}

/// Resumes the unsettled sagas, starts those not started, waits until all are driven to the
/// end; stops at the first error (the power went off).
fn run(store: &Arc<Store>, ledger: &Ledger) -> Result<(), SagaError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let manager = SagaManager::new(store.clone());
        let three = manager.register(definition("three", 3, ledger))?;
        let four = manager.register(definition("four", 4, ledger))?;
        manager.resume().await?;
        for (ty, _, id, plan) in sagas() {
            let handle = if ty == "three" { &three } else { &four };
            match handle.start(&id, &plan).await {
                Ok(()) | Err(SagaError::AlreadyStarted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for (ty, _, id, _) in sagas() {
            let status = manager.wait(ty, &id).await?;
            if !status.is_settled() {
                return Err(SagaError::TaskStopped {
                    stream: id,
                    reason: format!("stopped {status}"),
                });
            }
        }
        Ok(())
    })
}

/// Every saga settled as its plan says, with its effects applied once and undone as they
/// should be.
fn check(ctx: &str, store: &Arc<Store>, ledger: &Ledger) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = ledger.state();
    assert!(l.violations.is_empty(), "{ctx}: {:?}", l.violations);
    rt.block_on(async {
        let manager = SagaManager::new(store.clone());
        for (ty, steps, id, plan) in sagas() {
            let state = manager
                .state(ty, &id)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {ty}/{id}: {e}"))
                .unwrap_or_else(|| panic!("{ctx}: {ty}/{id} never started"));
            let want = expected_status(steps, plan, false);
            assert_eq!(state.status, want, "{ctx}: {ty}/{id}");
            check_effects(ctx, &l, ty, &id, steps, plan, state.status);
        }
        let c = {
            manager.resume().await.unwrap();
            manager.counts()
        };
        assert_eq!((c.active, c.completed + c.compensated), (0, 8), "{ctx}");
    });
    let rep = store.verify().unwrap();
    assert!(rep.is_clean(), "{ctx}: verify: {:?}", rep.problems);
}

#[test]
fn power_loss_at_every_operation_of_running_sagas_leaves_each_completed_or_compensated_once() {
    let dir = Path::new(DIR);
    let probe = FaultFs::new();
    let ledger = Ledger::default();
    let store = Arc::new(opts(&probe).open(dir).unwrap());
    run(&store, &ledger).unwrap();
    check("no crash", &store, &ledger);
    drop(store);
    let total = probe.ops();
    let mut checked = 0;
    let mut resumed_steps = 0u64;
    for k in 0..=total {
        let fs = FaultFs::new();
        fs.power_off_after(k);
        let crashed = Ledger::default();
        if let Ok(store) = opts(&fs).open(dir) {
            let store = Arc::new(store);
            let _ = run(&store, &crashed);
            std::mem::forget(store); // the power is off: no clean close
        }
        for mode in ALL_POWER_LOSSES {
            let ctx = format!("power off after op {k} of {total}, {mode:?}");
            let disk = fs.after_power_loss(mode, k);
            let ledger = crashed.fork();
            let store = Arc::new(
                opts(&disk)
                    .open(dir)
                    .unwrap_or_else(|e| panic!("{ctx}: open: {e}")),
            );
            run(&store, &ledger).unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
            check(&ctx, &store, &ledger);
            let l = ledger.state();
            resumed_steps += l
                .executions
                .values()
                .map(|n| u64::from(*n - 1))
                .sum::<u64>();
            checked += 1;
        }
    }
    println!(
        "saga crash points checked: {checked} ({total} operations x variants); \
         {resumed_steps} step runs were repeats whose effect the idempotency key kept single"
    );
    assert!(
        total > 60,
        "the run should write many records ({total} operations)"
    );
    assert!(
        resumed_steps > 0,
        "some crash should fall between a step and its record"
    );
}
