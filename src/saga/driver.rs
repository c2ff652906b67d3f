//! The task that drives one saga: runs its next step (or compensation) with retries and
//! timeouts, and records each transition in the saga's stream at the exact version it last saw,
//! until the saga is settled, another manager takes it over, or the manager stops.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::Value;
use tokio::sync::watch;

use crate::bus::delivery::panic_message;
use crate::event::{ExpectedVersion, Metadata};
use crate::saga::commit::Committer;
use crate::saga::context::{Shared, StepContext, WallClock};
use crate::saga::definition::{BoxFuture, SagaData, SagaDefinition, StepPolicy, StepResult};
use crate::saga::error::SagaError;
use crate::saga::record::{SagaRecord, StepRef};
use crate::saga::state::{SagaState, SagaStatus};
use crate::store::Store;

/// How a driver ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The saga is settled (completed, compensated or needs-attention), or the manager
    /// stopped it at this status.
    Status(SagaStatus),
    /// Another manager advanced the saga past this version first.
    Lost(Option<u64>),
    /// The store refused an append or a read, or the saga's task panicked.
    Error(String),
}

/// What a driver needs from its manager.
pub(crate) struct Env {
    pub store: Arc<Store>,
    pub committer: Committer,
    /// Each record's metadata: the manager's id
    /// ([`manager_metadata`](crate::saga::record::manager_metadata)).
    pub metadata: Arc<Metadata>,
    pub router: Arc<crate::saga::route::Router>,
    pub stop: watch::Receiver<bool>,
    /// The manager's wall clock (microseconds since the Unix epoch).
    pub clock: WallClock,
}

/// A saga type with its input type erased, as the manager keeps it.
pub(crate) trait ErasedSaga: Send + Sync {
    fn step_names(&self) -> Vec<String>;
    /// Drives the saga from `state` until it settles.
    fn drive(self: Arc<Self>, env: Env, state: SagaState) -> BoxFuture<End>;
}

impl<I: SagaData> ErasedSaga for SagaDefinition<I> {
    fn step_names(&self) -> Vec<String> {
        SagaDefinition::step_names(self)
    }

    fn drive(self: Arc<Self>, env: Env, state: SagaState) -> BoxFuture<End> {
        Box::pin(async move {
            let input: I = match serde_json::from_value(state.started.input.clone()) {
                Ok(i) => i,
                Err(e) => {
                    return End::Error(format!(
                        "saga {:?}: its input does not decode: {e}",
                        state.stream
                    ));
                }
            };
            let shared = Arc::new(Shared {
                store: env.store.clone(),
                saga_type: state.started.saga_type.clone(),
                saga_id: state.started.saga_id.clone(),
                stream: state.stream.clone(),
                input,
                step_names: self.step_names(),
                started_position: state.started_position,
                router: env.router.clone(),
                clock: env.clock.clone(),
            });
            let driver = Driver {
                def: self,
                shared,
                state,
                env,
            };
            match driver.run().await {
                Ok(status) => End::Status(status),
                Err(SagaError::Lost { expected, .. }) => End::Lost(expected),
                Err(e) => End::Error(e.to_string()),
            }
        })
    }
}

/// How a step's (or compensation's) attempts ended.
enum Attempts<T> {
    Done(T, u32),
    Failed(String, u32),
    Stopped,
}

struct Driver<I> {
    def: Arc<SagaDefinition<I>>,
    shared: Arc<Shared<I>>,
    state: SagaState,
    env: Env,
}

impl<I: SagaData> Driver<I> {
    fn stopping(&self) -> bool {
        *self.env.stop.borrow()
    }

    async fn run(mut self) -> Result<SagaStatus, SagaError> {
        let steps = self.def.steps.len();
        loop {
            if self.state.status.is_settled() || self.stopping() {
                return Ok(self.state.status);
            }
            let records = match self.state.status {
                SagaStatus::Running => {
                    let i = self.state.outputs.len();
                    if i >= steps {
                        vec![SagaRecord::Completed]
                    } else {
                        match self.execute(i).await {
                            Attempts::Done(output, attempts) => {
                                let mut r = vec![SagaRecord::StepCompleted {
                                    step: self.step_ref(i, attempts),
                                    output,
                                }];
                                if i + 1 == steps {
                                    r.push(SagaRecord::Completed);
                                }
                                r
                            }
                            Attempts::Failed(error, attempts) => {
                                failed(self.step_ref(i, attempts), &error)
                            }
                            Attempts::Stopped => return Ok(self.state.status),
                        }
                    }
                }
                SagaStatus::Compensating => match self.state.next_to_compensate() {
                    None => vec![SagaRecord::Compensated],
                    Some(j) => match self.compensate(j).await {
                        Attempts::Done((), attempts) => {
                            let mut r =
                                vec![SagaRecord::StepCompensated(self.step_ref(j, attempts))];
                            if j == 0 {
                                r.push(SagaRecord::Compensated);
                            }
                            r
                        }
                        Attempts::Failed(error, attempts) => vec![SagaRecord::NeedsAttention {
                            step: self.step_ref(j, attempts),
                            error: bounded(&error),
                        }],
                        Attempts::Stopped => return Ok(self.state.status),
                    },
                },
                settled => return Ok(settled),
            };
            let completed = match records.first() {
                Some(SagaRecord::StepCompleted { step, .. }) => Some(step.clone()),
                _ => None,
            };
            match (self.commit(records).await, completed) {
                (Ok(()), _) => {}
                // The step's output is more than the store takes: the step failed (its own
                // effect is not undone, as for any failed step; the steps before it are),
                // instead of running again at every resume and stopping there.
                (Err(SagaError::Store(crate::Error::InvalidArgument(why))), Some(step)) => {
                    let error = format!("its output could not be stored: {why}");
                    self.commit(failed(step, &error)).await?;
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    fn step_ref(&self, index: usize, attempts: u32) -> StepRef {
        StepRef {
            step: self.def.steps[index].name.clone(),
            index,
            attempts,
        }
    }

    fn context(&self, step: usize, attempt: u32, compensating: bool) -> StepContext<I> {
        StepContext {
            shared: self.shared.clone(),
            outputs: Arc::new(self.state.outputs.clone()),
            step,
            attempt,
            compensating,
            began_us: self.state.last_record_us,
            failure: compensating
                .then_some(self.state.failed.as_ref())
                .flatten()
                .map(|(step, error)| Arc::from(format!("step {:?} failed: {error}", step.step))),
        }
    }

    async fn execute(&self, i: usize) -> Attempts<Value> {
        let step = &self.def.steps[i];
        let execute = step.execute.clone();
        self.attempts(i, step.policy, false, |ctx| execute(ctx))
            .await
    }

    async fn compensate(&self, j: usize) -> Attempts<()> {
        let step = &self.def.steps[j];
        let compensate = step.compensate.clone();
        let output = self.state.outputs[j].clone();
        self.attempts(j, step.policy, true, |ctx| compensate(ctx, output.clone()))
            .await
    }

    /// Attempts `call` until it succeeds, its retries run out or the manager stops. Each
    /// attempt runs in its own task, so that a panic is a failure and a timeout drops it.
    async fn attempts<T, F, Fut>(
        &self,
        step: usize,
        policy: StepPolicy,
        compensating: bool,
        call: F,
    ) -> Attempts<T>
    where
        F: Fn(StepContext<I>) -> Fut,
        Fut: Future<Output = StepResult<T>> + Unpin,
    {
        let what = if compensating { "compensation" } else { "step" };
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            // A timeout drops the attempt's future; so do the manager's shutdown and a runtime
            // shutting down (nothing recorded: the step runs again on resume, as after a
            // crash).
            let attempt_fut = CatchUnwind(call(self.context(step, attempt, compensating)));
            let mut stop = self.env.stop.clone();
            let timed = async {
                match policy.timeout {
                    None => Some(attempt_fut.await),
                    Some(t) => tokio::time::timeout(t, attempt_fut).await.ok(),
                }
            };
            // Biased: an attempt that is ready at once (most are) never registers with the
            // stop signal.
            let joined = tokio::select! {
                biased;
                joined = timed => joined,
                _ = stop.wait_for(|s| *s) => return Attempts::Stopped,
            };
            let error = match joined {
                Some(Ok(Ok(v))) => return Attempts::Done(v, attempt),
                Some(Ok(Err(e))) => e.to_string(),
                Some(Err(panic)) => format!("panicked: {panic}"),
                None => format!("timed out after {:?}", policy.timeout.unwrap_or_default()),
            };
            tracing::warn!(
                saga = %self.state.stream,
                step = %self.def.steps[step].name,
                attempt,
                what,
                error = %error,
                "saga step attempt failed"
            );
            if attempt > policy.max_retries {
                return Attempts::Failed(error, attempt);
            }
            let mut stop = self.env.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(policy.backoff.delay(attempt, self.seed(step))) => {}
                _ = stop.wait_for(|s| *s) => return Attempts::Stopped,
            }
        }
    }

    /// The jitter seed of the retries of step `step` (its idempotency key's hash).
    fn seed(&self, step: usize) -> u64 {
        seed_of(&self.shared.idempotency_key(step))
    }

    /// Appends `records` at the version last seen, and applies them.
    async fn commit(&mut self, records: Vec<SagaRecord>) -> Result<(), SagaError> {
        let events: Vec<_> = records
            .iter()
            .map(|r| r.to_event_with(Metadata::clone(&self.env.metadata)))
            .collect();
        let version = self.state.version;
        let r = self
            .env
            .committer
            .append(&self.state.stream, ExpectedVersion::Exact(version), events)
            .await?;
        let first = r.next_expected_version + 1 - records.len() as u64;
        for (k, record) in records.into_iter().enumerate() {
            self.state
                .apply_record(record, first + k as u64)
                .map_err(|reason| SagaError::BadRecord {
                    stream: self.state.stream.clone(),
                    version: first + k as u64,
                    reason,
                })?;
        }
        self.state.last_record_us = (self.env.clock)();
        Ok(())
    }
}

/// Bytes of a step's error kept in its records, at most: a longer one is cut (an error the
/// store cannot take must not stop the saga).
const ERROR_BYTES_MAX: usize = 4096;

/// `error`, cut to at most [`ERROR_BYTES_MAX`] bytes (at a character boundary).
fn bounded(error: &str) -> String {
    if error.len() <= ERROR_BYTES_MAX {
        return error.to_owned();
    }
    let mut end = ERROR_BYTES_MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes more)", &error[..end], error.len() - end)
}

/// The records of step `step` failing with `error`: the saga compensates.
fn failed(step: StepRef, error: &str) -> Vec<SagaRecord> {
    let error = bounded(error);
    let reason = format!("step {:?} failed: {error}", step.step);
    vec![
        SagaRecord::StepFailed { step, error },
        SagaRecord::Compensating { reason },
    ]
}

/// A future whose panic, while it is polled, is its output's error (the panic's message): a
/// step that panics fails like one that returns an error.
pub(crate) struct CatchUnwind<F>(pub F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic_message(panic))),
        }
    }
}

/// The jitter seed of a step (for [`crate::bus::Backoff::delay`]): the same in every run.
fn seed_of(key: &str) -> u64 {
    // FNV-1a.
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
