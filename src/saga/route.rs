//! Events routed to the sagas that wait for them ([`StepContext::wait_for_event`]): per event
//! type, a function giving the correlation key (the id of the saga it is for), and a signal
//! bumped by the bus handler that sees them arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::bus::DomainEvent;
use crate::event::{Direction, ReadFilter, RecordedEvent};
use crate::saga::context::StepContext;
use crate::saga::definition::StepError;

/// The saga id an event is for, if any.
pub(crate) type KeyFn = Arc<dyn Fn(&RecordedEvent) -> Option<String> + Send + Sync>;

/// The routes of one manager.
pub(crate) struct Router {
    keys: Mutex<HashMap<String, KeyFn>>,
    /// Bumped for each routed event that arrives.
    arrived: watch::Sender<u64>,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            keys: Mutex::new(HashMap::new()),
            arrived: watch::channel(0).0,
        }
    }
}

impl Router {
    /// Routes the events of `event_type` by `key`; false when that type has a route already.
    pub fn add(&self, event_type: &str, key: KeyFn) -> bool {
        let mut keys = self.keys.lock().expect("routes");
        if keys.contains_key(event_type) {
            return false;
        }
        keys.insert(event_type.to_owned(), key);
        true
    }

    fn key(&self, event_type: &str) -> Option<KeyFn> {
        self.keys.lock().expect("routes").get(event_type).cloned()
    }

    /// Wakes the steps waiting for events.
    pub fn arrived(&self) {
        self.arrived.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl<I> StepContext<I> {
    /// Waits for an event of type `E` routed to this saga (its correlation key, given by the
    /// route registered with [`SagaManager::route`](crate::saga::SagaManager::route), is this
    /// saga's id), appended after the saga started, until `deadline` after the step began;
    /// returns it, decoded. Past the deadline it is an error, so the step fails (and is
    /// retried, then compensated) like any other failure.
    ///
    /// The deadline counts from when the step began: the time of the saga's last record
    /// before it, as the store keeps it. So an attempt after a retry, and a step resumed after
    /// a crash or a restart, wait only for what is left of it (a saga whose process keeps
    /// restarting still fails its step on time). The event is looked for in the store, so one
    /// that arrived while no process ran (or before the step began waiting) is found.
    pub async fn wait_for_event<E: DomainEvent>(&self, deadline: Duration) -> Result<E, StepError> {
        let router = &self.shared.router;
        let key = router.key(E::EVENT_TYPE).ok_or_else(|| {
            format!(
                "no route for {}: register one with SagaManager::route",
                E::EVENT_TYPE
            )
        })?;
        let waited = (self.shared.clock)().saturating_sub(self.began_us);
        let until =
            tokio::time::Instant::now() + deadline.saturating_sub(Duration::from_micros(waited));
        let mut arrived = router.arrived.subscribe();
        let mut from = self.shared.started_position + 1;
        loop {
            arrived.borrow_and_update();
            let store = self.shared.store.clone();
            let key = key.clone();
            let id = self.shared.saga_id.clone();
            let (found, next) = tokio::task::spawn_blocking(move || {
                let filter = ReadFilter::all().event_types([E::EVENT_TYPE]);
                let mut next = from;
                for e in store.read_all(from, Direction::Forward, filter) {
                    let e = e?;
                    next = e.position + 1;
                    if key(&e).as_deref() == Some(id.as_str()) {
                        return Ok::<_, crate::Error>((Some(e), next));
                    }
                }
                Ok((None, next))
            })
            .await??;
            if let Some(e) = found {
                return E::decode(&e.payload).map_err(|reason| {
                    format!(
                        "event {} at position {} does not decode: {reason}",
                        E::EVENT_TYPE,
                        e.position
                    )
                    .into()
                });
            }
            from = next;
            tokio::select! {
                changed = arrived.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(until).await;
                    }
                }
                _ = tokio::time::sleep_until(until) => {
                    return Err(format!(
                        "no {} for saga {:?} within {deadline:?}",
                        E::EVENT_TYPE,
                        self.shared.saga_id
                    )
                    .into());
                }
            }
        }
    }
}
