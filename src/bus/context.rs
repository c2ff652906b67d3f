//! [`HandlerContext`]: what a handler knows of the delivery, and publishing from a handler with
//! the causation and correlation ids set.

use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::bus::EventBus;
use crate::bus::error::BusError;
use crate::bus::event::DomainEvent;
use crate::event::{AppendResult, EventData, ExpectedVersion, RecordedEvent};

/// One delivery of an event to a handler.
///
/// Events published through [`HandlerContext::publish`] carry the handled event's id as their
/// causation id and its correlation id (its own id when it has none) as their correlation id,
/// unless they already have one: a chain of events through handlers can be followed without
/// the handlers doing anything.
#[derive(Clone)]
pub struct HandlerContext {
    bus: EventBus,
    handler: Arc<str>,
    event: Arc<RecordedEvent>,
    attempt: u32,
    /// What [`HandlerContext::emit`] gathered in this attempt (shared by the context's clones).
    outputs: Arc<Mutex<Vec<Output>>>,
}

/// Events a handler emitted for one stream, stored with its checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<EventData>,
}

impl std::fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("handler", &self.handler)
            .field("stream", &self.event.stream)
            .field("position", &self.event.position)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl HandlerContext {
    pub(crate) fn new(
        bus: EventBus,
        handler: Arc<str>,
        event: Arc<RecordedEvent>,
        attempt: u32,
    ) -> Self {
        HandlerContext {
            bus,
            handler,
            event,
            attempt,
            outputs: Arc::default(),
        }
    }

    /// The outputs gathered so far (shared with the handler's copies of the context).
    pub(crate) fn outputs(&self) -> Arc<Mutex<Vec<Output>>> {
        self.outputs.clone()
    }

    /// The event as stored (stream, version, position, metadata, payload).
    pub fn event(&self) -> &RecordedEvent {
        &self.event
    }

    /// The event, shared.
    pub(crate) fn shared_event(&self) -> Arc<RecordedEvent> {
        self.event.clone()
    }

    /// The handler's name.
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// 1 for the first delivery of this event in this run, then 2, 3... for retries.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The correlation id events caused by this one get: the handled event's, or its id.
    pub fn correlation_id(&self) -> Uuid {
        self.event.metadata.correlation_id.unwrap_or(self.event.id)
    }

    /// The bus, for what the context does not wrap.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// `event` with the causation id (the handled event's id) and the correlation id set,
    /// where it has none.
    pub fn caused(&self, mut event: EventData) -> EventData {
        let m = &mut event.metadata;
        m.causation_id.get_or_insert(self.event.id);
        m.correlation_id.get_or_insert(self.correlation_id());
        event
    }

    /// [`EventBus::publish`] of events caused by the handled one (see [`HandlerContext::caused`]).
    /// A handler is delivered an event at least once: what it publishes may be published again
    /// when the event is redelivered. Outputs that must be stored exactly once are emitted
    /// instead ([`HandlerContext::emit`]).
    pub async fn publish(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, BusError> {
        let events = events.into_iter().map(|e| self.caused(e)).collect();
        self.bus.publish(stream, expected, events).await
    }

    /// Emits `events` to `stream`, to be stored **together with the handler's checkpoint**,
    /// after the handler returns: in one atomic [`Store::append_multi`](crate::Store::append_multi)
    /// with the checkpoint that marks the handled event done (and the outputs of the other events
    /// handled in the same batch); for a redriven event, with its `Redriven` dead-letter record.
    /// So the outputs of an event are stored **exactly once**, even across a crash or a kill -9:
    /// the event is delivered again after a crash only if its outputs were not stored, and they
    /// are stored once it is handled. [`HandlerContext::publish`] instead appends at once, and
    /// may append again when the event is delivered again.
    ///
    /// The events get the causation and correlation ids ([`HandlerContext::caused`]). They are
    /// stored only if the handler returns [`Outcome::Handled`](crate::bus::Outcome::Handled):
    /// a failed attempt's are dropped (the retry emits again), and so are a skipped event's.
    /// Outputs the store refuses (a stale `expected` version, a deleted stream, an append over
    /// the store's limits, a system stream `$...`) make the attempt fail: it is counted as a
    /// failure, and the later events of the handled stream are delivered again after it. The
    /// outputs of a polled batch's events are stored together after the batch, so a handler
    /// that reads the version it expects may read one that the batch's earlier outputs make
    /// stale: such an event is delivered again at once, one event at a time, each one's
    /// outputs stored before the next, and that delivery does not use up one of its retries
    /// ([`crate::bus::BusConfig::max_retries`]). Refused again, it is retried with backoff
    /// and parked when the retries run out (with dead letters off, retried until stored). Several calls for one stream in one attempt are stored as one append: each
    /// later call must expect [`ExpectedVersion::Any`], [`ExpectedVersion::StreamExists`], or
    /// the exact version the calls before it lead to (known when the first expects
    /// [`ExpectedVersion::NoStream`] or an exact version); otherwise the attempt fails. The
    /// handler does not see emitted events in the log before it returns; what a copy of the
    /// context emits after the handler returned is dropped.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use evlog::{Direction, ExpectedVersion, Store};
    /// use evlog::bus::{BusConfig, DomainEvent, EventBus, Outcome};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct OrderPlaced { total: u64 }
    /// impl DomainEvent for OrderPlaced { const EVENT_TYPE: &'static str = "OrderPlaced"; }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct InvoiceIssued { amount: u64 }
    /// impl DomainEvent for InvoiceIssued { const EVENT_TYPE: &'static str = "InvoiceIssued"; }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let rt = tokio::runtime::Runtime::new()?;
    /// rt.block_on(async {
    ///     let store = Arc::new(Store::open(dir.path())?);
    ///     let bus = EventBus::new(store.clone(), BusConfig::default());
    ///     // One invoice per order, stored with the handler's checkpoint: never two, even if the
    ///     // process is killed while it runs.
    ///     bus.subscribe("invoicing", |ctx, order: OrderPlaced| async move {
    ///         let invoice = format!("invoice-{}", ctx.event().stream);
    ///         ctx.emit_event(&invoice, ExpectedVersion::NoStream, &InvoiceIssued { amount: order.total })?;
    ///         Ok(Outcome::Handled)
    ///     })?;
    ///     let r = bus.publish_event("order-7", ExpectedVersion::NoStream, &OrderPlaced { total: 40 }).await?;
    ///     bus.wait_for("invoicing", r.last_position).await?;
    ///     let invoice: Vec<_> = store
    ///         .read_stream("invoice-order-7", 0, Direction::Forward, 10)
    ///         .collect::<evlog::Result<_>>()?;
    ///     let order = store.read_stream("order-7", 0, Direction::Forward, 1).next().unwrap()?;
    ///     assert_eq!(invoice.len(), 1);
    ///     assert_eq!(invoice[0].metadata.causation_id, Some(order.id));
    ///     bus.shutdown().await?;
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emit(&self, stream: &str, expected: ExpectedVersion, events: Vec<EventData>) {
        let events = events.into_iter().map(|e| self.caused(e)).collect();
        self.outputs.lock().push(Output {
            stream: stream.to_owned(),
            expected,
            events,
        });
    }

    /// [`HandlerContext::emit`] of one typed event.
    pub fn emit_event<E: DomainEvent>(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        event: &E,
    ) -> Result<(), BusError> {
        let data = crate::bus::event_bus::encode(event)?;
        self.emit(stream, expected, vec![data]);
        Ok(())
    }

    /// [`HandlerContext::publish`] of one typed event.
    pub async fn publish_event<E: DomainEvent>(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        event: &E,
    ) -> Result<AppendResult, BusError> {
        let data = crate::bus::event_bus::encode(event)?;
        self.publish(stream, expected, vec![data]).await
    }
}
