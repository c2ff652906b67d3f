//! [`SagaDefinition`]: a saga type's ordered steps, each an async `execute` and an async
//! `compensate`, with its retry policy and timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bus::Backoff;
use crate::saga::context::StepContext;
use crate::saga::error::SagaError;

/// A step's error: any error type (`?` converts it), or a message (`"...".into()`). The step is
/// retried after its backoff, then the saga compensates (or, for a compensation, parks).
pub type StepError = Box<dyn std::error::Error + Send + Sync>;

/// What a step returns.
pub type StepResult<T> = Result<T, StepError>;

/// What a saga's input and its steps' outputs must be: serde types, stored as JSON in the
/// saga's stream.
pub trait SagaData: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> SagaData for T {}

/// How a step (and its compensation) is retried: up to `max_retries` more attempts after the
/// first, `backoff` apart (the bus's [`Backoff`]: exponential, jitter, cap), each attempt
/// given at most `timeout` (an attempt that takes longer is a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Delay before each retry.
    pub backoff: Backoff,
    /// Longest an attempt may take (`None`: no limit).
    pub timeout: Option<Duration>,
}

impl Default for StepPolicy {
    /// 3 retries, 100 ms doubling up to 10 s, no timeout.
    fn default() -> Self {
        StepPolicy {
            max_retries: 3,
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(10),
            },
            timeout: None,
        }
    }
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type ExecuteFn<I> =
    Arc<dyn Fn(StepContext<I>) -> BoxFuture<StepResult<Value>> + Send + Sync>;
pub(crate) type CompensateFn<I> =
    Arc<dyn Fn(StepContext<I>, Value) -> BoxFuture<StepResult<()>> + Send + Sync>;

/// One step, its output erased to JSON.
pub(crate) struct StepDef<I> {
    pub name: String,
    pub execute: ExecuteFn<I>,
    pub compensate: CompensateFn<I>,
    pub policy: StepPolicy,
}

impl<I> Clone for StepDef<I> {
    fn clone(&self) -> Self {
        StepDef {
            name: self.name.clone(),
            execute: self.execute.clone(),
            compensate: self.compensate.clone(),
            policy: self.policy,
        }
    }
}

/// A saga type: a name and ordered steps over an input `I`.
///
/// Each step has an async `execute`, whose output (any serde type) is stored in the saga's
/// stream when it succeeds, and an async `compensate`, which undoes it and receives that
/// output. Later steps read earlier outputs with [`StepContext::output`].
///
/// **Steps must be idempotent.** A step whose completion was not recorded before a crash (or
/// before another manager took over) runs again, and so does a compensation. Each step gets an
/// idempotency key ([`StepContext::idempotency_key`], the saga type, id and step name) to pass
/// to the services it calls or to check in its own records.
///
/// ```
/// use evlog::saga::{SagaDefinition, StepPolicy};
/// use std::time::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { id: String, amount: u64 }
///
/// let def = SagaDefinition::<Order>::new("checkout")
///     .step(
///         "reserve",
///         |ctx| async move { Ok(format!("hold-{}", ctx.input().id)) },
///         |_ctx, hold: String| async move { println!("release {hold}"); Ok(()) },
///     )
///     .with_timeout(Duration::from_secs(5))
///     .step_without_compensation("confirm", |_ctx| async move { Ok(()) });
/// assert_eq!(def.step_names(), ["reserve", "confirm"]);
/// ```
pub struct SagaDefinition<I> {
    pub(crate) saga_type: String,
    pub(crate) steps: Vec<StepDef<I>>,
    default_policy: StepPolicy,
}

impl<I> Clone for SagaDefinition<I> {
    fn clone(&self) -> Self {
        SagaDefinition {
            saga_type: self.saga_type.clone(),
            steps: self.steps.clone(),
            default_policy: self.default_policy,
        }
    }
}

impl<I> std::fmt::Debug for SagaDefinition<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaDefinition")
            .field("saga_type", &self.saga_type)
            .field("steps", &self.step_names())
            .finish_non_exhaustive()
    }
}

impl<I: SagaData> SagaDefinition<I> {
    /// A saga type named `saga_type` (its streams are `$saga-TYPE-ID`), with no step yet.
    /// The name must not be empty nor hold `-` or `$` (checked when it is registered).
    pub fn new(saga_type: impl Into<String>) -> Self {
        SagaDefinition {
            saga_type: saga_type.into(),
            steps: Vec::new(),
            default_policy: StepPolicy::default(),
        }
    }

    /// The policy of the steps added after this call.
    pub fn default_policy(mut self, policy: StepPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// Adds a step: `execute` returns its output `O`, kept in the saga's stream; `compensate`
    /// undoes it, given that output, when a later step fails. An output the store cannot keep
    /// (an event over its size limit) fails the step: the steps before it are compensated, its
    /// own effect is not (as for any failed step). A step's error is kept up to 4 KiB.
    pub fn step<O, E, EF, C, CF>(
        mut self,
        name: impl Into<String>,
        execute: E,
        compensate: C,
    ) -> Self
    where
        O: SagaData,
        E: Fn(StepContext<I>) -> EF + Send + Sync + 'static,
        EF: Future<Output = StepResult<O>> + Send + 'static,
        C: Fn(StepContext<I>, O) -> CF + Send + Sync + 'static,
        CF: Future<Output = StepResult<()>> + Send + 'static,
    {
        let execute: ExecuteFn<I> = Arc::new(move |ctx| {
            let fut = execute(ctx);
            Box::pin(async move {
                let out = fut.await?;
                serde_json::to_value(&out)
                    .map_err(|e| format!("the step's output does not encode: {e}").into())
            })
        });
        let compensate = Arc::new(compensate);
        let compensate: CompensateFn<I> = Arc::new(move |ctx, output: Value| {
            let compensate = compensate.clone();
            Box::pin(async move {
                let out: O = serde_json::from_value(output).map_err(|e| {
                    format!("the stored output does not decode as the step's output type: {e}")
                })?;
                compensate(ctx, out).await
            })
        });
        self.steps.push(StepDef {
            name: name.into(),
            execute,
            compensate,
            policy: self.default_policy,
        });
        self
    }

    /// Adds a step that has nothing to undo (a notification, a final record): its
    /// compensation does nothing.
    pub fn step_without_compensation<O, E, EF>(self, name: impl Into<String>, execute: E) -> Self
    where
        O: SagaData,
        E: Fn(StepContext<I>) -> EF + Send + Sync + 'static,
        EF: Future<Output = StepResult<O>> + Send + 'static,
    {
        self.step(name, execute, |_ctx, _out: O| async { Ok(()) })
    }

    fn last_policy(&mut self) -> &mut StepPolicy {
        &mut self
            .steps
            .last_mut()
            .expect("add a step before setting its policy")
            .policy
    }

    /// Sets the policy of the step added last. Panics when there is none.
    pub fn with_policy(mut self, policy: StepPolicy) -> Self {
        *self.last_policy() = policy;
        self
    }

    /// Sets the retries of the step added last. Panics when there is none.
    pub fn with_retries(mut self, max_retries: u32, backoff: Backoff) -> Self {
        let p = self.last_policy();
        p.max_retries = max_retries;
        p.backoff = backoff;
        self
    }

    /// Sets the timeout of each attempt of the step added last (its compensation's too).
    /// Panics when there is none.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.last_policy().timeout = Some(timeout);
        self
    }
}

impl<I> SagaDefinition<I> {
    /// The saga type's name.
    pub fn saga_type(&self) -> &str {
        &self.saga_type
    }

    /// The step names, in order.
    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.clone()).collect()
    }

    /// Checks the names: a type name that is not empty and holds no `-` (the stream
    /// `$saga-TYPE-ID` must name one saga) nor `$`; at least one step; step names not empty
    /// and distinct.
    pub(crate) fn validate(&self) -> Result<(), SagaError> {
        let bad = |reason: String| SagaError::Definition {
            saga_type: self.saga_type.clone(),
            reason,
        };
        if self.saga_type.is_empty() {
            return Err(bad("the type name must not be empty".into()));
        }
        if self.saga_type.contains(['-', '$']) {
            return Err(bad(
                "the type name must not hold `-` or `$` (streams are `$saga-TYPE-ID`); use `_`"
                    .into(),
            ));
        }
        if self.steps.is_empty() {
            return Err(bad("a saga needs at least one step".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.steps {
            if s.name.is_empty() {
                return Err(bad("a step name must not be empty".into()));
            }
            if !seen.insert(&s.name) {
                return Err(bad(format!("two steps are named {:?}", s.name)));
            }
        }
        Ok(())
    }
}
