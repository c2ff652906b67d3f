//! Saga behaviour: the happy path, compensation in reverse order over the completed steps only,
//! a compensation that fails parking the saga until an operator retries it, timeouts (on the
//! paused tokio clock), typed outputs handed to later steps and to compensations, duplicate
//! ids, bad input, and sagas started from bus events.
//!
//! `cargo test --release --all-features --test saga`

#![cfg(feature = "bus")]

mod bus_common;
mod saga_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog::bus::{Backoff, BusConfig, DomainEvent, EventBus};
use evlog::saga::{
    SagaDefinition, SagaError, SagaHandle, SagaManager, SagaRecord, SagaStatus, StepPolicy,
    saga_stream,
};
use evlog::{Direction, ExpectedVersion, Store};
use saga_common::{Ledger, Plan, check_effects, definition, quick_policy};

/// The records of a saga's stream.
fn records(store: &Store, stream: &str) -> Vec<SagaRecord> {
    store
        .read_stream(stream, 0, Direction::Forward, usize::MAX)
        .map(|e| SagaRecord::from_event(&e.unwrap()).unwrap())
        .collect()
}

/// The record types of a saga's stream, with the step index where there is one.
fn shape(store: &Store, stream: &str) -> Vec<String> {
    records(store, stream)
        .into_iter()
        .map(|r| match r {
            SagaRecord::Started(_) => "started".into(),
            SagaRecord::StepCompleted { step, .. } => format!("completed {}", step.index),
            SagaRecord::StepFailed { step, .. } => {
                format!("failed {} after {}", step.index, step.attempts)
            }
            SagaRecord::Compensating { .. } => "compensating".into(),
            SagaRecord::StepCompensated(step) => format!("compensated {}", step.index),
            SagaRecord::Completed => "COMPLETED".into(),
            SagaRecord::Compensated => "COMPENSATED".into(),
            SagaRecord::NeedsAttention { step, .. } => format!("needs attention {}", step.index),
            SagaRecord::RetryRequested { by } => format!("retry by {by}"),
        })
        .collect()
}

/// A store, a manager, and the test saga `saga_type` of `steps` steps on a fresh ledger.
fn ledger_saga(
    saga_type: &str,
    steps: usize,
) -> (
    tempfile::TempDir,
    Arc<Store>,
    Ledger,
    SagaManager,
    SagaHandle<Plan>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let ledger = Ledger::default();
    let manager = SagaManager::new(store.clone());
    let saga = manager
        .register(definition(saga_type, steps, &ledger))
        .unwrap();
    (dir, store, ledger, manager, saga)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_whose_steps_succeed_completes_with_each_output_recorded() {
    let (_dir, store, ledger, manager, saga) = ledger_saga("shape3", 3);
    saga.start("a", &Plan::default()).await.unwrap();
    assert_eq!(saga.wait("a").await.unwrap(), SagaStatus::Completed);

    let stream = saga_stream("shape3", "a");
    assert_eq!(stream, "$saga-shape3-a");
    assert_eq!(
        shape(&store, &stream),
        [
            "started",
            "completed 0",
            "completed 1",
            "completed 2",
            "COMPLETED"
        ]
    );
    let l = ledger.state();
    check_effects(
        "happy",
        &l,
        "shape3",
        "a",
        3,
        Plan::default(),
        SagaStatus::Completed,
    );
    // The outputs are in the stream, and in the state folded from it.
    let state = saga.state("a").await.unwrap().unwrap();
    assert_eq!(state.status, SagaStatus::Completed);
    assert_eq!(state.outputs.len(), 3);
    assert_eq!(
        state.outputs[1]["token"].as_str().unwrap(),
        l.applied["shape3/a/s1"]
    );
    assert_eq!(state.started.steps, ["s0", "s1", "s2"]);
    let c = manager.counts();
    assert_eq!(
        (c.active, c.completed, c.compensated, c.needs_attention),
        (0, 1, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_compensates_the_completed_steps_in_reverse_order_and_no_other() {
    let (_dir, store, ledger, manager, saga) = ledger_saga("shape5", 5);
    let plan = Plan::failing_at(3);
    saga.start("b", &plan).await.unwrap();
    assert_eq!(saga.wait("b").await.unwrap(), SagaStatus::Compensated);
    assert_eq!(
        shape(&store, "$saga-shape5-b"),
        [
            "started",
            "completed 0",
            "completed 1",
            "completed 2",
            // The default policy of the test saga: one retry.
            "failed 3 after 2",
            "compensating",
            "compensated 2",
            "compensated 1",
            "compensated 0",
            "COMPENSATED",
        ]
    );
    let l = ledger.state();
    check_effects("fail", &l, "shape5", "b", 5, plan, SagaStatus::Compensated);
    assert_eq!(
        l.journal,
        [
            "exec shape5/b/s0",
            "exec shape5/b/s1",
            "exec shape5/b/s2",
            "undo shape5/b/s2",
            "undo shape5/b/s1",
            "undo shape5/b/s0",
        ]
    );
    assert!(
        !l.executions.contains_key("shape5/b/s4"),
        "no step after the failed one runs"
    );
    let state = saga.state("b").await.unwrap().unwrap();
    let (failed, error) = state.failed.unwrap();
    assert_eq!((failed.step.as_str(), failed.attempts), ("s3", 2));
    assert_eq!(error, "step 3 refused");

    // A saga whose first step fails has nothing to undo.
    let first = Plan::failing_at(0);
    saga.start("c", &first).await.unwrap();
    assert_eq!(saga.wait("c").await.unwrap(), SagaStatus::Compensated);
    assert_eq!(
        shape(&store, "$saga-shape5-c"),
        ["started", "failed 0 after 2", "compensating", "COMPENSATED"]
    );
    assert_eq!(manager.counts().compensated, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_compensation_parks_the_saga_until_an_operator_retries_it() {
    let (_dir, store, ledger, manager, saga) = ledger_saga("shape4", 4);
    let plan = Plan {
        fail_step: Some(3),
        fail_compensation: Some(1),
    };
    saga.start("d", &plan).await.unwrap();
    assert_eq!(saga.wait("d").await.unwrap(), SagaStatus::NeedsAttention);
    let stream = "$saga-shape4-d";
    assert_eq!(
        shape(&store, stream),
        [
            "started",
            "completed 0",
            "completed 1",
            "completed 2",
            "failed 3 after 2",
            "compensating",
            "compensated 2",
            "needs attention 1",
        ]
    );
    let c = manager.counts();
    assert_eq!((c.active, c.needs_attention, c.compensated), (0, 1, 0));

    // Listed, with the step and the reason.
    let parked = manager.needs_attention().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].saga_type.as_str(), parked[0].saga_id.as_str()),
        ("shape4", "d")
    );
    assert_eq!(
        parked[0].attention,
        Some(("s1".to_owned(), "compensation 1 refused".to_owned()))
    );
    // A new manager sees it parked and does not drive it.
    let other = SagaManager::new(store.clone());
    other.register(definition("shape4", 4, &ledger)).unwrap();
    let report = other.resume().await.unwrap();
    assert_eq!((report.resumed.len(), report.needs_attention), (0, 1));
    assert_eq!(other.counts().needs_attention, 1);

    // A retry that fails again parks it again.
    saga.retry("d", "ops@example.com").await.unwrap();
    assert_eq!(saga.wait("d").await.unwrap(), SagaStatus::NeedsAttention);
    // Healed: the retry undoes steps 1 and 0.
    ledger.heal();
    saga.retry("d", "ops@example.com").await.unwrap();
    assert_eq!(saga.wait("d").await.unwrap(), SagaStatus::Compensated);
    assert_eq!(
        shape(&store, stream)[8..],
        [
            "retry by ops@example.com",
            "needs attention 1",
            "retry by ops@example.com",
            "compensated 1",
            "compensated 0",
            "COMPENSATED",
        ]
    );
    let l = ledger.state();
    check_effects("retry", &l, "shape4", "d", 4, plan, SagaStatus::Compensated);
    let c = manager.counts();
    assert_eq!((c.needs_attention, c.compensated), (0, 1));
    assert!(manager.needs_attention().await.unwrap().is_empty());

    // Only a parked saga is retried.
    let e = saga.retry("d", "ops").await.unwrap_err();
    assert!(
        matches!(
            e,
            SagaError::NotParked {
                status: SagaStatus::Compensated,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        saga.retry("nope", "ops").await.unwrap_err(),
        SagaError::NotFound { .. }
    ));
    assert!(matches!(
        manager.retry("other", "d", "ops").await.unwrap_err(),
        SagaError::UnknownType(_)
    ));
}

/// A step that never answers, with a timeout of 10 s and two retries 1 s then 2 s apart: on the
/// paused clock the saga gives up after three attempts and compensates, 33 virtual seconds on.
#[tokio::test(start_paused = true)]
async fn a_step_that_times_out_fails_after_its_retries_and_compensates() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let journal = Arc::new(Mutex::new(Vec::<String>::new()));
    let (j1, j2, j3) = (journal.clone(), journal.clone(), journal.clone());
    let def = SagaDefinition::<u32>::new("slow")
        .step(
            "hold",
            move |ctx| {
                let j = j1.clone();
                async move {
                    j.lock().unwrap().push(format!("hold {}", ctx.input()));
                    Ok(*ctx.input() * 10)
                }
            },
            move |_ctx, held: u32| {
                let j = j2.clone();
                async move {
                    j.lock().unwrap().push(format!("release {held}"));
                    Ok(())
                }
            },
        )
        .step_without_compensation("ask", move |ctx| {
            let j = j3.clone();
            async move {
                j.lock()
                    .unwrap()
                    .push(format!("ask attempt {}", ctx.attempt()));
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        })
        .with_policy(StepPolicy {
            max_retries: 2,
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
            timeout: Some(Duration::from_secs(10)),
        });
    let manager = SagaManager::new(store.clone());
    let saga = manager.register(def).unwrap();
    let t0 = tokio::time::Instant::now();
    saga.start("t", &7).await.unwrap();
    assert_eq!(saga.wait("t").await.unwrap(), SagaStatus::Compensated);
    let waited = t0.elapsed();
    assert_eq!(
        *journal.lock().unwrap(),
        [
            "hold 7",
            "ask attempt 1",
            "ask attempt 2",
            "ask attempt 3",
            "release 70"
        ]
    );
    // Three attempts of 10 s, and backoffs of 0.5-1 s and 1-2 s between them.
    assert!(
        waited >= Duration::from_millis(31_500) && waited < Duration::from_secs(3600),
        "{waited:?}"
    );
    let state = saga.state("t").await.unwrap().unwrap();
    let (step, error) = state.failed.unwrap();
    assert_eq!((step.step.as_str(), step.attempts), ("ask", 3));
    assert_eq!(error, "timed out after 10s");
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Quote {
    price: u64,
    currency: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_outputs_reach_later_steps_and_the_compensation() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let def = SagaDefinition::<String>::new("typed")
        .default_policy(quick_policy(0))
        .step(
            "quote",
            |ctx| async move {
                Ok(Quote {
                    price: ctx.input().len() as u64 * 100,
                    currency: "EUR".into(),
                })
            },
            move |_ctx, q: Quote| {
                let s = s1.clone();
                async move {
                    s.lock()
                        .unwrap()
                        .push(format!("cancel quote {} {}", q.price, q.currency));
                    Ok(())
                }
            },
        )
        .step(
            "charge",
            move |ctx| {
                let s = s2.clone();
                async move {
                    let q: Quote = ctx.output("quote")?;
                    // The wrong type, or a step that has not run, is an error the step sees.
                    assert!(ctx.output::<Vec<u8>>("quote").is_err());
                    assert!(ctx.output::<Quote>("ship").is_err());
                    s.lock()
                        .unwrap()
                        .push(format!("charge {} {}", q.price, q.currency));
                    Ok((q.price, format!("charge-{}", ctx.idempotency_key())))
                }
            },
            move |ctx, (amount, id): (u64, String)| {
                let s = s3.clone();
                async move {
                    assert!(ctx.is_compensation());
                    let q: Quote = ctx.output("quote")?;
                    s.lock()
                        .unwrap()
                        .push(format!("refund {amount} {} {id}", q.currency));
                    Ok(())
                }
            },
        )
        .step_without_compensation("ship", |ctx| async move {
            if ctx.input().starts_with("bad") {
                return Err("no address".into());
            }
            Ok(())
        });
    let manager = SagaManager::new(store.clone());
    let saga = manager.register(def).unwrap();
    saga.start("1", &"good".to_owned()).await.unwrap();
    saga.start("2", &"bad-order".to_owned()).await.unwrap();
    assert_eq!(saga.wait("1").await.unwrap(), SagaStatus::Completed);
    assert_eq!(saga.wait("2").await.unwrap(), SagaStatus::Compensated);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "cancel quote 900 EUR",
            "charge 400 EUR",
            "charge 900 EUR",
            "refund 900 EUR charge-typed/2/charge",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_id_starts_once_and_bad_input_is_refused_clearly() {
    let (_dir, store, ledger, manager, saga) = ledger_saga("dup", 2);
    saga.start("x", &Plan::default()).await.unwrap();
    // While it runs, and after it completed: refused, nothing written.
    let e = saga.start("x", &Plan::default()).await.unwrap_err();
    assert!(matches!(e, SagaError::AlreadyStarted { .. }), "{e}");
    assert!(e.to_string().contains("already started"), "{e}");
    assert_eq!(saga.wait("x").await.unwrap(), SagaStatus::Completed);
    let version = store.stream_version("$saga-dup-x");
    assert!(matches!(
        saga.start("x", &Plan::default()).await.unwrap_err(),
        SagaError::AlreadyStarted { .. }
    ));
    assert_eq!(store.stream_version("$saga-dup-x"), version);
    assert_eq!(ledger.state().applications["dup/x/s0"], 1);

    // Many starts of one id at once: one saga.
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let saga = saga.clone();
            tokio::spawn(async move { saga.start("y", &Plan::default()).await })
        })
        .collect();
    let mut ok = 0;
    for s in starts {
        match s.await.unwrap() {
            Ok(()) => ok += 1,
            Err(SagaError::AlreadyStarted { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
    manager.wait_idle().await;
    assert_eq!(ledger.state().applications["dup/y/s1"], 1);

    // Bad input.
    assert!(matches!(
        saga.start("", &Plan::default()).await.unwrap_err(),
        SagaError::BadId { .. }
    ));
    for (def, what) in [
        (definition("a-b", 1, &ledger), "`-`"),
        (definition("", 1, &ledger), "empty"),
        (definition("none", 0, &ledger), "at least one step"),
        (
            definition("twice", 1, &ledger).step_without_compensation("s0", |_| async { Ok(()) }),
            "two steps",
        ),
    ] {
        let e = manager.register(def).unwrap_err();
        assert!(
            matches!(e, SagaError::Definition { .. }) && e.to_string().contains(what),
            "{e}"
        );
    }
    assert!(matches!(
        manager.register(definition("dup", 1, &ledger)).unwrap_err(),
        SagaError::AlreadyRegistered(_)
    ));
    // A stream that is not a saga's is a clear error, not a panic.
    store
        .append(
            "$saga-dup-z",
            ExpectedVersion::NoStream,
            &[evlog::EventData::new("Other", b"{}".to_vec())],
        )
        .unwrap();
    assert!(matches!(
        saga.state("z").await.unwrap_err(),
        SagaError::BadRecord { .. }
    ));
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AIResultCreated {
    user: String,
}

impl DomainEvent for AIResultCreated {
    const EVENT_TYPE: &'static str = "AIResultCreated";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_start_from_bus_events_once_per_correlation_key() {
    let (_dir, store, ledger, manager, saga) = ledger_saga("scoring", 2);
    let bus = EventBus::new(store.clone(), BusConfig::default().idle_poll_ms(5));
    // The saga id is the event's stream (the AI result's aggregate id); users named "skip"
    // start nothing.
    saga.start_on(&bus, "scoring-starter", |ctx, e: AIResultCreated| {
        (e.user != "skip").then(|| (ctx.event().stream.to_string(), Plan::default()))
    })
    .unwrap();
    let mut last = 0;
    for (stream, user) in [
        ("ai-1", "ada"),
        ("ai-2", "bob"),
        ("ai-1", "ada"),
        ("ai-3", "skip"),
    ] {
        let r = bus
            .publish_event(
                stream,
                ExpectedVersion::Any,
                &AIResultCreated { user: user.into() },
            )
            .await
            .unwrap();
        last = r.last_position;
    }
    bus.wait_for("scoring-starter", last).await.unwrap();
    manager.wait_idle().await;
    for id in ["ai-1", "ai-2"] {
        assert_eq!(saga.wait(id).await.unwrap(), SagaStatus::Completed);
    }
    assert!(matches!(
        saga.wait("ai-3").await.unwrap_err(),
        SagaError::NotFound { .. }
    ));
    let l = ledger.state();
    assert_eq!(l.applications.len(), 4, "{:?}", l.applications);
    assert!(l.applications.values().all(|n| *n == 1));
    assert_eq!(bus.stats("scoring-starter").unwrap().skipped, 1);
    let listed: Vec<String> = manager
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.stream)
        .collect();
    assert_eq!(listed, ["$saga-scoring-ai-1", "$saga-scoring-ai-2"]);
    bus.shutdown().await.unwrap();
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PaymentConfirmed {
    order: String,
    amount: u64,
}

impl DomainEvent for PaymentConfirmed {
    const EVENT_TYPE: &'static str = "PaymentConfirmed";
}

/// A saga whose second step waits for the order's `PaymentConfirmed` (routed by its `order`
/// field) for at most `deadline`; its first step's compensation is journaled.
fn payment_saga(deadline: Duration, journal: &Arc<Mutex<Vec<String>>>) -> SagaDefinition<()> {
    let j = journal.clone();
    SagaDefinition::<()>::new("payment")
        .default_policy(quick_policy(0))
        .step(
            "reserve",
            |_ctx| async { Ok(()) },
            move |ctx, ()| {
                let j = j.clone();
                async move {
                    j.lock().unwrap().push(format!(
                        "release {}: {}",
                        ctx.saga_id(),
                        ctx.failure().unwrap_or("?")
                    ));
                    Ok(())
                }
            },
        )
        .step_without_compensation("await_payment", move |ctx| async move {
            let paid: PaymentConfirmed = ctx.wait_for_event(deadline).await?;
            assert_eq!(paid.order, ctx.saga_id());
            Ok(paid.amount)
        })
}

/// A store, a bus polling every `idle_poll_ms`, a manager running [`payment_saga`] with
/// `PaymentConfirmed` routed by its order, and the saga's compensation journal.
struct Payments {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    bus: EventBus,
    manager: SagaManager,
    saga: SagaHandle<()>,
    journal: Arc<Mutex<Vec<String>>>,
}

fn payments(deadline: Duration, idle_poll_ms: u64) -> Payments {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let bus = EventBus::new(
        store.clone(),
        BusConfig::default().idle_poll_ms(idle_poll_ms),
    );
    let manager = SagaManager::new(store.clone());
    let journal = Arc::new(Mutex::new(Vec::new()));
    let saga = manager.register(payment_saga(deadline, &journal)).unwrap();
    manager
        .route(&bus, "payment-router", |_e, p: PaymentConfirmed| {
            Some(p.order)
        })
        .unwrap();
    Payments {
        _dir: dir,
        store,
        bus,
        manager,
        saga,
        journal,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waits_for_the_event_routed_to_its_saga_by_correlation_key() {
    let Payments {
        _dir,
        bus,
        manager,
        saga,
        journal,
        ..
    } = payments(Duration::from_secs(3600), 5);
    assert!(matches!(
        manager
            .route(&bus, "again", |_e, p: PaymentConfirmed| Some(p.order))
            .unwrap_err(),
        SagaError::AlreadyRouted(_)
    ));
    let paid = |order: &str, amount| PaymentConfirmed {
        order: order.into(),
        amount,
    };
    // A confirmation before the saga started is not its.
    bus.publish_event("payments", ExpectedVersion::Any, &paid("o1", 1))
        .await
        .unwrap();
    saga.start("o1", &()).await.unwrap();
    saga.start("o2", &()).await.unwrap();
    bus.publish_event("payments", ExpectedVersion::Any, &paid("o2", 20))
        .await
        .unwrap();
    assert_eq!(saga.wait("o2").await.unwrap(), SagaStatus::Completed);
    // o1 saw o2's confirmation arrive, and goes on waiting for its own.
    let o1 = saga.state("o1").await.unwrap().unwrap();
    assert_eq!(o1.status, SagaStatus::Running);
    bus.publish_event("payments", ExpectedVersion::Any, &paid("o1", 10))
        .await
        .unwrap();
    assert_eq!(saga.wait("o1").await.unwrap(), SagaStatus::Completed);
    for (id, amount) in [("o1", 10), ("o2", 20)] {
        let s = saga.state(id).await.unwrap().unwrap();
        assert_eq!(s.outputs[1], serde_json::json!(amount), "{id}");
    }
    assert!(journal.lock().unwrap().is_empty());
    bus.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_event_does_not_come_before_its_deadline_fails_and_compensates() {
    let Payments {
        _dir,
        store,
        bus,
        saga,
        journal,
        ..
    } = payments(Duration::from_secs(30), 1_000);
    let t0 = tokio::time::Instant::now();
    saga.start("late", &()).await.unwrap();
    assert_eq!(saga.wait("late").await.unwrap(), SagaStatus::Compensated);
    assert!(
        t0.elapsed() >= Duration::from_secs(30),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        *journal.lock().unwrap(),
        [
            "release late: step \"await_payment\" failed: no PaymentConfirmed for saga \"late\" \
          within 30s"
        ]
    );
    // A step waiting for events nobody routes fails at once, saying so.
    let other = SagaManager::new(store.clone());
    let unrouted = other
        .register(payment_saga(Duration::from_secs(30), &journal))
        .unwrap();
    unrouted.start("unrouted", &()).await.unwrap();
    assert_eq!(
        unrouted.wait("unrouted").await.unwrap(),
        SagaStatus::Compensated
    );
    let s = unrouted.state("unrouted").await.unwrap().unwrap();
    assert!(
        s.failed
            .unwrap()
            .1
            .contains("no route for PaymentConfirmed")
    );
    bus.shutdown().await.unwrap();
}

/// A saga of [`payment_saga`] (deadline `deadline`) started by one manager and left waiting
/// for its payment when that manager stops (as a crash leaves it), then resumed by a second
/// manager whose wall clock is `later` ahead of the system's. Returns how long (on tokio's
/// paused clock) the resumed saga took to settle, how it settled, and its journal.
async fn resumed_after(deadline: Duration, later: Duration) -> (Duration, SagaStatus, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let journal = Arc::new(Mutex::new(Vec::new()));
    let route = |manager: &SagaManager, bus: &EventBus| {
        manager
            .route(bus, "payment-router", |_e, p: PaymentConfirmed| {
                Some(p.order)
            })
            .unwrap();
    };
    {
        let bus = EventBus::new(store.clone(), BusConfig::default().idle_poll_ms(1_000));
        let first = SagaManager::new(store.clone());
        let saga = first.register(payment_saga(deadline, &journal)).unwrap();
        route(&first, &bus);
        saga.start("o", &()).await.unwrap();
        // Until its first step is recorded: the second one is waiting.
        while saga.state("o").await.unwrap().unwrap().outputs.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        first.shutdown().await;
        bus.shutdown().await.unwrap();
    }
    let bus = EventBus::new(store.clone(), BusConfig::default().idle_poll_ms(1_000));
    let ahead = later.as_micros() as u64;
    let second = SagaManager::with_clock(store.clone(), move || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
            + ahead
    });
    let saga = second.register(payment_saga(deadline, &journal)).unwrap();
    route(&second, &bus);
    let t0 = tokio::time::Instant::now();
    let report = second.resume().await.unwrap();
    assert_eq!(report.resumed.len(), 1);
    let status = saga.wait("o").await.unwrap();
    let took = t0.elapsed();
    bus.shutdown().await.unwrap();
    let journal = journal.lock().unwrap().clone();
    (took, status, journal)
}

#[tokio::test(start_paused = true)]
async fn a_resumed_step_waits_only_for_what_is_left_of_its_deadline() {
    let hour = Duration::from_secs(3600);
    // (The paused clock also jumps ahead to the next timer, a bus poll, whenever every task
    // waits for a blocking store call: the bounds leave room for that, and still tell a
    // fresh hour from what is left of one.)
    // Resumed two hours after the step began: its hour is gone, it fails at once.
    let (took, status, journal) = resumed_after(hour, 2 * hour).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert!(took < hour / 2, "{took:?}");
    assert_eq!(
        journal,
        [
            "release o: step \"await_payment\" failed: no PaymentConfirmed for saga \"o\" within 3600s"
        ]
    );
    // Resumed half an hour after: it waits for the half hour left, not a whole hour.
    let (took, status, _) = resumed_after(hour, hour / 2).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert!(
        took >= Duration::from_secs(29 * 60) && took < hour,
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_panics_fails_like_an_error_and_is_compensated() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let undone = Arc::new(Mutex::new(Vec::<String>::new()));
    let u = undone.clone();
    let def = SagaDefinition::<u32>::new("panicky")
        .default_policy(quick_policy(2))
        .step(
            "first",
            |_ctx| async { Ok(1u32) },
            move |ctx, _: u32| {
                let u = u.clone();
                async move {
                    u.lock().unwrap().push(ctx.failure().unwrap().to_owned());
                    Ok(())
                }
            },
        )
        .step_without_compensation("second", |ctx| async move {
            if *ctx.input() == 0 {
                panic!("divide by zero (attempt {})", ctx.attempt());
            }
            Ok(10 / *ctx.input())
        });
    let manager = SagaManager::new(store.clone());
    let saga = manager.register(def).unwrap();
    saga.start("p", &0).await.unwrap();
    saga.start("q", &5).await.unwrap();
    assert_eq!(saga.wait("p").await.unwrap(), SagaStatus::Compensated);
    assert_eq!(saga.wait("q").await.unwrap(), SagaStatus::Completed);
    let (step, error) = saga.state("p").await.unwrap().unwrap().failed.unwrap();
    assert_eq!((step.step.as_str(), step.attempts), ("second", 3));
    assert_eq!(error, "panicked: divide by zero (attempt 3)");
    assert_eq!(
        *undone.lock().unwrap(),
        ["step \"second\" failed: panicked: divide by zero (attempt 3)"]
    );
    assert_eq!(manager.counts().active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_the_attempt_under_way_and_a_new_manager_resumes_the_saga() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let stuck = SagaDefinition::<u32>::new("resumable")
        .step_without_compensation("a", |ctx| async move { Ok(*ctx.input()) })
        .step_without_compensation("b", |_ctx| async {
            std::future::pending::<()>().await;
            Ok(0u32)
        });
    let first = SagaManager::new(store.clone());
    let stuck = first.register(stuck).unwrap();
    stuck.start("r", &4).await.unwrap();
    while store.stream_version("$saga-resumable-r") != Some(1) {
        tokio::task::yield_now().await;
    }
    first.shutdown().await;
    assert_eq!(first.counts().active, 0);
    assert!(matches!(
        stuck.start("s", &1).await.unwrap_err(),
        SagaError::ShutDown
    ));
    let state = stuck.state("r").await.unwrap().unwrap();
    assert_eq!(
        (state.status, state.outputs.len()),
        (SagaStatus::Running, 1)
    );

    let healthy = SagaDefinition::<u32>::new("resumable")
        .step_without_compensation("a", |_ctx| async { Ok(0u32) })
        .step_without_compensation("b", |ctx| async move {
            let a: u32 = ctx.output("a")?;
            Ok(a * 10)
        });
    let second = SagaManager::new(store.clone());
    let saga = second.register(healthy).unwrap();
    let report = second.resume().await.unwrap();
    assert_eq!(report.resumed, ["$saga-resumable-r"]);
    assert_eq!(saga.wait("r").await.unwrap(), SagaStatus::Completed);
    let state = saga.state("r").await.unwrap().unwrap();
    // Step a's output is the first run's (it was recorded); b ran in the second manager.
    assert_eq!(state.outputs, [serde_json::json!(4), serde_json::json!(40)]);

    // Shut down and dropped, the managers leave the store to be closed.
    second.shutdown().await;
    drop((first, second, stuck, saga));
    let store = Arc::try_unwrap(store).expect("nothing of the managers holds the store");
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_leaves_sagas_of_unknown_types_and_of_changed_definitions_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let pending = || {
        SagaDefinition::<u32>::new("kept").step_without_compensation("a", |_ctx| async {
            std::future::pending::<()>().await;
            Ok(())
        })
    };
    let first = SagaManager::new(store.clone());
    first
        .register(pending())
        .unwrap()
        .start("k", &1)
        .await
        .unwrap();
    first.shutdown().await;

    // No definition of its type: reported, not driven, nothing written.
    let other = SagaManager::new(store.clone());
    let report = other.resume().await.unwrap();
    assert_eq!(report.unknown_type, ["$saga-kept-k"]);
    assert!(report.resumed.is_empty());
    // A definition whose steps differ from those the saga started with: reported, not driven.
    let changed = SagaManager::new(store.clone());
    changed
        .register(
            SagaDefinition::<u32>::new("kept")
                .step_without_compensation("b", |_ctx| async { Ok(()) }),
        )
        .unwrap();
    let report = changed.resume().await.unwrap();
    assert_eq!(report.changed_definition, ["$saga-kept-k"]);
    assert!(report.resumed.is_empty());
    assert_eq!(store.stream_version("$saga-kept-k"), Some(0));
    let listed = changed.list().await.unwrap();
    assert_eq!((listed.len(), listed[0].status), (1, SagaStatus::Running));
}
