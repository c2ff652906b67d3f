//! [`StepContext`]: what a step (or its compensation) knows of its saga.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::saga::definition::StepError;
use crate::store::Store;

/// What every step of one saga run shares.
pub(crate) struct Shared<I> {
    pub store: Arc<Store>,
    pub saga_type: String,
    pub saga_id: String,
    pub stream: String,
    pub input: I,
    pub step_names: Vec<String>,
    /// Position of the saga's `SagaStarted` record.
    pub started_position: u64,
    pub router: Arc<crate::saga::route::Router>,
    /// The manager's wall clock.
    pub clock: WallClock,
}

impl<I> Shared<I> {
    /// The idempotency key of step `step`: `TYPE/ID/STEP`.
    pub fn idempotency_key(&self, step: usize) -> String {
        format!(
            "{}/{}/{}",
            self.saga_type, self.saga_id, self.step_names[step]
        )
    }
}

/// A wall clock: microseconds since the Unix epoch, as the store's timestamps
/// ([`SagaManager::with_clock`](crate::saga::SagaManager::with_clock)).
pub(crate) type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// One attempt of a step, or of its compensation.
pub struct StepContext<I> {
    pub(crate) shared: Arc<Shared<I>>,
    pub(crate) outputs: Arc<Vec<Value>>,
    pub(crate) step: usize,
    pub(crate) attempt: u32,
    pub(crate) compensating: bool,
    /// When the step began (the saga's last record before it), microseconds since the epoch.
    pub(crate) began_us: u64,
    pub(crate) failure: Option<Arc<str>>,
}

impl<I> Clone for StepContext<I> {
    fn clone(&self) -> Self {
        StepContext {
            shared: self.shared.clone(),
            outputs: self.outputs.clone(),
            step: self.step,
            attempt: self.attempt,
            compensating: self.compensating,
            began_us: self.began_us,
            failure: self.failure.clone(),
        }
    }
}

impl<I> std::fmt::Debug for StepContext<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("stream", &self.shared.stream)
            .field("step", &self.step_name())
            .field("attempt", &self.attempt)
            .field("compensating", &self.compensating)
            .finish_non_exhaustive()
    }
}

impl<I> StepContext<I> {
    /// The saga's input.
    pub fn input(&self) -> &I {
        &self.shared.input
    }

    /// The saga type.
    pub fn saga_type(&self) -> &str {
        &self.shared.saga_type
    }

    /// The saga id.
    pub fn saga_id(&self) -> &str {
        &self.shared.saga_id
    }

    /// The saga's stream, `$saga-TYPE-ID`.
    pub fn stream(&self) -> &str {
        &self.shared.stream
    }

    /// This step's name.
    pub fn step_name(&self) -> &str {
        &self.shared.step_names[self.step]
    }

    /// This step's place in the saga (0-based).
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// 1 for the first attempt in this run, then 2, 3... for retries. It starts at 1 again
    /// when a saga is resumed after a crash: use [`StepContext::idempotency_key`], not the
    /// attempt, to recognise a repeat.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// True in a compensation, false in the step's execution.
    pub fn is_compensation(&self) -> bool {
        self.compensating
    }

    /// In a compensation, why the saga compensates: the step that failed and its last error
    /// (`None` in a step's execution).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The step's idempotency key, `TYPE/ID/STEP`: the same in every attempt, after every
    /// crash, in every manager, and in the step's compensation (which undoes what was done
    /// under it). A step runs again when its completion was not recorded: give the key to the
    /// services it calls, or check it in its own records, so that a repeat does nothing twice.
    pub fn idempotency_key(&self) -> String {
        self.shared.idempotency_key(self.step)
    }

    /// The output of the earlier step `step`, decoded as `O`. Errors when that step is not an
    /// earlier completed one, or its output is not an `O`.
    pub fn output<O: DeserializeOwned>(&self, step: &str) -> Result<O, StepError> {
        let index = self.shared.step_names.iter().position(|s| s == step);
        let value = index.and_then(|i| self.outputs.get(i)).ok_or_else(|| {
            format!("step {step:?} has no output (not an earlier completed step)")
        })?;
        serde_json::from_value(value.clone())
            .map_err(|e| format!("the output of step {step:?} does not decode: {e}").into())
    }

    /// The store, for steps that read or append events themselves.
    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }
}
