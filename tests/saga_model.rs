//! Model test: random saga shapes (1 to 6 steps, each with its own retries) and random failures
//! (each step and each compensation fails a drawn number of times, some compensations for
//! ever until healed), several sagas at once, against a model that says which steps complete,
//! which step fails, which compensations run and where a saga parks. Each saga's whole stream is
//! compared with the model's, attempts included; a parked saga is healed and retried.
//!
//! `cargo test --release --all-features --test saga_model`

#![cfg(feature = "bus")]

mod bus_common;
mod saga_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use evlog::saga::{SagaDefinition, SagaManager, SagaRecord, SagaStatus};
use evlog::{Direction, Store};
use proptest::prelude::*;
use saga_common::{quick_policy, step_name};

/// "For ever" (until healed).
const ALWAYS: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct StepShape {
    retries: u32,
    /// Attempts of the step that fail before one succeeds.
    fails: u32,
    /// Attempts of its compensation that fail before one succeeds (`ALWAYS`: until healed).
    compensation_fails: u32,
}

fn step_shape() -> impl Strategy<Value = StepShape> {
    (
        0..3u32,
        prop_oneof![4 => Just(0u32), 1 => 1..4u32],
        prop_oneof![6 => Just(0u32), 2 => 1..3u32, 1 => Just(ALWAYS)],
    )
        .prop_map(|(retries, fails, compensation_fails)| StepShape {
            retries,
            fails,
            compensation_fails,
        })
}

/// Failed attempts so far, by (saga type, step, compensating).
type Failures = Arc<Mutex<HashMap<(String, usize, bool), u32>>>;

/// Whether this attempt fails, counting it.
fn fails(
    failures: &Failures,
    healed: &Arc<Mutex<bool>>,
    key: (String, usize, bool),
    n: u32,
) -> bool {
    if key.2 && n == ALWAYS && *healed.lock().unwrap() {
        return false;
    }
    let mut f = failures.lock().unwrap();
    let count = f.entry(key).or_default();
    if *count < n {
        *count += 1;
        true
    } else {
        false
    }
}

fn definition(
    saga_type: &str,
    shape: &[StepShape],
    failures: &Failures,
    healed: &Arc<Mutex<bool>>,
) -> SagaDefinition<()> {
    let mut def = SagaDefinition::<()>::new(saga_type);
    for (i, s) in shape.iter().enumerate() {
        let (f1, f2, h1, h2) = (
            failures.clone(),
            failures.clone(),
            healed.clone(),
            healed.clone(),
        );
        let (ty1, ty2) = (saga_type.to_owned(), saga_type.to_owned());
        let (n, cn) = (s.fails, s.compensation_fails);
        def = def
            .step(
                step_name(i),
                move |_ctx| {
                    let failed = fails(&f1, &h1, (ty1.clone(), i, false), n);
                    async move {
                        if failed {
                            return Err("step refused".into());
                        }
                        Ok(i)
                    }
                },
                move |_ctx, out: usize| {
                    let failed = fails(&f2, &h2, (ty2.clone(), i, true), cn);
                    async move {
                        assert_eq!(out, i);
                        if failed {
                            return Err("compensation refused".into());
                        }
                        Ok(())
                    }
                },
            )
            .with_policy(quick_policy(s.retries));
    }
    def
}

/// The model: the status a saga first settles with, and the records its stream holds in the
/// end, when the test heals the compensations at the first park and retries the saga until it
/// settles for good.
fn model(shape: &[StepShape]) -> (SagaStatus, Vec<String>) {
    let mut records = vec!["started".to_owned()];
    let failed = shape.iter().position(|s| s.fails > s.retries);
    let completed = failed.unwrap_or(shape.len());
    for (i, s) in shape.iter().enumerate().take(completed) {
        records.push(format!("completed {i} after {}", s.fails + 1));
    }
    let Some(f) = failed else {
        records.push("COMPLETED".into());
        return (SagaStatus::Completed, records);
    };
    records.push(format!("failed {f} after {}", shape[f].retries + 1));
    records.push("compensating".into());
    let mut healed = false;
    for j in (0..f).rev() {
        let s = &shape[j];
        let mut remaining = s.compensation_fails;
        loop {
            if healed && remaining == ALWAYS {
                remaining = 0;
            }
            if remaining <= s.retries {
                records.push(format!("compensated {j} after {}", remaining + 1));
                break;
            }
            records.push(format!("needs attention {j} after {}", s.retries + 1));
            records.push("retry".into());
            healed = true;
            if remaining != ALWAYS {
                remaining -= s.retries + 1;
            }
        }
    }
    records.push("COMPENSATED".into());
    let first = if healed {
        SagaStatus::NeedsAttention
    } else {
        SagaStatus::Compensated
    };
    (first, records)
}

fn shape_of(store: &Store, stream: &str) -> Vec<String> {
    store
        .read_stream(stream, 0, Direction::Forward, usize::MAX)
        .map(|e| match SagaRecord::from_event(&e.unwrap()).unwrap() {
            SagaRecord::Started(_) => "started".into(),
            SagaRecord::StepCompleted { step, .. } => {
                format!("completed {} after {}", step.index, step.attempts)
            }
            SagaRecord::StepFailed { step, .. } => {
                format!("failed {} after {}", step.index, step.attempts)
            }
            SagaRecord::Compensating { .. } => "compensating".into(),
            SagaRecord::StepCompensated(step) => {
                format!("compensated {} after {}", step.index, step.attempts)
            }
            SagaRecord::Completed => "COMPLETED".into(),
            SagaRecord::Compensated => "COMPENSATED".into(),
            SagaRecord::NeedsAttention { step, .. } => {
                format!("needs attention {} after {}", step.index, step.attempts)
            }
            SagaRecord::RetryRequested { .. } => "retry".into(),
        })
        .collect()
}

fn run_case(shapes: &[Vec<StepShape>]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let failures: Failures = Arc::default();
        let healed = Arc::new(Mutex::new(false));
        let manager = SagaManager::new(store.clone());
        let mut handles = Vec::new();
        for (k, shape) in shapes.iter().enumerate() {
            let ty = format!("p{k}");
            let h = manager
                .register(definition(&ty, shape, &failures, &healed))
                .unwrap();
            h.start("x", &()).await.unwrap();
            handles.push(h);
        }
        manager.wait_idle().await;
        let mut parked = Vec::new();
        for (k, shape) in shapes.iter().enumerate() {
            let (status, _) = model(shape);
            prop_assert_eq!(handles[k].wait("x").await.unwrap(), status, "{:?}", shape);
            if status == SagaStatus::NeedsAttention {
                parked.push(k);
            }
        }
        let c = manager.counts();
        prop_assert_eq!(c.needs_attention as usize, parked.len());
        prop_assert_eq!(
            (c.completed + c.compensated + c.needs_attention) as usize,
            shapes.len()
        );
        let listed: Vec<usize> = manager
            .needs_attention()
            .await
            .unwrap()
            .iter()
            .map(|s| s.saga_type[1..].parse().unwrap())
            .collect();
        prop_assert_eq!(&listed, &parked);
        *healed.lock().unwrap() = true;
        for k in parked {
            while handles[k].wait("x").await.unwrap() == SagaStatus::NeedsAttention {
                handles[k].retry("x", "model").await.unwrap();
            }
        }
        for (k, shape) in shapes.iter().enumerate() {
            let stream = format!("$saga-p{k}-x");
            prop_assert_eq!(shape_of(&store, &stream), model(shape).1, "{:?}", shape);
        }
        prop_assert_eq!(manager.counts().needs_attention, 0);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sagas_settle_as_the_model_says(
        shapes in proptest::collection::vec(proptest::collection::vec(step_shape(), 1..7), 1..5)
    ) {
        run_case(&shapes)?;
    }
}
