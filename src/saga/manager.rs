//! [`SagaManager`]: registers saga types, starts sagas (from code or from bus events), drives
//! each in a tokio task, resumes the unsettled ones after a crash, parks and retries the ones
//! whose compensation failed, and counts them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::bus::{DomainEvent, EventBus, HandlerContext, Outcome};
use crate::event::{ExpectedVersion, Metadata, RecordedEvent};
use crate::saga::commit::Committer;
use crate::saga::context::WallClock;
use crate::saga::definition::{SagaData, SagaDefinition};
use crate::saga::driver::{CatchUnwind, End, Env, ErasedSaga};
use crate::saga::error::SagaError;
use crate::saga::handle::SagaHandle;
use crate::saga::record::{SagaRecord, Started, manager_metadata, saga_stream};
use crate::saga::route::Router;
use crate::saga::scan::{SagaSummary, scan};
use crate::saga::state::{SagaState, SagaStatus};
use crate::store::Store;

/// How many sagas are where: cheap to read (atomics), for metrics.
///
/// `active` counts the sagas this manager drives now. The others count what
/// [`SagaManager::resume`] found in the store, plus what this manager settled since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SagaCounts {
    /// Running or compensating in this manager.
    pub active: u64,
    /// Every step succeeded.
    pub completed: u64,
    /// Every completed step was undone.
    pub compensated: u64,
    /// A compensation failed after its retries: parked until retried.
    pub needs_attention: u64,
    /// Sagas this manager stopped driving because another manager advanced them first.
    pub lost: u64,
}

#[derive(Default)]
struct Counters {
    active: AtomicU64,
    completed: AtomicU64,
    compensated: AtomicU64,
    needs_attention: AtomicU64,
    lost: AtomicU64,
}

/// What [`SagaManager::resume`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeReport {
    /// Unsettled sagas now driven again (running or compensating).
    pub resumed: Vec<String>,
    /// Unsettled sagas of a type not registered on this manager: left as they are.
    pub unknown_type: Vec<String>,
    /// Unsettled sagas whose recorded steps differ from their registered definition's: left
    /// as they are (a changed definition must not compensate steps it does not know).
    pub changed_definition: Vec<String>,
    /// Sagas parked as needs-attention.
    pub needs_attention: usize,
    /// Settled sagas (completed or compensated).
    pub settled: usize,
    /// Saga streams whose records do not read as a saga (a payload that does not decode, a
    /// record that cannot follow the ones before it), with the error: left as they are, the
    /// other sagas resumed.
    pub malformed: Vec<(String, String)>,
}

type Done = watch::Receiver<Option<End>>;

struct Inner {
    store: Arc<Store>,
    committer: Committer,
    router: Arc<Router>,
    id: uuid::Uuid,
    /// Each record's metadata (the manager's id), built once.
    metadata: Arc<Metadata>,
    types: Mutex<HashMap<String, Arc<dyn ErasedSaga>>>,
    /// The sagas driven now, by stream: their end, once they end.
    running: Mutex<HashMap<String, Done>>,
    counters: Counters,
    /// Number of sagas driven now (waited on by `wait_idle`).
    active: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The wall clock steps' deadlines are measured with.
    clock: WallClock,
}

/// Runs sagas over a store. A clone is the same manager.
///
/// Each saga is driven by one tokio task; every transition is appended to its stream
/// `$saga-TYPE-ID` at the exact version the task last saw, so when two managers (or two
/// processes, one after the other) drive the same saga, the first append wins and the other
/// manager stops driving it ([`SagaCounts::lost`]).
///
/// The manager, its handles and its tasks hold the store: [`SagaManager::shutdown`] and drop
/// them before [`Store::close`].
#[derive(Clone)]
pub struct SagaManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SagaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaManager")
            .field("store", &self.inner.store.dir())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl SagaManager {
    /// A manager over `store`, with no saga type yet.
    pub fn new(store: Arc<Store>) -> SagaManager {
        SagaManager::with_clock(store, crate::store::now_us)
    }

    /// A manager whose wall clock is `clock` (microseconds since the Unix epoch, as the
    /// store's timestamps; [`SagaManager::new`] reads the system's). Steps'
    /// [`wait_for_event`](crate::saga::StepContext::wait_for_event) deadlines count from the
    /// time of the saga's last record by this clock: a test can move it past a deadline.
    pub fn with_clock(
        store: Arc<Store>,
        clock: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> SagaManager {
        let id = uuid::Uuid::new_v4();
        SagaManager {
            inner: Arc::new(Inner {
                committer: Committer::start(&store),
                store,
                router: Arc::default(),
                id,
                metadata: Arc::new(manager_metadata(&id.to_string())),
                types: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                active: watch::channel(0).0,
                stop: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                clock: Arc::new(clock),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// This manager's id, random per manager: each record it appends names it in its metadata
    /// under [`MANAGER_METADATA_KEY`](crate::saga::MANAGER_METADATA_KEY), so a saga's history says who advanced it.
    pub fn id(&self) -> uuid::Uuid {
        self.inner.id
    }

    /// Registers a saga type; the handle starts sagas of it. Errors when the definition is not
    /// valid (see [`SagaDefinition::new`]) or its type is registered already.
    pub fn register<I: SagaData>(
        &self,
        definition: SagaDefinition<I>,
    ) -> Result<SagaHandle<I>, SagaError> {
        definition.validate()?;
        let saga_type = definition.saga_type.clone();
        let mut types = self.inner.types.lock().expect("saga types");
        if types.contains_key(&saga_type) {
            return Err(SagaError::AlreadyRegistered(saga_type));
        }
        types.insert(saga_type.clone(), Arc::new(definition));
        Ok(SagaHandle::new(self.clone(), saga_type))
    }

    fn definition(&self, saga_type: &str) -> Option<Arc<dyn ErasedSaga>> {
        self.inner
            .types
            .lock()
            .expect("saga types")
            .get(saga_type)
            .cloned()
    }

    /// Routes the events `E` to the sagas waiting for them
    /// ([`StepContext::wait_for_event`](crate::saga::StepContext::wait_for_event)): `key` gives
    /// the id of the saga an event is for (its correlation key, e.g. the event's stream), or
    /// `None`. Registers the bus handler `handler`, which wakes the waiting steps as the events
    /// arrive (they find them in the store). One route per event type.
    pub fn route<E, F>(&self, bus: &EventBus, handler: &str, key: F) -> Result<(), SagaError>
    where
        E: DomainEvent,
        F: Fn(&RecordedEvent, E) -> Option<String> + Send + Sync + 'static,
    {
        let key: crate::saga::route::KeyFn =
            Arc::new(move |e: &RecordedEvent| E::decode(&e.payload).ok().and_then(|v| key(e, v)));
        if !self.inner.router.add(E::EVENT_TYPE, key) {
            return Err(SagaError::AlreadyRouted(E::EVENT_TYPE.to_owned()));
        }
        let router = self.inner.router.clone();
        bus.subscribe(handler, move |_ctx: HandlerContext, _e: E| {
            router.arrived();
            async { Ok(Outcome::Handled) }
        })?;
        Ok(())
    }

    /// What the counts are now.
    pub fn counts(&self) -> SagaCounts {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SagaCounts {
            active: get(&c.active),
            completed: get(&c.completed),
            compensated: get(&c.compensated),
            needs_attention: get(&c.needs_attention),
            lost: get(&c.lost),
        }
    }

    /// Finds every saga of the store that is neither completed, compensated nor parked as
    /// needs-attention, and drives it again from where its stream says it is: a step whose
    /// completion was not recorded runs again; a compensation under way goes on with the next
    /// completed step not undone. Call it after registering the saga types, from inside a tokio
    /// runtime. It also loads the counts of settled and parked sagas.
    ///
    /// It reads only the status records of the saga streams (a filtered read served by the
    /// segments' indexes), then the whole stream of each unsettled saga.
    pub async fn resume(&self) -> Result<ResumeReport, SagaError> {
        let store = self.inner.store.clone();
        let (sagas, malformed) = blocking(move || scan(&store)).await??;
        let mut report = ResumeReport::default();
        for (stream, e) in malformed {
            tracing::error!(saga = %stream, error = %e, "saga stream does not read: not resumed");
            report.malformed.push((stream, e.to_string()));
        }
        let (mut completed, mut compensated) = (0, 0);
        let mut open = Vec::new();
        for s in sagas.into_values() {
            match s.status {
                SagaStatus::Completed => completed += 1,
                SagaStatus::Compensated => compensated += 1,
                SagaStatus::NeedsAttention => report.needs_attention += 1,
                SagaStatus::Running | SagaStatus::Compensating => {
                    match self.definition(&s.saga_type) {
                        Some(def) => open.push((s.stream, def)),
                        None => {
                            tracing::warn!(saga = %s.stream, "saga of an unregistered type not resumed");
                            report.unknown_type.push(s.stream);
                        }
                    }
                }
            }
        }
        // The counts as the store has them, before the drivers started here count theirs.
        report.settled = completed + compensated;
        let c = &self.inner.counters;
        c.completed.store(completed as u64, Ordering::Relaxed);
        c.compensated.store(compensated as u64, Ordering::Relaxed);
        c.needs_attention
            .store(report.needs_attention as u64, Ordering::Relaxed);
        // The open sagas' streams, read in one blocking task.
        let store = self.inner.store.clone();
        let loaded = blocking(move || {
            open.into_iter()
                .map(|(stream, def)| (SagaState::load(&store, &stream), stream, def))
                .collect::<Vec<_>>()
        })
        .await?;
        for (state, stream, def) in loaded {
            let state = match state {
                Ok(Some(state)) => state,
                Ok(None) => continue,
                // A store error fails the resume; a stream that does not read is left alone.
                Err(SagaError::Store(e)) => return Err(SagaError::Store(e)),
                Err(e) => {
                    tracing::error!(saga = %stream, error = %e, "saga stream does not read: not resumed");
                    report.malformed.push((stream, e.to_string()));
                    continue;
                }
            };
            if state.started.steps != def.step_names() {
                tracing::error!(
                    saga = %state.stream,
                    recorded = ?state.started.steps,
                    defined = ?def.step_names(),
                    "saga not resumed: its steps differ from its definition's"
                );
                report.changed_definition.push(state.stream);
                continue;
            }
            if !state.status.is_settled() {
                let stream = state.stream.clone();
                if self.spawn(def, state) {
                    report.resumed.push(stream);
                }
            }
        }
        Ok(report)
    }

    async fn load(&self, stream: &str) -> Result<Option<SagaState>, SagaError> {
        let store = self.inner.store.clone();
        let stream = stream.to_owned();
        blocking(move || SagaState::load(&store, &stream)).await?
    }

    /// The state of the saga `saga_id` of type `saga_type`, folded from its stream (`None`:
    /// never started).
    pub async fn state(
        &self,
        saga_type: &str,
        saga_id: &str,
    ) -> Result<Option<SagaState>, SagaError> {
        self.load(&saga_stream(saga_type, saga_id)).await
    }

    /// Every saga of the store, with its status (a scan of the status records). A saga stream
    /// whose records do not read as a saga is left out, and logged (`resume` reports them).
    pub async fn list(&self) -> Result<Vec<SagaSummary>, SagaError> {
        let store = self.inner.store.clone();
        let (sagas, malformed) = blocking(move || scan(&store)).await??;
        for (stream, e) in malformed {
            tracing::error!(saga = %stream, error = %e, "saga stream does not read: not listed");
        }
        Ok(sagas.into_values().collect())
    }

    /// The sagas parked as needs-attention, with the step whose compensation failed and why.
    pub async fn needs_attention(&self) -> Result<Vec<SagaSummary>, SagaError> {
        let mut all = self.list().await?;
        all.retain(|s| s.status == SagaStatus::NeedsAttention);
        Ok(all)
    }

    /// An operator's retry of a parked saga: records who asked (`SagaRetryRequested`) and runs
    /// its compensation again from the step that failed. Errors when the saga is not parked.
    pub async fn retry(&self, saga_type: &str, saga_id: &str, by: &str) -> Result<(), SagaError> {
        if *self.inner.stop.borrow() {
            return Err(SagaError::ShutDown);
        }
        let def = self
            .definition(saga_type)
            .ok_or_else(|| SagaError::UnknownType(saga_type.to_owned()))?;
        let stream = saga_stream(saga_type, saga_id);
        // The driver that parked it may not have ended yet (its last record is stored, its
        // task not done): wait for it, so that the retry's driver is not refused as a second
        // one and the retry left undriven.
        if let Some(mut done) = self.driver_of(&stream) {
            let _ = done.wait_for(Option::is_some).await;
        }
        let mut state = self
            .load(&stream)
            .await?
            .ok_or_else(|| SagaError::NotFound {
                saga_type: saga_type.to_owned(),
                saga_id: saga_id.to_owned(),
                stream: stream.clone(),
            })?;
        if state.status != SagaStatus::NeedsAttention {
            return Err(SagaError::NotParked {
                stream,
                status: state.status,
            });
        }
        // Its compensations are found by step number: not with another list of steps.
        if state.started.steps != def.step_names() {
            return Err(SagaError::ChangedDefinition {
                stream,
                recorded: state.started.steps.clone(),
                defined: def.step_names(),
            });
        }
        let record = SagaRecord::RetryRequested { by: by.to_owned() };
        let r = self
            .inner
            .committer
            .append(
                &stream,
                ExpectedVersion::Exact(state.version),
                vec![record.to_event_with(Metadata::clone(&self.inner.metadata))],
            )
            .await?;
        state
            .apply_record(record, r.next_expected_version)
            .expect("a retry follows needs-attention");
        state.last_record_us = (self.inner.clock)();
        let c = &self.inner.counters.needs_attention;
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if !self.spawn(def, state) {
            // Another driver of this saga started meanwhile (a resume's, which read the
            // retry's record): it drives the saga.
            tracing::info!(saga = %stream, "retry recorded; another driver drives the saga");
        }
        Ok(())
    }

    /// Starts the saga `saga_id` of type `saga_type` with `input` (already JSON): appends
    /// `SagaStarted` (the stream must not exist) and drives it.
    pub(crate) async fn start_json(
        &self,
        saga_type: &str,
        saga_id: &str,
        input: serde_json::Value,
    ) -> Result<(), SagaError> {
        if saga_id.is_empty() {
            return Err(SagaError::BadId {
                saga_type: saga_type.to_owned(),
                saga_id: saga_id.to_owned(),
                reason: "must not be empty",
            });
        }
        if *self.inner.stop.borrow() {
            return Err(SagaError::ShutDown);
        }
        let def = self
            .definition(saga_type)
            .ok_or_else(|| SagaError::UnknownType(saga_type.to_owned()))?;
        let stream = saga_stream(saga_type, saga_id);
        let started = Started {
            saga_type: saga_type.to_owned(),
            saga_id: saga_id.to_owned(),
            input,
            steps: def.step_names(),
        };
        let event = SagaRecord::Started(started.clone())
            .to_event_with(Metadata::clone(&self.inner.metadata));
        let r = match self
            .inner
            .committer
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
        {
            Ok(r) => r,
            Err(SagaError::Lost { .. }) => {
                return Err(SagaError::AlreadyStarted {
                    saga_type: saga_type.to_owned(),
                    saga_id: saga_id.to_owned(),
                    stream,
                });
            }
            Err(e) => return Err(e),
        };
        let state = SagaState::new(
            stream,
            started,
            r.next_expected_version,
            r.first_position,
            (self.inner.clock)(),
        );
        self.spawn(def, state);
        Ok(())
    }

    /// The end of the driver of saga `stream` when this manager drives it now.
    fn driver_of(&self, stream: &str) -> Option<Done> {
        let running = self.inner.running.lock().expect("running sagas");
        running.get(stream).cloned()
    }

    /// Drives `state` in a new task, unless this manager drives that saga already.
    fn spawn(&self, def: Arc<dyn ErasedSaga>, state: SagaState) -> bool {
        let stream = state.stream.clone();
        let mut running = self.inner.running.lock().expect("running sagas");
        if running.contains_key(&stream) {
            return false;
        }
        let (done_tx, done_rx) = watch::channel(None);
        running.insert(stream.clone(), done_rx);
        self.inner.counters.active.fetch_add(1, Ordering::Relaxed);
        self.inner.active.send_modify(|n| *n += 1);
        let env = Env {
            store: self.inner.store.clone(),
            committer: self.inner.committer.clone(),
            metadata: self.inner.metadata.clone(),
            router: self.inner.router.clone(),
            stop: self.inner.stop.subscribe(),
            clock: self.inner.clock.clone(),
        };
        let manager = self.clone();
        let task = tokio::spawn(async move {
            let end = match CatchUnwind(def.drive(env, state)).await {
                Ok(end) => end,
                Err(panic) => End::Error(format!("the saga's driver panicked: {panic}")),
            };
            manager.ended(&stream, &end);
            done_tx.send_replace(Some(end));
        });
        let mut tasks = self.inner.tasks.lock().expect("saga tasks");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        true
    }

    /// Counts a driver's end and forgets it.
    fn ended(&self, stream: &str, end: &End) {
        let c = &self.inner.counters;
        match end {
            End::Status(SagaStatus::Completed) => c.completed.fetch_add(1, Ordering::Relaxed),
            End::Status(SagaStatus::Compensated) => c.compensated.fetch_add(1, Ordering::Relaxed),
            End::Status(SagaStatus::NeedsAttention) => {
                c.needs_attention.fetch_add(1, Ordering::Relaxed)
            }
            End::Lost(_) => c.lost.fetch_add(1, Ordering::Relaxed),
            End::Status(_) => 0,
            End::Error(error) => {
                tracing::error!(saga = %stream, error = %error, "saga driver stopped");
                0
            }
        };
        c.active.fetch_sub(1, Ordering::Relaxed);
        self.inner
            .running
            .lock()
            .expect("running sagas")
            .remove(stream);
        self.inner.active.send_modify(|n| *n -= 1);
    }

    /// Waits until the saga `saga_id` of type `saga_type` is settled or stops being driven
    /// here, and returns its status. For a saga this manager does not drive, the status in
    /// the store. Errors: [`SagaError::NotFound`], [`SagaError::Lost`] (another manager
    /// drives it), [`SagaError::TaskStopped`] (an append failed: the saga stays where its
    /// stream says, to resume).
    pub async fn wait(&self, saga_type: &str, saga_id: &str) -> Result<SagaStatus, SagaError> {
        let stream = saga_stream(saga_type, saga_id);
        if let Some(mut done) = self.driver_of(&stream) {
            let end = done
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|e| e.clone());
            return match end {
                Some(End::Status(s)) => Ok(s),
                Some(End::Lost(expected)) => Err(SagaError::Lost { stream, expected }),
                Some(End::Error(reason)) => Err(SagaError::TaskStopped { stream, reason }),
                None => Err(SagaError::TaskStopped {
                    stream,
                    reason: "its task was dropped".into(),
                }),
            };
        }
        match self.load(&stream).await? {
            Some(s) => Ok(s.status),
            None => Err(SagaError::NotFound {
                saga_type: saga_type.to_owned(),
                saga_id: saga_id.to_owned(),
                stream,
            }),
        }
    }

    /// Waits until this manager drives no saga (each settled, lost or stopped).
    pub async fn wait_idle(&self) {
        let mut rx = self.inner.active.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Stops driving: each saga stops where it is (an attempt under way is dropped, as a crash
    /// would; a retry waiting for its backoff is not made) and stays where its stream says, to
    /// resume later: the step runs again then. Waits for the tasks; no saga can be started
    /// after.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().expect("saga tasks"));
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SagaError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(SagaError::ShutDown),
    }
}
