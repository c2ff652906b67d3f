//! Saga records that do not fit the saga's definition: an operator's retry of a saga whose
//! registered definition changed since it started is refused (its compensations are found by
//! step number), and a stream naming a step the saga does not have is refused when read,
//! never driven. Both once ran the wrong compensation or panicked the driver. A retry racing
//! the driver that parked the saga drives it.

#![cfg(feature = "bus")]

mod bus_common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use evlog::bus::Backoff;
use evlog::saga::{SagaDefinition, SagaError, SagaManager, SagaStatus, StepPolicy, saga_stream};
use evlog::{EventData, ExpectedVersion};

fn quick(max_retries: u32) -> StepPolicy {
    StepPolicy {
        max_retries,
        backoff: Backoff {
            base: std::time::Duration::ZERO,
            cap: std::time::Duration::ZERO,
        },
        timeout: None,
    }
}

type Journal = Arc<Mutex<Vec<String>>>;

/// Steps named `names`; each step's output is its own name; each compensation journals
/// "undo NAME got OUTPUT"; the step `fail_step` fails; the compensation of `fail_comp` fails
/// while `healed` is false.
fn def(
    names: &[&str],
    fail_step: Option<&'static str>,
    fail_comp: Option<&'static str>,
    healed: Arc<AtomicBool>,
    journal: &Journal,
) -> SagaDefinition<u32> {
    let mut d = SagaDefinition::<u32>::new("pay").default_policy(quick(0));
    for &n in names {
        let name = n.to_owned();
        let (j, h) = (journal.clone(), healed.clone());
        let n2 = name.clone();
        d = d.step(
            name.clone(),
            move |_ctx| {
                let name = n2.clone();
                async move {
                    if Some(name.as_str()) == fail_step {
                        return Err(format!("{name} refused").into());
                    }
                    Ok(name)
                }
            },
            move |_ctx, out: String| {
                let (j, h, name) = (j.clone(), h.clone(), name.clone());
                async move {
                    if Some(name.as_str()) == fail_comp && !h.load(Ordering::SeqCst) {
                        return Err(format!("undo {name} refused").into());
                    }
                    j.lock().unwrap().push(format!("undo {name} got {out}"));
                    Ok(())
                }
            },
        );
    }
    d
}

/// Parks saga "o1" under a definition of `first` steps (the step `fail_step` fails, the
/// compensation of `fail_comp` fails), then, in a new manager with a definition of `then`
/// steps, resumes and retries it. Returns the resume's report, the retry's result, the saga's
/// status afterwards, and the compensations run.
async fn retried_under(
    first: &[&str],
    fail_step: &'static str,
    fail_comp: &'static str,
    then: &[&str],
) -> (
    evlog::saga::ResumeReport,
    Result<(), SagaError>,
    SagaStatus,
    Vec<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let journal: Journal = Arc::default();
    let healed = Arc::new(AtomicBool::new(false));
    let m1 = SagaManager::new(store.clone());
    let v1 = m1
        .register(def(
            first,
            Some(fail_step),
            Some(fail_comp),
            healed.clone(),
            &journal,
        ))
        .unwrap();
    v1.start("o1", &1).await.unwrap();
    assert_eq!(v1.wait("o1").await.unwrap(), SagaStatus::NeedsAttention);
    m1.shutdown().await;
    healed.store(true, Ordering::SeqCst);
    let m2 = SagaManager::new(store.clone());
    let v2 = m2
        .register(def(then, None, None, healed.clone(), &journal))
        .unwrap();
    let report = m2.resume().await.unwrap();
    let retried = v2.retry("o1", "ops").await;
    let status = v2.state("o1").await.unwrap().unwrap().status;
    m2.shutdown().await;
    let journal = journal.lock().unwrap().clone();
    (report, retried, status, journal)
}

/// A saga parked under one definition, retried under another whose steps differ: the retry is
/// refused, nothing is compensated (the step now at the parked number never ran, and would get
/// another step's output).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_under_a_changed_definition_is_refused() {
    // v1: reserve, charge, ship; ship fails; charge's compensation fails: parked at index 1.
    // v2 of the application: steps renamed / reordered.
    let (report, refused, status, journal) = retried_under(
        &["reserve", "charge", "ship"],
        "ship",
        "charge",
        &["reserve", "notify", "charge"],
    )
    .await;
    // resume() leaves it alone, and so does retry().
    assert!(report.resumed.is_empty(), "{report:?}");
    assert!(
        matches!(refused, Err(SagaError::ChangedDefinition { .. })),
        "{refused:?}"
    );
    assert_eq!(status, SagaStatus::NeedsAttention);
    assert!(journal.is_empty(), "{journal:?}");
}

/// The same with fewer steps: refused too (the driver once indexed past the steps and
/// panicked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_under_a_shorter_definition_is_refused() {
    let (_, refused, status, _) = retried_under(&["a", "b", "c"], "c", "b", &["a"]).await;
    assert!(
        matches!(refused, Err(SagaError::ChangedDefinition { .. })),
        "{refused:?}"
    );
    assert_eq!(status, SagaStatus::NeedsAttention);
}

/// A hand-written stream whose records name a step past the saga's last (and by another
/// name): reading it fails with the record's version; it is never driven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_naming_a_step_the_saga_does_not_have_is_refused_not_driven() {
    use evlog::saga::{SagaRecord, Started, StepRef};
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let step = |name: &str, index| StepRef {
        step: name.into(),
        index,
        attempts: 1,
    };
    let records = [
        SagaRecord::Started(Started {
            saga_type: "one".into(),
            saga_id: "m".into(),
            input: serde_json::json!(1),
            steps: vec!["a".into()],
        }),
        SagaRecord::StepCompleted {
            step: step("a", 0),
            output: serde_json::json!(null),
        },
        SagaRecord::StepCompleted {
            step: step("nope", 1),
            output: serde_json::json!(null),
        },
        SagaRecord::StepFailed {
            step: step("nope", 2),
            error: "x".into(),
        },
        SagaRecord::Compensating { reason: "x".into() },
    ];
    let events: Vec<_> = records.iter().map(|r| r.to_event()).collect();
    store
        .append(&saga_stream("one", "m"), ExpectedVersion::NoStream, &events)
        .unwrap();
    let m = SagaManager::new(store.clone());
    let h = m
        .register(
            SagaDefinition::<u32>::new("one")
                .default_policy(quick(0))
                .step("a", |_ctx| async { Ok(()) }, |_ctx, ()| async { Ok(()) }),
        )
        .unwrap();
    let loaded = h.state("m").await;
    assert!(
        matches!(loaded, Err(SagaError::BadRecord { version: 2, .. })),
        "{loaded:?}"
    );
    // Not driven: whatever resume reports, no driver runs (none panics, none appends).
    let _ = m.resume().await;
    m.shutdown().await;
    let stream = saga_stream("one", "m");
    assert_eq!(store.stream_version(&stream), Some(4));
}

/// An operator's retry while the driver that parked the saga has stored its
/// `SagaNeedsAttention` but not yet ended: the retry waits for that driver, then drives the
/// saga (it once found the old driver still registered, drove nothing, and returned `Ok`,
/// leaving the saga compensating with no driver). The only worker is held by a task from the
/// driver's last failing attempt on, and let go once the retry is under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_retry_racing_the_driver_that_parked_the_saga_drives_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        evlog::StoreOptions::new()
            .durability(evlog::Durability::Always)
            .open(dir.path())
            .unwrap(),
    );
    let mut stuck = Vec::new();
    for trial in 0..5 {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(Some(release_rx)));
        let healed = Arc::new(AtomicBool::new(false));
        let undone = Arc::new(Mutex::new(Vec::<String>::new()));
        let (h2, u2) = (healed.clone(), undone.clone());
        let d = SagaDefinition::<u32>::new("race")
            .default_policy(quick(0))
            .step(
                "a",
                |_ctx| async { Ok(()) },
                move |_ctx, ()| {
                    let (h, u, rx) = (h2.clone(), u2.clone(), release_rx.clone());
                    async move {
                        if !h.load(Ordering::SeqCst) {
                            // The last failing attempt: hold the (only) worker from its next
                            // poll on, so the driver cannot return until the test releases it.
                            if let Some(rx) = rx.lock().unwrap().take() {
                                tokio::spawn(async move {
                                    let _ = rx.recv();
                                });
                            }
                            return Err("refused".into());
                        }
                        u.lock().unwrap().push("undo a".into());
                        Ok(())
                    }
                },
            )
            .step_without_compensation("b", |_ctx| async { Err::<(), _>("b refused".into()) });
        let m = SagaManager::new(store.clone());
        let h = m.register(d).unwrap();
        let id = format!("r{trial}");
        h.start(&id, &1).await.unwrap();
        // The operator sees it parked (the store says so) and retries, healed.
        loop {
            let s = h.state(&id).await.unwrap().unwrap();
            if s.status == SagaStatus::NeedsAttention {
                break;
            }
            tokio::task::yield_now().await;
        }
        healed.store(true, Ordering::SeqCst);
        // The worker is let go once the retry has returned (as it did, having driven
        // nothing), or, while it waits for the old driver instead, after a bounded number of
        // turns of this loop.
        let mut release = Some(release_tx);
        let mut turns = 0u32;
        let retried = {
            let mut retry = std::pin::pin!(h.retry(&id, "ops"));
            loop {
                tokio::select! {
                    biased;
                    r = &mut retry => break r,
                    () = tokio::task::yield_now() => {
                        turns += 1;
                        if turns == 100_000
                            && let Some(tx) = release.take()
                        {
                            tx.send(()).unwrap();
                        }
                    }
                }
            }
        };
        if let Some(tx) = release {
            tx.send(()).unwrap();
        }
        assert!(retried.is_ok(), "{retried:?}");
        m.wait_idle().await;
        let s = h.state(&id).await.unwrap().unwrap();
        if s.status != SagaStatus::Compensated {
            stuck.push((id, s.status));
        } else {
            assert_eq!(*undone.lock().unwrap(), ["undo a"]);
        }
        m.shutdown().await;
    }
    assert!(
        stuck.is_empty(),
        "retried, yet left with no driver: {stuck:?}"
    );
}

/// One saga stream whose record does not decode (written by another version, say) does not
/// stop the others: resume reports it and drives the healthy saga; list leaves it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_malformed_saga_stream_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let mk = || {
        SagaDefinition::<u32>::new("ok")
            .default_policy(quick(0))
            .step_without_compensation("gate", |_ctx| async { Ok(()) })
    };
    // A healthy saga left unsettled: appended by hand as a crash would leave it.
    let started = evlog::saga::SagaRecord::Started(evlog::saga::Started {
        saga_type: "ok".into(),
        saga_id: "healthy".into(),
        input: serde_json::json!(1),
        steps: vec!["gate".into()],
    });
    store
        .append(
            &saga_stream("ok", "healthy"),
            ExpectedVersion::NoStream,
            &[started.to_event()],
        )
        .unwrap();
    // Another saga stream, one garbled record (e.g. written by an older or newer version).
    store
        .append(
            &saga_stream("other", "x"),
            ExpectedVersion::NoStream,
            &[EventData::new("SagaStarted", b"{\"saga_type\":1}".to_vec())],
        )
        .unwrap();
    let m = SagaManager::new(store.clone());
    let h = m.register(mk()).unwrap();
    let report = m.resume().await.unwrap();
    assert_eq!(report.resumed, [saga_stream("ok", "healthy")]);
    assert_eq!(report.malformed.len(), 1, "{report:?}");
    assert_eq!(report.malformed[0].0, saga_stream("other", "x"));
    assert_eq!(h.wait("healthy").await.unwrap(), SagaStatus::Completed);
    let listed: Vec<String> = m
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.stream)
        .collect();
    assert_eq!(listed, [saga_stream("ok", "healthy")]);
    m.shutdown().await;
}

/// A step whose output is more than the store takes in an event: the step fails and the saga
/// compensates the steps before it, once (its completion could never be stored: the driver
/// stopped with an error, and every resume ran the step again and stopped there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_output_the_store_refuses_fails_the_step_and_compensates() {
    let dir = tempfile::tempdir().unwrap();
    let store = bus_common::store(dir.path());
    let runs = Arc::new(AtomicU32::new(0));
    let undone = Arc::new(AtomicU32::new(0));
    let mk = || {
        let (r, u) = (runs.clone(), undone.clone());
        SagaDefinition::<u32>::new("big")
            .default_policy(quick(0))
            .step(
                "first",
                |_ctx| async { Ok(1u32) },
                move |_ctx, _: u32| {
                    let u = u.clone();
                    async move {
                        u.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                },
            )
            .step_without_compensation("huge", move |_ctx| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok("x".repeat(17 << 20))
                }
            })
    };
    let m = SagaManager::new(store.clone());
    let h = m.register(mk()).unwrap();
    h.start("b1", &1).await.unwrap();
    assert_eq!(h.wait("b1").await.unwrap(), SagaStatus::Compensated);
    m.shutdown().await;
    // Settled: a new manager resumes nothing.
    let m = SagaManager::new(store.clone());
    let h = m.register(mk()).unwrap();
    assert!(m.resume().await.unwrap().resumed.is_empty());
    let st = h.state("b1").await.unwrap().unwrap();
    assert_eq!(st.status, SagaStatus::Compensated);
    assert_eq!(
        (runs.load(Ordering::SeqCst), undone.load(Ordering::SeqCst)),
        (1, 1)
    );
    let (failed, error) = st.failed.as_ref().unwrap();
    assert_eq!(failed.step, "huge");
    assert!(error.contains("could not be stored"), "{error}");
    m.shutdown().await;
}
