//! [`EventBus`]: publish events to the store, run handlers over them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::config::BusConfig;
use crate::bus::context::HandlerContext;
use crate::bus::dead_letters::DeadLetters;
use crate::bus::error::BusError;
use crate::bus::event::DomainEvent;
use crate::bus::handler::{self, HandlerFn, HandlerResult, Selects};
use crate::bus::observer::BusObserver;
use crate::bus::runner::Runner;
use crate::bus::stats::{Counters, HandlerStats};
use crate::event::{AppendResult, EventData, ExpectedVersion, ReadFilter, RecordedEvent};
use crate::store::Store;
use crate::store::{Durability, EventRef};

/// The event bus: [`EventBus::publish`] appends to the store; each handler
/// ([`EventBus::subscribe`]) runs as a tokio task over a named subscription of the store, with
/// retries, backoff and a persisted dead-letter queue ([`EventBus::dead_letters`]).
///
/// Delivery is **at least once**, and each stream's events reach a handler in order, one at a
/// time. With [`BusConfig::concurrency`] 1 (the default) a handler gets every event in position
/// order, one at a time; above 1, the streams of each polled batch are delivered concurrently
/// (a batch is finished before the next is read, so a stream waiting for its retries holds up
/// the next batch, not the other streams of its own). An event still failing after
/// [`BusConfig::max_retries`] retries is parked in `$dlq-HANDLER`, and the later events of the
/// same stream are parked behind it until it is redriven or discarded, while other streams go
/// on. A clone is the same bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    config: BusConfig,
    /// Bumped by every publish and dead-letter call: wakes the idle handlers.
    wake: Arc<WakeHandlers>,
    /// Wakes the handlers when a publish's events are durable (from the thread that made
    /// them so).
    wake_waker: std::task::Waker,
    stop: watch::Sender<bool>,
    handlers: Mutex<BTreeMap<String, Registered>>,
    observer: Option<Arc<dyn BusObserver>>,
}

struct Registered {
    counters: Arc<Counters>,
    progress: watch::Receiver<u64>,
    task: Option<JoinHandle<Result<(), BusError>>>,
}

/// Wakes the idle handlers: a counter they watch.
struct WakeHandlers(watch::Sender<u64>);

impl std::task::Wake for WakeHandlers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("store", &self.inner.store.dir())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The event data of a typed event.
pub(crate) fn encode<E: DomainEvent>(event: &E) -> Result<EventData, BusError> {
    event.to_event_data().map_err(|reason| BusError::Encode {
        event_type: E::EVENT_TYPE,
        reason,
    })
}

impl EventBus {
    /// A bus over `store`, with no handler yet.
    pub fn new(store: Arc<Store>, config: BusConfig) -> EventBus {
        Self::build(store, config, None)
    }

    /// A bus over `store` that reports its publishes and deliveries to `observer` (metrics).
    pub fn with_observer(
        store: Arc<Store>,
        config: BusConfig,
        observer: Arc<dyn BusObserver>,
    ) -> EventBus {
        Self::build(store, config, Some(observer))
    }

    fn build(
        store: Arc<Store>,
        config: BusConfig,
        observer: Option<Arc<dyn BusObserver>>,
    ) -> EventBus {
        let wake = Arc::new(WakeHandlers(watch::channel(0).0));
        EventBus {
            inner: Arc::new(Inner {
                store,
                config,
                wake_waker: std::task::Waker::from(wake.clone()),
                wake,
                stop: watch::channel(false).0,
                handlers: Mutex::new(BTreeMap::new()),
                observer,
            }),
        }
    }

    /// The names of the handlers registered on this bus, in name order.
    pub fn handler_names(&self) -> Vec<String> {
        let handlers = self.inner.handlers.lock().expect("handler table");
        handlers.keys().cloned().collect()
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    pub(crate) fn wake_signal(&self) -> watch::Receiver<u64> {
        self.inner.wake.0.subscribe()
    }

    pub(crate) fn wake_handlers(&self) {
        self.inner.wake_waker.wake_by_ref();
    }

    /// Appends `events` to `stream` if it is at `expected` ([`Store::append`]) and returns once
    /// they are durable at the store's durability level; the handlers are woken as soon as
    /// they are. On a store with [`Durability::Always`] the append waits for an fsync: on a
    /// multi-threaded runtime in place (`block_in_place`: the worker's other tasks move to
    /// another thread); on a current-thread runtime asynchronously ([`Store::append_async`]:
    /// the store's syncer thread leads the fsync, shared with every other publish under way).
    /// Otherwise it never waits for the disk.
    ///
    /// Called from inside an async handler (awaited by it, not in a task it spawned), the
    /// events get the handled event's id as causation id and its correlation id, where they
    /// have none, as with [`HandlerContext::publish`].
    pub async fn publish(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        mut events: Vec<EventData>,
    ) -> Result<AppendResult, BusError> {
        if let Some((id, correlation)) = crate::bus::delivery::current_cause() {
            for e in &mut events {
                e.metadata.causation_id.get_or_insert(id);
                e.metadata.correlation_id.get_or_insert(correlation);
            }
        }
        let observed = self.inner.observer.as_ref().map(|_| {
            let bytes = events.iter().map(|e| e.payload.len() as u64).sum::<u64>();
            (events.len(), bytes, std::time::Instant::now())
        });
        let store = &self.inner.store;
        let r = if store.durability() == Durability::Always && multi_thread_runtime() {
            // The fsync is waited for on this task's thread, the worker's other tasks handed
            // over first (`block_in_place`), and the handlers are woken from it as soon as
            // the events are durable. Measured against the asynchronous wait below, whose
            // syncer thread must be woken and must then wake this task: publish -> handler
            // start 1.24x a durable append here, 1.43-1.51x there.
            tokio::task::block_in_place(|| {
                let r = store.append(stream, expected, &events);
                if r.is_ok() {
                    self.wake_handlers();
                }
                r
            })?
        } else {
            // Not durable: ready at once. On a current-thread runtime, whose one thread must
            // not block: the store's syncer thread leads the fsync, and wakes this task and
            // the handlers when it ends.
            store
                .append_async(stream, expected, &events)?
                .also_wake(self.inner.wake_waker.clone())
                .await?
        };
        if let (Some(o), Some((events, bytes, start))) = (&self.inner.observer, observed) {
            o.published(events, bytes, start.elapsed());
        }
        Ok(r)
    }

    /// [`EventBus::publish`] of one typed event.
    pub async fn publish_event<E: DomainEvent>(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        event: &E,
    ) -> Result<AppendResult, BusError> {
        self.publish(stream, expected, vec![encode(event)?]).await
    }

    /// Runs `handler` for every event of type `E::EVENT_TYPE`, decoded, as the handler `name`
    /// (checkpoint `$checkpoint-NAME`, dead letters `$dlq-NAME`). It resumes after its
    /// checkpoint, or starts at the beginning of the log. A payload that does not decode is
    /// parked at once with the reason. Call it from inside a tokio runtime.
    pub fn subscribe<E, F, Fut>(&self, name: &str, handler: F) -> Result<(), BusError>
    where
        E: DomainEvent,
        F: Fn(HandlerContext, E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.register(
            name,
            Selects::Type(E::EVENT_TYPE),
            HandlerFn::Async(handler::typed(handler)),
        )
    }

    /// Runs `handler` for every event of the user streams (not the `$` system streams), as
    /// stored (an `Arc`: the context holds the same event), as the handler `name`.
    pub fn subscribe_all<F, Fut>(&self, name: &str, handler: F) -> Result<(), BusError>
    where
        F: Fn(HandlerContext, Arc<RecordedEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.register(
            name,
            Selects::All,
            HandlerFn::Async(handler::untyped(handler)),
        )
    }

    /// [`EventBus::subscribe`] of a blocking (not async) handler, run on tokio's blocking
    /// threads.
    pub fn subscribe_blocking<E, F>(&self, name: &str, handler: F) -> Result<(), BusError>
    where
        E: DomainEvent,
        F: Fn(&HandlerContext, E) -> HandlerResult + Send + Sync + 'static,
    {
        self.register(
            name,
            Selects::Type(E::EVENT_TYPE),
            HandlerFn::Async(handler::blocking(handler)),
        )
    }

    /// Runs `handler` for every event of the user streams that passes `filter`, borrowed from
    /// the log (no copy per event), synchronously on the handler's task, with the attempt
    /// number (1, then 2, 3... for retries): the fastest way to keep a read model or a
    /// projection. Failures are retried with backoff and parked as for the other handlers (a
    /// retry reads the event again). Keep it quick and non-blocking: it runs on a tokio worker.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use evlog::{EventData, ExpectedVersion, ReadFilter, Store};
    /// use evlog::bus::{BusConfig, EventBus, Outcome};
    /// # let dir = tempfile::tempdir()?;
    /// let rt = tokio::runtime::Runtime::new()?;
    /// rt.block_on(async {
    ///     let bus = EventBus::new(Arc::new(Store::open(dir.path())?), BusConfig::default());
    ///     let totals: Arc<Mutex<u64>> = Arc::default();
    ///     let t = totals.clone();
    ///     bus.subscribe_ref("totals", ReadFilter::all().event_types(["OrderPlaced"]), move |e, _attempt| {
    ///         *t.lock().unwrap() += e.payload.len() as u64;
    ///         Ok(Outcome::Handled)
    ///     })?;
    ///     let r = bus.publish("order-1", ExpectedVersion::Any,
    ///                         vec![EventData::new("OrderPlaced", b"12345".to_vec())]).await?;
    ///     bus.wait_for("totals", r.last_position).await?;
    ///     assert_eq!(*totals.lock().unwrap(), 5);
    ///     bus.shutdown().await?;
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe_ref<F>(
        &self,
        name: &str,
        filter: ReadFilter,
        handler: F,
    ) -> Result<(), BusError>
    where
        F: Fn(&EventRef<'_>, u32) -> HandlerResult + Send + Sync + 'static,
    {
        self.register(
            name,
            Selects::Filter(filter),
            HandlerFn::Ref(Arc::new(handler)),
        )
    }

    fn register(&self, name: &str, selects: Selects, handler: HandlerFn) -> Result<(), BusError> {
        let bad = |reason| BusError::HandlerName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("must not be empty"));
        }
        if name.starts_with('$') {
            return Err(bad("must not start with `$`"));
        }
        if *self.inner.stop.borrow() {
            return Err(BusError::ShutDown);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BusError::NoRuntime)?;
        let mut handlers = self.inner.handlers.lock().expect("handler table");
        if handlers.contains_key(name) {
            return Err(bad("is already registered on this bus"));
        }
        let counters = Arc::new(Counters::default());
        let (progress, progress_rx) = watch::channel(0);
        let observer = self.inner.observer.as_ref().map(|o| o.handler(name));
        let runner = Runner::new(
            self.clone(),
            name,
            &selects,
            handler,
            counters.clone(),
            observer,
            progress,
        )?;
        let task = runtime.spawn(runner.run());
        handlers.insert(
            name.to_owned(),
            Registered {
                counters,
                progress: progress_rx,
                task: Some(task),
            },
        );
        Ok(())
    }

    /// The dead letters of the handler `handler` (registered on this bus or not).
    pub fn dead_letters(&self, handler: &str) -> DeadLetters {
        DeadLetters::new(self.clone(), handler)
    }

    /// What the handler `handler` has done since it was registered.
    pub fn stats(&self, handler: &str) -> Option<HandlerStats> {
        let handlers = self.inner.handlers.lock().expect("handler table");
        handlers.get(handler).map(|h| h.counters.snapshot())
    }

    /// Waits until the handler `handler` is done with every event up to `position` (handled,
    /// skipped, parked or not of its type). Errors when it stops first.
    pub async fn wait_for(&self, handler: &str, position: u64) -> Result<(), BusError> {
        let mut rx = {
            let handlers = self.inner.handlers.lock().expect("handler table");
            let h = handlers
                .get(handler)
                .ok_or_else(|| BusError::NoHandler(handler.to_owned()))?;
            h.progress.clone()
        };
        rx.wait_for(|next| *next > position)
            .await
            .map(|_| ())
            .map_err(|_| BusError::HandlerStopped {
                handler: handler.to_owned(),
                reason: "its task ended".into(),
            })
    }

    /// Stops every handler after the delivery in progress (a retry waiting for its backoff is
    /// not delivered: it will be after the next start), writes their checkpoints and waits for
    /// their tasks. Returns the first error a handler's task ended with.
    pub async fn shutdown(&self) -> Result<(), BusError> {
        self.inner.stop.send_replace(true);
        let tasks: Vec<(String, JoinHandle<Result<(), BusError>>)> = {
            let mut handlers = self.inner.handlers.lock().expect("handler table");
            handlers
                .iter_mut()
                .filter_map(|(name, h)| h.task.take().map(|t| (name.clone(), t)))
                .collect()
        };
        let mut first = Ok(());
        for (name, task) in tasks {
            let r = match task.await {
                Ok(r) => r,
                Err(e) => Err(BusError::HandlerStopped {
                    handler: name,
                    reason: e.to_string(),
                }),
            };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Whether the calling task runs on a multi-threaded tokio runtime (where `block_in_place` may
/// be used).
pub(crate) fn multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}
