//! What the saga tests share: a saga type of `n` steps over a [`Plan`] (which step fails, which
//! compensation fails until healed), whose steps apply their effects to a [`Ledger`] keyed by
//! idempotency key, honouring it (an effect is applied once, whatever the reruns), and the
//! checks of a settled saga against its plan.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog::bus::Backoff;
use evlog::saga::{SagaDefinition, SagaStatus, StepPolicy};

/// What a test saga does: step `fail_step` (0-based) fails on every attempt; the compensation
/// of step `fail_compensation` fails until the ledger is healed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub fail_step: Option<usize>,
    pub fail_compensation: Option<usize>,
}

impl Plan {
    /// Step `step` fails on every attempt; compensations succeed.
    pub fn failing_at(step: usize) -> Plan {
        Plan {
            fail_step: Some(step),
            fail_compensation: None,
        }
    }
}

/// A step's output: which step, and the token its effect stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepOut {
    pub step: usize,
    pub token: String,
}

/// The external system the steps act on, keyed by idempotency key.
#[derive(Debug, Clone, Default)]
pub struct LedgerState {
    /// Effects applied, with the token each stored.
    pub applied: BTreeMap<String, String>,
    /// Effects undone.
    pub undone: BTreeSet<String>,
    /// How many times each effect was applied (an idempotent step: at most once).
    pub applications: BTreeMap<String, u32>,
    /// Calls of each step's execute, reruns included.
    pub executions: BTreeMap<String, u32>,
    /// Everything a saga's steps did, in order: `exec KEY`, `undo KEY`.
    pub journal: Vec<String>,
    /// What must never happen (an undo of an effect never applied, a wrong output handed on).
    pub violations: Vec<String>,
    /// Failing compensations succeed once healed.
    pub healed: bool,
}

/// The services a test saga's steps act on, keyed by idempotency key: an in-memory [`Ledger`],
/// or (in the kill -9 test) streams of a second store.
pub trait Effects: Send + Sync + 'static {
    /// Applies the effect under `key` unless it is applied already; returns its token.
    fn apply(&self, key: &str) -> String;
    /// The token of the effect under `key`, if it is applied.
    fn token(&self, key: &str) -> Option<String>;
    /// Undoes the effect under `key`, once; `out` must be what its step returned.
    fn undo(&self, key: &str, out: &StepOut);
    /// Whether failing compensations succeed now (at `attempt`).
    fn compensation_allowed(&self, attempt: u32) -> bool;
    /// Records what must never happen.
    fn violation(&self, v: String);
}

/// A shared ledger: the test process's model of the services the sagas call. It lives outside
/// the store, so a crash of the store leaves it as it was.
#[derive(Debug, Clone, Default)]
pub struct Ledger(pub Arc<Mutex<LedgerState>>);

impl Ledger {
    pub fn state(&self) -> LedgerState {
        self.0.lock().unwrap().clone()
    }

    /// A copy that goes its own way (a crash variant of the same history).
    pub fn fork(&self) -> Ledger {
        Ledger(Arc::new(Mutex::new(self.state())))
    }

    pub fn heal(&self) {
        self.0.lock().unwrap().healed = true;
    }
}

impl Effects for Ledger {
    fn apply(&self, key: &str) -> String {
        let mut l = self.0.lock().unwrap();
        *l.executions.entry(key.to_owned()).or_default() += 1;
        if let Some(token) = l.applied.get(key) {
            return token.clone();
        }
        let token = format!("{key}#{}", l.journal.len());
        l.applied.insert(key.to_owned(), token.clone());
        *l.applications.entry(key.to_owned()).or_default() += 1;
        l.journal.push(format!("exec {key}"));
        token
    }

    fn token(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap().applied.get(key).cloned()
    }

    fn undo(&self, key: &str, out: &StepOut) {
        let mut l = self.0.lock().unwrap();
        match l.applied.get(key).cloned() {
            None => l
                .violations
                .push(format!("compensation of {key}, whose step never completed")),
            Some(token) if token != out.token => l.violations.push(format!(
                "compensation of {key} got token {:?}, the step stored {token:?}",
                out.token
            )),
            Some(_) => {
                if l.undone.insert(key.to_owned()) {
                    l.journal.push(format!("undo {key}"));
                }
            }
        }
    }

    fn compensation_allowed(&self, _attempt: u32) -> bool {
        self.0.lock().unwrap().healed
    }

    fn violation(&self, v: String) {
        self.0.lock().unwrap().violations.push(v);
    }
}

/// Name of step `i`.
pub fn step_name(i: usize) -> String {
    format!("s{i}")
}

/// Retries that never wait: behaviour tests, not timing ones.
pub fn quick_policy(max_retries: u32) -> StepPolicy {
    StepPolicy {
        max_retries,
        backoff: Backoff {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        },
        timeout: None,
    }
}

/// The saga type `saga_type` of `steps` steps over a [`Plan`], acting on `ledger`. Each step
/// checks that it got the outputs of every earlier step.
pub fn definition(saga_type: &str, steps: usize, ledger: &Ledger) -> SagaDefinition<Plan> {
    definition_over(saga_type, steps, Arc::new(ledger.clone()), None)
}

/// A gate: the steps from index `from` on wait until `open` holds true before they act.
pub type Gate = (usize, tokio::sync::watch::Receiver<bool>);

/// [`definition`] over any [`Effects`], with an optional [`Gate`].
pub fn definition_over(
    saga_type: &str,
    steps: usize,
    ledger: Arc<dyn Effects>,
    gate: Option<Gate>,
) -> SagaDefinition<Plan> {
    let mut def = SagaDefinition::<Plan>::new(saga_type).default_policy(quick_policy(1));
    for i in 0..steps {
        let (lx, lc) = (ledger.clone(), ledger.clone());
        let gate = gate.clone().filter(|(from, _)| i >= *from).map(|(_, g)| g);
        def = def.step(
            step_name(i),
            move |ctx| {
                let ledger = lx.clone();
                let gate = gate.clone();
                async move {
                    if let Some(mut g) = gate {
                        g.wait_for(|open| *open).await?;
                    }
                    for k in 0..i {
                        let out: StepOut = ctx.output(&step_name(k))?;
                        let key = format!("{}/{}/{}", ctx.saga_type(), ctx.saga_id(), step_name(k));
                        let stored = ledger.token(&key);
                        if out.step != k || Some(&out.token) != stored.as_ref() {
                            ledger.violation(format!(
                                "{}: step {i} got output {out:?} of step {k}, stored {stored:?}",
                                ctx.stream()
                            ));
                        }
                    }
                    if ctx.input().fail_step == Some(i) {
                        return Err(format!("step {i} refused").into());
                    }
                    let token = ledger.apply(&ctx.idempotency_key());
                    Ok(StepOut { step: i, token })
                }
            },
            move |ctx, out: StepOut| {
                let ledger = lc.clone();
                async move {
                    if ctx.input().fail_compensation == Some(i)
                        && !ledger.compensation_allowed(ctx.attempt())
                    {
                        return Err(format!("compensation {i} refused").into());
                    }
                    if out.step != i {
                        ledger
                            .violation(format!("compensation {i} got the output of {}", out.step));
                    }
                    ledger.undo(&ctx.idempotency_key(), &out);
                    Ok(())
                }
            },
        );
    }
    def
}

/// The status a saga of `steps` steps ends with under `plan`, when failing compensations are
/// healed (`healed`) or not.
pub fn expected_status(steps: usize, plan: Plan, healed: bool) -> SagaStatus {
    match plan.fail_step.filter(|f| *f < steps) {
        None => SagaStatus::Completed,
        Some(f) => match plan.fail_compensation {
            Some(c) if c < f && !healed => SagaStatus::NeedsAttention,
            _ => SagaStatus::Compensated,
        },
    }
}

/// Checks a settled saga's effects in the ledger against its plan: a completed saga applied
/// each step once and undid none; a compensated one applied exactly the steps before the
/// failing one, once each, and undid each of them, last first; and the ledger saw nothing that
/// must never happen (an undo of what was never applied, a wrong output handed on).
pub fn check_effects(
    ctx: &str,
    ledger: &LedgerState,
    saga_type: &str,
    saga_id: &str,
    steps: usize,
    plan: Plan,
    status: SagaStatus,
) {
    assert!(
        ledger.violations.is_empty(),
        "{ctx}: {:?}",
        ledger.violations
    );
    let key = |i: usize| format!("{saga_type}/{saga_id}/{}", step_name(i));
    let fail = plan.fail_step.filter(|f| *f < steps);
    let applied_steps = fail.unwrap_or(steps);
    for i in 0..steps {
        let k = key(i);
        let applied = ledger.applications.get(&k).copied().unwrap_or(0);
        let want = u32::from(i < applied_steps);
        assert_eq!(
            applied, want,
            "{ctx}: {k} applied {applied} times, want {want}"
        );
        let undone = ledger.undone.contains(&k);
        let want_undone = status == SagaStatus::Compensated && i < applied_steps;
        assert_eq!(
            undone, want_undone,
            "{ctx}: {k} undone: {undone}, want {want_undone}"
        );
    }
    let prefix = format!("undo {saga_type}/{saga_id}/");
    let undone: Vec<&str> = ledger
        .journal
        .iter()
        .filter_map(|j| j.strip_prefix(&prefix))
        .collect();
    let mut reversed: Vec<String> = (0..applied_steps).rev().map(step_name).collect();
    if status != SagaStatus::Compensated {
        reversed.retain(|s| undone.contains(&s.as_str()));
    }
    assert_eq!(
        undone, reversed,
        "{ctx}: compensations not in reverse step order"
    );
}
