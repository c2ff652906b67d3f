//! The running system: the store, the bus with its handlers (read models, AI scoring with a
//! simulated provider, security audit), and the load that users and feeds put on it.

use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog::bus::{Backoff, BusConfig, BusError, DomainEvent, EventBus, Outcome};
use evlog::metrics::{HealthConfig, Metrics, Monitor};
use evlog::saga::{ResumeReport, SagaDefinition, SagaHandle, SagaManager, StepPolicy};
use evlog::snapshot::{SnapshotPolicy, SnapshotStore};
use evlog::workload::Rng;
use evlog::{Durability, Error, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions, Uuid};

use crate::domain::*;

pub const FEEDS: [&str; 8] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD", "XAU-USD", "SPX", "NDX", "DAX",
];
pub const HANDLERS: [&str; 4] = ["read-models", "scoring", "security", "notifier"];
const MODELS: [&str; 3] = ["credit-risk-v3", "fraud-v2", "churn-v1"];

/// The outside world the platform calls. The AI provider (the saga's `request_score` step):
/// slow, sometimes down for a moment or never answering (the step retries after its timeout),
/// sometimes rejecting a request for good (the saga compensates). The users' webhooks (the
/// `notifier` handler): a few are down until the outage ends (`healed`), and their
/// notifications wait in the dead-letter queue.
pub struct Provider {
    /// Requests rejected for good, per thousand.
    pub reject_permille: u64,
    /// False until the webhooks' outage is over.
    pub healed: AtomicBool,
}

pub enum Scored {
    Score { score: f64, risk: &'static str },
    Rejected(String),
}

/// Whether the security handler audits the login event `id` (one in nine).
pub fn audited(id: &Uuid) -> bool {
    hash(&id.to_string()).is_multiple_of(9)
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Provider {
    pub async fn score(&self, result_id: &str, attempt: u32) -> Result<Scored, String> {
        let h = hash(result_id);
        tokio::time::sleep(Duration::from_micros(200 + h % 800)).await;
        if h.is_multiple_of(97) {
            return Ok(Scored::Rejected(
                "model not available for this input".into(),
            ));
        }
        if (h >> 8).wrapping_add(u64::from(attempt)) % 7 == 0 {
            return Err("provider answered 503".into());
        }
        if attempt == 1 && (h >> 12).is_multiple_of(29) {
            // Never answers: the step's timeout gives up on it, and its retry is answered.
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        if (h >> 16) % 1000 < self.reject_permille {
            return Ok(Scored::Rejected("input rejected by the model".into()));
        }
        let score = ((h >> 24) % 1000) as f64 / 10.0;
        let risk = match score as u64 {
            0..=33 => "low",
            34..=66 => "medium",
            _ => "high",
        };
        Ok(Scored::Score { score, risk })
    }
}

/// Latencies (append -> handler start, microseconds) per handler, since this process started.
pub type Latencies = Arc<Mutex<BTreeMap<&'static str, Vec<u64>>>>;

pub struct Platform {
    pub store: Arc<Store>,
    pub bus: EventBus,
    /// Metrics and health over the store and the bus (what the HTTP API serves).
    pub monitor: Arc<Monitor>,
    pub models: Arc<Mutex<ReadModels>>,
    pub latencies: Latencies,
    pub provider: Arc<Provider>,
    pub snapshots: Arc<SnapshotStore>,
    /// The AI scoring sagas (`$saga-ai_scoring-ID`).
    pub sagas: SagaManager,
    /// What `resume` found unsettled at the start.
    pub resumed: ResumeReport,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn record_latency(latencies: &Latencies, handler: &'static str, appended_us: u64) {
    let l = now_us().saturating_sub(appended_us);
    latencies
        .lock()
        .unwrap()
        .entry(handler)
        .or_default()
        .push(l);
}

/// The read models as a replay of the whole log from position 0 gives them.
pub fn replay_models(store: &Store) -> evlog::Result<ReadModels> {
    let mut m = ReadModels::default();
    let end = store.head_position().map_or(0, |h| h + 1);
    store.replay(0, end, &ReadFilter::all(), |e| {
        if ReadModels::is_read_model_event(e.event_type) {
            m.apply(&e.to_owned_event());
        }
        ControlFlow::Continue(())
    })?;
    Ok(m)
}

pub fn snapshot_policy() -> SnapshotPolicy {
    let mut p = SnapshotPolicy::from_env().expect("SNAPSHOT_* variables");
    if std::env::var_os("SNAPSHOT_INTERVAL_VERSIONS").is_none() {
        p.interval_versions = 25;
    }
    p
}

impl Platform {
    /// Opens (or recovers) the store, rebuilds the read models from the log, and starts the
    /// handlers, each resuming after its checkpoint.
    pub async fn start(dir: &Path, provider: Arc<Provider>) -> Result<Platform, BusError> {
        let store = Arc::new(
            StoreOptions::new()
                .durability(Durability::Always)
                .segment_bytes(4 << 20)
                .compress_sealed(true)
                .open(dir)?,
        );
        // The read models live in memory: rebuilt from the log at start, then kept by their
        // handler, whose updates are idempotent (it may get again what the rebuild saw).
        let models = Arc::new(Mutex::new(replay_models(&store)?));
        let config = BusConfig::from_env()?.concurrency(8).batch_events(512);
        let metrics = Arc::new(Metrics::new());
        let bus = EventBus::with_observer(store.clone(), config, metrics.clone());
        let sagas = SagaManager::new(store.clone());
        let monitor = Arc::new(
            Monitor::new(bus.clone(), metrics, HealthConfig::default())
                .with_sagas(Arc::new(sagas.clone())),
        );
        let snapshots = Arc::new(SnapshotStore::open(&store).with_policy(snapshot_policy()));
        let scoring = sagas
            .register(ai_scoring_saga(bus.clone(), provider.clone()))
            .map_err(|e| BusError::HandlerStopped {
                handler: "scoring".into(),
                reason: e.to_string(),
            })?;
        // Every saga the kill left half done is driven again (its unrecorded step runs again;
        // steps are idempotent), or compensated.
        let resumed = sagas.resume().await.map_err(|e| BusError::HandlerStopped {
            handler: "scoring".into(),
            reason: e.to_string(),
        })?;
        let mut p = Platform {
            store,
            bus,
            monitor,
            models,
            latencies: Latencies::default(),
            provider,
            snapshots,
            sagas,
            resumed,
        };
        p.register(&scoring)?;
        Ok(p)
    }

    fn register(&mut self, scoring: &SagaHandle<AIResultCreated>) -> Result<(), BusError> {
        // The read models: a handler of borrowed events (no copy per event), over the three
        // types they are made of.
        let (models, lat) = (self.models.clone(), self.latencies.clone());
        let types = ReadFilter::all().event_types(READ_MODEL_TYPES);
        self.bus
            .subscribe_ref("read-models", types, move |e, _attempt| {
                record_latency(&lat, "read-models", e.timestamp_us);
                models.lock().unwrap().apply(&e.to_owned_event());
                Ok(Outcome::Handled)
            })?;

        // Each AIResultCreated starts the AI scoring saga whose id is the result's id.
        let lat = self.latencies.clone();
        scoring
            .start_on(&self.bus, "scoring", move |ctx, req: AIResultCreated| {
                record_latency(&lat, "scoring", ctx.event().timestamp_us);
                Some((req.result_id.clone(), req))
            })
            .map_err(|e| BusError::HandlerStopped {
                handler: "scoring".into(),
                reason: e.to_string(),
            })?;

        // The user's webhook, told of each completed score; some users' endpoints are down until
        // the outage ends: their notifications are parked in the dead-letter queue, then
        // redriven.
        let (provider, lat) = (self.provider.clone(), self.latencies.clone());
        self.bus
            .subscribe("notifier", move |ctx, done: AIResultCompleted| {
                record_latency(&lat, "notifier", ctx.event().timestamp_us);
                let down = hash(&done.user_id).is_multiple_of(23)
                    && !provider.healed.load(Ordering::Relaxed);
                async move {
                    if down {
                        return Err(format!("webhook of {} unreachable", done.user_id).into());
                    }
                    Ok(Outcome::Handled)
                }
            })?;

        let lat = self.latencies.clone();
        self.bus
            .subscribe("security", move |ctx, login: UserAuthenticated| {
                record_latency(&lat, "security", ctx.event().timestamp_us);
                async move {
                    if !audited(&ctx.event().id) {
                        return Ok(Outcome::Skip);
                    }
                    let audit = AuditLogCreated {
                        user_id: login.user_id.clone(),
                        action: "login-from-new-device".into(),
                        subject: login.ip,
                    };
                    // Stored with the handler's checkpoint: exactly once, whatever crashes.
                    ctx.emit_event(
                        &format!("audit-{}", login.user_id),
                        ExpectedVersion::Any,
                        &audit,
                    )?;
                    Ok(Outcome::Handled)
                }
            })?;
        Ok(())
    }

    /// Runs the users' and feeds' actions `actions` (each number one action, the same on every
    /// run), `tasks` at a time; `done` counts them.
    pub async fn drive(&self, actions: Range<u64>, tasks: u64, done: Arc<AtomicU64>) {
        let next = Arc::new(AtomicU64::new(actions.start));
        let mut joins = Vec::new();
        for _ in 0..tasks {
            let (next, done, end) = (next.clone(), done.clone(), actions.end);
            let (bus, models, snapshots) = (
                self.bus.clone(),
                self.models.clone(),
                self.snapshots.clone(),
            );
            joins.push(tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= end {
                        return;
                    }
                    action(&bus, &models, &snapshots, k)
                        .await
                        .unwrap_or_else(|e| panic!("action {k}: {e}"));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
    }

    /// Waits until every handler is done with the whole log (the events they publish
    /// included).
    pub async fn settle(&self) -> Result<(), BusError> {
        loop {
            let head = self.store.head_position().unwrap_or(0);
            for h in HANDLERS {
                self.bus.wait_for(h, head).await?;
            }
            self.sagas.wait_idle().await;
            if self.store.head_position().unwrap_or(0) == head {
                return Ok(());
            }
        }
    }
}

/// An event id derived from a key (a saga step's idempotency key, a handled event's id): a step
/// run again, or an event delivered again, after a crash appends the same event, which the
/// store takes as a re-send of the first instead of a second event.
fn id_of(key: &str, what: &str) -> Uuid {
    let k = format!("{key}/{what}");
    Uuid::from_u64_pair(hash(&k), hash(&format!("{k}#")))
}

/// Appends `data` to `stream` through the bus; `Exact(0)` writes (the result after the
/// request) that find the stream moved were made by an earlier run of the same step.
async fn record(
    bus: &EventBus,
    stream: &str,
    expected: ExpectedVersion,
    data: EventData,
) -> Result<(), evlog::saga::StepError> {
    match bus.publish(stream, expected, vec![data]).await {
        Ok(_) | Err(BusError::Store(Error::WrongExpectedVersion { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The AI scoring saga: `open` (compensation: `AIResultFailed`), `reserve_credits`
/// (compensation: their release, as an `AuditLogCreated`), `request_score` (the provider,
/// three retries with backoff, 500 ms per attempt) and `record_result` (`AIResultCompleted`).
/// A request the provider rejects, or that keeps failing, is compensated: credits released
/// first, then the failure recorded.
fn ai_scoring_saga(bus: EventBus, provider: Arc<Provider>) -> SagaDefinition<AIResultCreated> {
    let policy = StepPolicy {
        max_retries: 3,
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        timeout: Some(Duration::from_millis(500)),
    };
    let (b1, b2, b3) = (bus.clone(), bus.clone(), bus);
    SagaDefinition::<AIResultCreated>::new("ai_scoring")
        .default_policy(policy)
        .step(
            "open",
            |_ctx| async { Ok(()) },
            move |ctx, (): ()| {
                let bus = b1.clone();
                async move {
                    let req = ctx.input();
                    let failed = AIResultFailed {
                        result_id: req.result_id.clone(),
                        user_id: req.user_id.clone(),
                        reason: ctx.failure().unwrap_or("unknown").to_owned(),
                    }
                    .to_event_data()?
                    .with_id(id_of(&ctx.idempotency_key(), "failed"));
                    let stream = ai_result_stream(&req.result_id);
                    record(&bus, &stream, ExpectedVersion::Exact(0), failed).await
                }
            },
        )
        .step(
            "reserve_credits",
            |ctx| async move { Ok(ctx.input().reserved_credits) },
            move |ctx, credits: u64| {
                let bus = b2.clone();
                async move {
                    let req = ctx.input();
                    let released = AuditLogCreated {
                        user_id: req.user_id.clone(),
                        action: "credits-released".into(),
                        subject: format!("{} ({credits} credits)", req.result_id),
                    }
                    .to_event_data()?
                    .with_id(id_of(&ctx.idempotency_key(), "released"));
                    let stream = format!("audit-{}", req.user_id);
                    record(&bus, &stream, ExpectedVersion::Any, released).await
                }
            },
        )
        .step_without_compensation("request_score", move |ctx| {
            let provider = provider.clone();
            async move {
                match provider
                    .score(&ctx.input().result_id, ctx.attempt())
                    .await?
                {
                    Scored::Score { score, risk } => Ok((score, risk.to_owned())),
                    Scored::Rejected(reason) => Err(reason.into()),
                }
            }
        })
        .step_without_compensation("record_result", move |ctx| {
            let bus = b3.clone();
            async move {
                let (score, risk_level): (f64, String) = ctx.output("request_score")?;
                let req = ctx.input();
                let done = AIResultCompleted {
                    result_id: req.result_id.clone(),
                    user_id: req.user_id.clone(),
                    score,
                    risk_level,
                    provider: "simulated-ml".into(),
                }
                .to_event_data()?
                .with_id(id_of(&ctx.idempotency_key(), "completed"));
                let stream = ai_result_stream(&req.result_id);
                record(&bus, &stream, ExpectedVersion::Exact(0), done).await
            }
        })
}

/// Action `k`: the same for a given `k` on every run.
async fn action(
    bus: &EventBus,
    models: &Arc<Mutex<ReadModels>>,
    snapshots: &Arc<SnapshotStore>,
    k: u64,
) -> Result<(), BusError> {
    let mut rng = Rng::new(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7ead);
    let user = format!("user-{:04}", rng.below(500));
    match rng.below(100) {
        0..=39 => {
            let login = UserAuthenticated {
                user_id: user.clone(),
                method: ["password", "passkey", "sso"][rng.below(3) as usize].into(),
                ip: format!(
                    "10.{}.{}.{}",
                    rng.below(256),
                    rng.below(256),
                    rng.below(256)
                ),
            };
            bus.publish_event(&user, ExpectedVersion::Any, &login)
                .await?;
        }
        40..=64 => {
            let id = format!("{k:08}");
            let req = AIResultCreated {
                result_id: id.clone(),
                user_id: user,
                model: MODELS[rng.below(3) as usize].into(),
                reserved_credits: 1 + rng.below(5),
            };
            bus.publish_event(&ai_result_stream(&id), ExpectedVersion::NoStream, &req)
                .await?;
        }
        65..=89 => {
            let feed = FEEDS[rng.below(FEEDS.len() as u64) as usize];
            let stream = price_feed_stream(feed);
            let step = rng.below(2001) as f64 / 1000.0 - 1.0;
            let volume = rng.below(10_000) as f64 / 10.0;
            // The aggregate from its snapshot; the update appended at its version (another
            // task may have moved it: then load again).
            loop {
                let (store, snaps, s) = (bus.store().clone(), snapshots.clone(), stream.clone());
                let loaded = tokio::task::spawn_blocking(move || {
                    snaps.load_and_snapshot::<PriceFeed>(&store, &s)
                })
                .await
                .expect("load task")?;
                let base = if loaded.state.updates == 0 {
                    100.0
                } else {
                    loaded.state.last
                };
                let update = PriceFeedUpdated {
                    feed: feed.into(),
                    price: (base * (1.0 + step / 100.0) * 100.0).round() / 100.0,
                    volume,
                };
                let expected = loaded
                    .version
                    .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                match bus.publish_event(&stream, expected, &update).await {
                    Err(BusError::Store(Error::WrongExpectedVersion { .. })) => continue,
                    r => {
                        r?;
                        break;
                    }
                }
            }
        }
        _ => {
            let feed = FEEDS[rng.below(FEEDS.len() as u64) as usize];
            let price = models
                .lock()
                .unwrap()
                .prices
                .get(feed)
                .map_or(100.0, |(_, p)| *p as f64 / 1e6);
            let snap = OracleSnapshotRecorded {
                feed: feed.into(),
                price,
                round_id: k,
            };
            bus.publish_event(&format!("oracle-{feed}"), ExpectedVersion::Any, &snap)
                .await?;
        }
    }
    Ok(())
}
