//! What the bus tests share: a store that does not fsync (the tests check behaviour, not
//! durability, which the store's own tests cover).

#![allow(dead_code)] // each test binary uses a part

use std::sync::Arc;
use std::time::Duration;

use evlog::ExpectedVersion;
use evlog::bus::{BusError, DeadLetters, DomainEvent, HandlerContext};
use evlog::{Durability, Store, StoreOptions};

/// A store in `dir` without fsyncs.
pub fn store(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(
        StoreOptions::new()
            .durability(Durability::Never)
            .open(dir)
            .unwrap(),
    )
}

/// Waits until no dead letter is left (a redrive done); fails the test after 20,000 polls.
pub async fn until_empty(dlq: &DeadLetters) {
    for _ in 0..20_000 {
        if dlq.count().unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("dead letters left: {:?}", dlq.list().unwrap());
}

/// What the exactly-once tests' handlers emit for each event they handle.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credited {
    pub n: u64,
}

impl DomainEvent for Credited {
    const EVENT_TYPE: &'static str = "Credited";
}

/// Emits `Credited { n }` to `out-STREAM` (stored with the handler's checkpoint).
pub fn credit(ctx: &HandlerContext, stream: &str, n: u64) -> Result<(), BusError> {
    ctx.emit_event(
        &format!("out-{stream}"),
        ExpectedVersion::Any,
        &Credited { n },
    )
}

/// The input event of the restart tests.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Moved {
    pub n: u64,
}

impl DomainEvent for Moved {
    const EVENT_TYPE: &'static str = "Moved";
}
