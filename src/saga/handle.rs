//! [`SagaHandle`]: starts, waits for and retries the sagas of one registered type, typed by
//! its input; starts them from bus events.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::bus::{DomainEvent, EventBus, HandlerContext, Outcome};
use crate::saga::definition::SagaData;
use crate::saga::error::SagaError;
use crate::saga::manager::SagaManager;
use crate::saga::record::saga_stream;
use crate::saga::state::{SagaState, SagaStatus};

/// Starts sagas of one registered type, typed by its input `I`. A clone is the same handle.
pub struct SagaHandle<I> {
    manager: SagaManager,
    saga_type: String,
    _input: PhantomData<fn(I)>,
}

impl<I> Clone for SagaHandle<I> {
    fn clone(&self) -> Self {
        SagaHandle {
            manager: self.manager.clone(),
            saga_type: self.saga_type.clone(),
            _input: PhantomData,
        }
    }
}

impl<I> std::fmt::Debug for SagaHandle<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaHandle")
            .field("saga_type", &self.saga_type)
            .finish_non_exhaustive()
    }
}

impl<I> SagaHandle<I> {
    pub(crate) fn new(manager: SagaManager, saga_type: String) -> Self {
        SagaHandle {
            manager,
            saga_type,
            _input: PhantomData,
        }
    }
}

impl<I: SagaData> SagaHandle<I> {
    /// The saga type.
    pub fn saga_type(&self) -> &str {
        &self.saga_type
    }

    /// The manager.
    pub fn manager(&self) -> &SagaManager {
        &self.manager
    }

    /// Starts the saga `saga_id` with `input`: returns once its `SagaStarted` record is
    /// durable; its steps then run in a task of this manager. At most one saga runs per id,
    /// ever: an id started before (by any manager, in any run) is refused with
    /// [`SagaError::AlreadyStarted`] and nothing is written.
    pub async fn start(&self, saga_id: &str, input: &I) -> Result<(), SagaError> {
        let stream = saga_stream(&self.saga_type, saga_id);
        let input = serde_json::to_value(input).map_err(|e| SagaError::Serde {
            stream,
            what: "the input".into(),
            reason: e.to_string(),
        })?;
        self.manager
            .start_json(&self.saga_type, saga_id, input)
            .await
    }

    /// [`SagaManager::wait`] of the saga `saga_id` of this type.
    pub async fn wait(&self, saga_id: &str) -> Result<SagaStatus, SagaError> {
        self.manager.wait(&self.saga_type, saga_id).await
    }

    /// [`SagaManager::state`] of the saga `saga_id` of this type.
    pub async fn state(&self, saga_id: &str) -> Result<Option<SagaState>, SagaError> {
        self.manager.state(&self.saga_type, saga_id).await
    }

    /// [`SagaManager::retry`] of the parked saga `saga_id` of this type.
    pub async fn retry(&self, saga_id: &str, by: &str) -> Result<(), SagaError> {
        self.manager.retry(&self.saga_type, saga_id, by).await
    }

    /// Starts a saga of this type for each event `E` on the bus: `key` gives the saga id (the
    /// correlation key, e.g. the event's stream, its aggregate id) and the input, or `None`
    /// to pass the event over. Runs as the bus handler `handler` (checkpoint
    /// `$checkpoint-HANDLER`): the bus delivers at least once, and an event delivered again
    /// finds its saga started and does nothing. A failed start is retried by the bus, then
    /// parked in its dead-letter queue.
    pub fn start_on<E, F>(&self, bus: &EventBus, handler: &str, key: F) -> Result<(), SagaError>
    where
        E: DomainEvent,
        F: Fn(&HandlerContext, E) -> Option<(String, I)> + Send + Sync + 'static,
    {
        let saga = self.clone();
        let key = Arc::new(key);
        bus.subscribe(handler, move |ctx: HandlerContext, e: E| {
            let saga = saga.clone();
            let key = key.clone();
            async move {
                let Some((id, input)) = key(&ctx, e) else {
                    return Ok(Outcome::Skip);
                };
                match saga.start(&id, &input).await {
                    Ok(()) | Err(SagaError::AlreadyStarted { .. }) => Ok(Outcome::Handled),
                    Err(e) => Err(e.into()),
                }
            }
        })?;
        Ok(())
    }
}
