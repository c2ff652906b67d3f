//! The first delivery of a polled batch's events: with a concurrency of 1, one event at a time
//! in position order, on the handler's task; above, stream by stream, each stream's events in
//! order, up to `concurrency` streams at once. An event whose delivery fails is not retried
//! here: it and the later events of its stream in the batch go back to the runner, which
//! retries them after their backoff while the other streams go on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bus::context::Output;
use crate::bus::delivery::{Deliverer, Failure};
use crate::bus::error::BusError;
use crate::event::RecordedEvent;

/// What came of one event of the batch.
pub(crate) enum Handled {
    /// Handled or skipped, with the events the handler emitted.
    Done(Vec<Output>),
    /// The first delivery failed.
    Failed(Failure),
    /// Not delivered: an earlier event of its stream failed in this batch.
    Behind,
    /// Not delivered: the bus is shutting down.
    NotDone,
}

/// Delivers each event of `batch` once. Returns every event of the batch with what came of
/// it, in position order.
pub(crate) async fn deliver_batch(
    deliverer: &Deliverer,
    batch: Vec<Arc<RecordedEvent>>,
    concurrency: usize,
) -> Result<Vec<(Arc<RecordedEvent>, Handled)>, BusError> {
    if concurrency <= 1 {
        return Ok(deliver_lane(deliverer, batch).await);
    }
    let mut lanes: Vec<Vec<Arc<RecordedEvent>>> = Vec::new();
    let mut lane_of: HashMap<Arc<str>, usize> = HashMap::new();
    for e in batch {
        let i = *lane_of.entry(e.stream.clone()).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[i].push(e);
    }
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for events in lanes {
        let (d, permits) = (deliverer.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            deliver_lane(&d, events).await
        });
    }
    let mut out = Vec::new();
    while let Some(lane) = tasks.join_next().await {
        out.extend(lane.map_err(|e| BusError::HandlerStopped {
            handler: deliverer.name.to_string(),
            reason: format!("a delivery task failed: {e}"),
        })?);
    }
    out.sort_by_key(|(e, _)| e.position);
    Ok(out)
}

/// Events in order, one at a time; after a failure, the later events of that stream are not
/// delivered.
async fn deliver_lane(
    d: &Deliverer,
    events: Vec<Arc<RecordedEvent>>,
) -> Vec<(Arc<RecordedEvent>, Handled)> {
    let mut failed: HashSet<Arc<str>> = HashSet::new();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let handled = if failed.contains(&e.stream) {
            Handled::Behind
        } else if *d.stop.borrow() {
            Handled::NotDone
        } else {
            match d.attempt(&e, 1).await {
                Ok(outputs) => Handled::Done(outputs),
                Err(f) => {
                    failed.insert(e.stream.clone());
                    Handled::Failed(f)
                }
            }
        };
        out.push((e, handled));
    }
    out
}
