//! Two managers on one store drive the same unsettled sagas at once: a first manager starts
//! them and dies (its runtime dropped while step 1 of each waits), then two new managers resume
//! every one of them, their steps held until both have resumed, so that both drivers of each
//! saga race for each transition. The expected-version check decides: each saga is advanced by
//! one manager from its first contested append on (its records name the manager), the other
//! stops (counted as lost, once per saga), and every saga settles as its plan says, with each
//! effect once and the compensations last step first.
//!
//! `cargo test --release --all-features --test saga_concurrent`

#![cfg(feature = "bus")]

mod bus_common;
mod saga_common;

use std::collections::BTreeSet;
use std::sync::Arc;

use evlog::Direction;
use evlog::saga::{MANAGER_METADATA_KEY, SagaManager};
use saga_common::{Effects, Ledger, Plan, check_effects, definition_over, expected_status};
use tokio::sync::watch;

const SAGAS: usize = 24;
const STEPS: usize = 4;

fn plan_of(i: usize) -> Plan {
    Plan {
        fail_step: [None, Some(2), None, Some(3), Some(1)][i % 5],
        fail_compensation: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn two_managers_resuming_the_same_sagas_advance_each_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let ledger = Ledger::default();
    let effects: Arc<dyn Effects> = Arc::new(ledger.clone());

    // The first manager starts the sagas and dies with step 1 of each waiting at its gate
    // (which outlives its runtime: a closed gate would fail the steps).
    let (_never, gate) = watch::channel(false);
    runtime().block_on(async {
        let manager = SagaManager::new(store.clone());
        let race = manager
            .register(definition_over(
                "race",
                STEPS,
                effects.clone(),
                Some((1, gate)),
            ))
            .unwrap();
        for i in 0..SAGAS {
            race.start(&i.to_string(), &plan_of(i)).await.unwrap();
        }
        while (0..SAGAS).any(|i| store.stream_version(&format!("$saga-race-{i}")) != Some(1)) {
            tokio::task::yield_now().await;
        }
    });

    runtime().block_on(async {
        let (open, gate) = watch::channel(false);
        let managers: Vec<SagaManager> = (0..2).map(|_| SagaManager::new(store.clone())).collect();
        for m in &managers {
            let def = definition_over("race", STEPS, effects.clone(), Some((1, gate.clone())));
            m.register(def).unwrap();
        }
        let (a, b) = tokio::join!(managers[0].resume(), managers[1].resume());
        for r in [a.unwrap(), b.unwrap()] {
            assert_eq!(r.resumed.len(), SAGAS, "{r:?}");
        }
        open.send_replace(true);
        for m in &managers {
            m.wait_idle().await;
        }
        let counts: Vec<_> = managers.iter().map(|m| m.counts()).collect();
        let lost: u64 = counts.iter().map(|c| c.lost).sum();
        let settled: u64 = counts.iter().map(|c| c.completed + c.compensated).sum();
        assert_eq!((lost, settled), (SAGAS as u64, SAGAS as u64), "{counts:?}");

        let l = ledger.state();
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        let ids: Vec<String> = managers.iter().map(|m| m.id().to_string()).collect();
        let mut winners = BTreeSet::new();
        for i in 0..SAGAS {
            let id = i.to_string();
            let state = managers[0].state("race", &id).await.unwrap().unwrap();
            let plan = plan_of(i);
            assert_eq!(
                state.status,
                expected_status(STEPS, plan, false),
                "saga {i}"
            );
            check_effects(
                &format!("saga {i}"),
                &l,
                "race",
                &id,
                STEPS,
                plan,
                state.status,
            );
            // The records after the first manager's all name one of the two new managers.
            let owners: BTreeSet<String> = store
                .read_stream(&state.stream, 2, Direction::Forward, usize::MAX)
                .map(|e| {
                    let e = e.unwrap();
                    e.metadata
                        .extra
                        .get(MANAGER_METADATA_KEY)
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(owners.len(), 1, "saga {i} advanced by {owners:?}");
            assert!(
                ids.contains(owners.first().unwrap()),
                "saga {i}: {owners:?}"
            );
            winners.extend(owners);
        }
        // Both step 1 runs of each saga were made (one by each manager) under one key: the
        // effect happened once.
        for i in (0..SAGAS).filter(|i| plan_of(*i).fail_step != Some(1)) {
            assert_eq!(l.executions[&format!("race/{i}/s1")], 2, "saga {i}");
            assert_eq!(l.applications[&format!("race/{i}/s1")], 1, "saga {i}");
        }
        println!(
            "saga concurrent: {} managers won sagas; {counts:?}",
            winners.len()
        );
    });
}
