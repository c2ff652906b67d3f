//! [`HandlerContext`]: what a handler knows of the delivery, and publishing from a handler with
//! the causation and correlation ids set.

use std::sync::Arc;

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
        }
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
    /// when the event is redelivered; give the events ids derived from the handled event's, or
    /// check the expected version, where that matters.
    pub async fn publish(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, BusError> {
        let events = events.into_iter().map(|e| self.caused(e)).collect();
        self.bus.publish(stream, expected, events).await
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
