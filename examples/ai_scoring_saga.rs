//! The trading platform's `AIScoringSaga` on evlog: each `AIResultCreated` event starts a saga
//! (its id is the AI result's aggregate id) that
//!
//! 1. `open`: marks the result as being scored (compensation: records `AIResultFailed` and an
//!    `AuditLogCreated` event saying why, in one atomic append);
//! 2. `reserve_credits`: reserves scoring credits of the user (compensation: releases them);
//! 3. `request_score`: asks a simulated scoring provider that sometimes fails and sometimes
//!    never answers (each attempt times out after 200 ms; two retries);
//! 4. `record_result`: records `AIResultCompleted` with the score.
//!
//! A provider that still fails after the retries compensates the saga: credits released, the
//! failure recorded and audited. Every step passes its idempotency key on, so a saga resumed
//! after a crash does nothing twice. At the end it prints a summary and the history of one
//! compensated saga.
//!
//! ```text
//! cargo run --release --features bus --example ai_scoring_saga [DIR]
//! cargo run --release -p evlog-tools -- dump DIR --stream '$saga-ai_scoring-ai-result-3'
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog::bus::{Backoff, BusConfig, DomainEvent, EventBus};
use evlog::saga::{SagaDefinition, SagaManager, SagaStatus, StepPolicy};
use evlog::{Direction, EventData, ExpectedVersion, Store, Uuid};
use serde::{Deserialize, Serialize};

const RESULTS: u64 = 24;
const CREDITS_PER_SCORE: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct AIResultCreated {
    user_id: String,
    model: String,
}
impl DomainEvent for AIResultCreated {
    const EVENT_TYPE: &'static str = "AIResultCreated";
}

#[derive(Debug, Serialize, Deserialize)]
struct AIResultCompleted {
    score: f64,
    credits: u64,
}
impl DomainEvent for AIResultCompleted {
    const EVENT_TYPE: &'static str = "AIResultCompleted";
}

#[derive(Debug, Serialize, Deserialize)]
struct AIResultFailed {
    reason: String,
}
impl DomainEvent for AIResultFailed {
    const EVENT_TYPE: &'static str = "AIResultFailed";
}

#[derive(Debug, Serialize, Deserialize)]
struct AuditLogCreated {
    action: String,
    entity: String,
    user_id: String,
    detail: String,
}
impl DomainEvent for AuditLogCreated {
    const EVENT_TYPE: &'static str = "AuditLogCreated";
}

/// The saga's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scoring {
    result_id: String,
    user_id: String,
    model: String,
}

/// The `reserve_credits` step's output, handed to its compensation.
#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    reservation: String,
    credits: u64,
}

/// The credits service: reservations by idempotency key, so a repeated step reserves once.
#[derive(Default)]
struct Credits {
    reserved: Mutex<BTreeMap<String, u64>>,
    released: Mutex<BTreeSet<String>>,
}

impl Credits {
    fn reserve(&self, key: &str, credits: u64) -> Reservation {
        self.reserved
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_insert(credits);
        Reservation {
            reservation: key.to_owned(),
            credits,
        }
    }

    fn release(&self, key: &str) {
        self.released.lock().unwrap().insert(key.to_owned());
    }

    /// Credits held now: reserved and not released.
    fn held(&self) -> u64 {
        let released = self.released.lock().unwrap();
        self.reserved
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| !released.contains(*k))
            .map(|(_, c)| c)
            .sum()
    }
}

/// The simulated scoring provider: by a hash of the request and the attempt, it answers, fails,
/// or never answers.
async fn provider_score(key: &str, attempt: u32) -> Result<f64, String> {
    let h = hash(&format!("{key}#{attempt}"));
    match h % 100 {
        0..=34 => Err(format!("provider returned 503 (attempt {attempt})")),
        35..=54 => {
            // Hangs: the step's timeout gives up on it.
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err("unreachable".into())
        }
        _ => Ok((h % 1000) as f64 / 1000.0),
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// An event id derived from an idempotency key: appending the same event again (a step run
/// twice) is recognised by the store and writes nothing.
fn id_of(key: &str, what: &str) -> Uuid {
    let k = format!("{key}/{what}");
    Uuid::from_u64_pair(hash(&k), hash(&format!("{k}#")))
}

fn event<E: DomainEvent>(e: &E, key: &str) -> EventData {
    e.to_event_data()
        .expect("plain structs encode")
        .with_id(id_of(key, E::EVENT_TYPE))
}

fn ai_scoring_saga(store: Arc<Store>, credits: Arc<Credits>) -> SagaDefinition<Scoring> {
    let policy = StepPolicy {
        max_retries: 2,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        timeout: Some(Duration::from_millis(200)),
    };
    let (c1, c2) = (credits.clone(), credits);
    SagaDefinition::<Scoring>::new("ai_scoring")
        .default_policy(policy)
        .step(
            "open",
            |ctx| async move { Ok(ctx.input().result_id.clone()) },
            move |ctx, result_id: String| {
                let store = store.clone();
                async move {
                    let key = ctx.idempotency_key();
                    let reason = ctx.failure().unwrap_or("unknown").to_owned();
                    let failed = event(
                        &AIResultFailed {
                            reason: reason.clone(),
                        },
                        &key,
                    );
                    let audit = event(
                        &AuditLogCreated {
                            action: "ai_scoring_compensated".into(),
                            entity: result_id.clone(),
                            user_id: ctx.input().user_id.clone(),
                            detail: reason,
                        },
                        &key,
                    );
                    tokio::task::spawn_blocking(move || {
                        store.append_multi(&[
                            (result_id.as_str(), ExpectedVersion::Any, vec![failed]),
                            ("$audit", ExpectedVersion::Any, vec![audit]),
                        ])
                    })
                    .await??;
                    Ok(())
                }
            },
        )
        .step(
            "reserve_credits",
            move |ctx| {
                let credits = c1.clone();
                async move { Ok(credits.reserve(&ctx.idempotency_key(), CREDITS_PER_SCORE)) }
            },
            move |_ctx, r: Reservation| {
                let credits = c2.clone();
                async move {
                    credits.release(&r.reservation);
                    Ok(())
                }
            },
        )
        .step_without_compensation("request_score", |ctx| async move {
            let score = provider_score(&ctx.idempotency_key(), ctx.attempt()).await?;
            Ok(score)
        })
        .step_without_compensation("record_result", |ctx| async move {
            let score: f64 = ctx.output("request_score")?;
            let credits: Reservation = ctx.output("reserve_credits")?;
            let done = AIResultCompleted {
                score,
                credits: credits.credits,
            };
            let e = event(&done, &ctx.idempotency_key());
            let store = ctx.store().clone();
            let stream = ctx.input().result_id.clone();
            tokio::task::spawn_blocking(move || store.append(&stream, ExpectedVersion::Any, &[e]))
                .await??;
            Ok(())
        })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| tmp.path().to_owned(), Into::into);
    let store = Arc::new(Store::open(&dir)?);
    let bus = EventBus::new(store.clone(), BusConfig::default().idle_poll_ms(10));
    let credits = Arc::new(Credits::default());

    let manager = SagaManager::new(store.clone());
    let scoring = manager.register(ai_scoring_saga(store.clone(), credits.clone()))?;
    let resumed = manager.resume().await?;
    println!("resumed {} unsettled sagas", resumed.resumed.len());
    // Each AIResultCreated starts the saga whose id is the result's aggregate id.
    scoring.start_on(&bus, "ai-scoring-saga", |ctx, e: AIResultCreated| {
        let result_id = ctx.event().stream.to_string();
        let input = Scoring {
            result_id: result_id.clone(),
            user_id: e.user_id,
            model: e.model,
        };
        Some((result_id, input))
    })?;

    let mut last = 0;
    for n in 0..RESULTS {
        let created = AIResultCreated {
            user_id: format!("user-{}", n % 5),
            model: "credit-risk-v2".into(),
        };
        let stream = format!("ai-result-{n}");
        last = bus
            .publish_event(&stream, ExpectedVersion::Any, &created)
            .await?
            .last_position;
    }
    bus.wait_for("ai-scoring-saga", last).await?;
    let mut settled = BTreeMap::<SagaStatus, Vec<String>>::new();
    for n in 0..RESULTS {
        let id = format!("ai-result-{n}");
        settled
            .entry(scoring.wait(&id).await?)
            .or_default()
            .push(id);
    }
    bus.shutdown().await?;

    let c = manager.counts();
    let completed = settled.get(&SagaStatus::Completed).map_or(0, Vec::len);
    let compensated = settled.get(&SagaStatus::Compensated).map_or(0, Vec::len);
    let audit = store
        .read_stream("$audit", 0, Direction::Forward, usize::MAX)
        .count();
    println!(
        "{RESULTS} AIResultCreated -> {completed} AIResultCompleted, {compensated} AIResultFailed \
         (compensated, {audit} AuditLogCreated in $audit); counts {c:?}"
    );
    println!(
        "credits held: {} (= {completed} completed x {CREDITS_PER_SCORE}); every compensated \
         saga released its reservation",
        credits.held()
    );
    assert_eq!(credits.held(), completed as u64 * CREDITS_PER_SCORE);
    assert_eq!(audit, compensated);
    assert_eq!(
        (c.completed as usize, c.compensated as usize),
        (completed, compensated)
    );
    if let Some(id) = settled
        .get(&SagaStatus::Compensated)
        .and_then(|v| v.first())
    {
        let stream = format!("$saga-ai_scoring-{id}");
        println!("history of {stream}:");
        for e in store.read_stream(&stream, 0, Direction::Forward, usize::MAX) {
            let e = e?;
            let payload = String::from_utf8_lossy(&e.payload);
            let preview: String = payload.chars().take(110).collect();
            println!("  v{} {:<20} {preview}", e.version, e.event_type);
        }
        println!(
            "(the same with: evlog dump {} --stream '{stream}')",
            dir.display()
        );
    }
    Ok(())
}
