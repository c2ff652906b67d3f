//! One polled batch of a handler's events: with a concurrency of 1, one event at a time in
//! position order; above, stream by stream, each stream's events in order, up to `concurrency`
//! streams at once. A stream whose event is given up on (or that already has parked events) has
//! its later events of the batch held back.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bus::dead_letter::ParkReason;
use crate::bus::delivery::{Deliverer, Delivery};
use crate::bus::error::BusError;
use crate::event::RecordedEvent;

/// What came of one event of the batch.
pub(crate) enum Handled {
    /// Handled or skipped.
    Done,
    /// To park.
    Park {
        reason: ParkReason,
        attempts: u32,
        error: String,
    },
    /// Not delivered: the bus is shutting down.
    NotDone,
}

/// Delivers `batch`; `held` gives each stream's first parked position, if it has one. Returns
/// every event of the batch with what came of it, in position order.
pub(crate) async fn deliver_batch(
    deliverer: &Deliverer,
    batch: Vec<RecordedEvent>,
    held: impl Fn(&str) -> Option<u64>,
    concurrency: usize,
) -> Result<Vec<(RecordedEvent, Handled)>, BusError> {
    let mut lanes: Vec<Vec<RecordedEvent>> = Vec::new();
    if concurrency <= 1 {
        lanes.push(batch);
    } else {
        let mut lane_of: HashMap<Arc<str>, usize> = HashMap::new();
        for e in batch {
            let i = *lane_of.entry(e.stream.clone()).or_insert_with(|| {
                lanes.push(Vec::new());
                lanes.len() - 1
            });
            lanes[i].push(e);
        }
    }
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for events in lanes {
        let mut blocked_by = HashMap::new();
        for e in &events {
            if let Some(first) = held(&e.stream) {
                blocked_by.insert(e.stream.clone(), first);
            }
        }
        let (d, permits) = (deliverer.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            deliver_lane(&d, events, blocked_by).await
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

/// Events of the batch, in order, one at a time; `blocked_by` holds the first parked position
/// of the streams that have one.
async fn deliver_lane(
    d: &Deliverer,
    events: Vec<RecordedEvent>,
    mut blocked_by: HashMap<Arc<str>, u64>,
) -> Vec<(RecordedEvent, Handled)> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let handled = if let Some(first) = blocked_by.get(&e.stream) {
            Handled::Park {
                reason: ParkReason::HeldBack,
                attempts: 0,
                error: format!("held back behind parked position {first} of its stream"),
            }
        } else if *d.stop.borrow() {
            Handled::NotDone
        } else {
            match d.deliver(&e).await {
                Delivery::Done(_) => Handled::Done,
                Delivery::GaveUp {
                    reason,
                    attempts,
                    error,
                } => {
                    blocked_by.insert(e.stream.clone(), e.position);
                    Handled::Park {
                        reason,
                        attempts,
                        error,
                    }
                }
                Delivery::Stopped => Handled::NotDone,
            }
        };
        out.push((e, handled));
    }
    out
}
