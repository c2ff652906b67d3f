//! The bus's `tracing` output: a `bus.deliver` span per delivery naming the handler, stream,
//! event type, position and attempt, and a "delivery failed" event per failure, seen by a
//! subscriber that records them.

#![cfg(feature = "bus")]

mod bus_common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bus_common::store;
use evlog::ExpectedVersion;
use evlog::bus::{BusConfig, DomainEvent, EventBus, Outcome};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Step {
    n: u64,
}

impl DomainEvent for Step {
    const EVENT_TYPE: &'static str = "Step";
}

type Fields = BTreeMap<String, String>;

/// Records the name and fields of every span and event.
#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<(String, Fields)>>,
    events: Mutex<Vec<Fields>>,
    next_id: AtomicU64,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// The recorder as the subscriber (a handle, so that the test keeps reading it).
#[derive(Clone)]
struct Handle(Arc<Recorder>);

impl Subscriber for Handle {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        span.record(&mut Collect(&mut fields));
        let mut spans = self.0.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), fields));
        Id::from_u64(self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        self.0.events.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

// A current-thread runtime: the handler's tasks run on this thread, where the recorder is the
// default subscriber.
#[tokio::test]
async fn each_delivery_has_a_span_and_each_failure_an_event() {
    let recorder = Arc::new(Recorder::default());
    let _guard = tracing::subscriber::set_default(Handle(recorder.clone()));
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), BusConfig::default().retry_delay_ms(1));
    bus.subscribe("audit", |ctx, _e: Step| async move {
        if ctx.attempt() == 1 {
            return Err("ledger busy".into());
        }
        Ok(Outcome::Handled)
    })
    .unwrap();
    let p = bus
        .publish_event("acct-9", ExpectedVersion::Any, &Step { n: 1 })
        .await
        .unwrap()
        .last_position;
    bus.wait_for("audit", p).await.unwrap();
    bus.shutdown().await.unwrap();

    let spans = recorder.spans.lock().unwrap().clone();
    let deliveries: Vec<&Fields> = spans
        .iter()
        .filter(|(name, _)| name == "bus.deliver")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(deliveries.len(), 2);
    for (f, attempt) in deliveries.iter().zip(["1", "2"]) {
        let want = [
            ("handler", "audit"),
            ("stream", "acct-9"),
            ("event_type", "Step"),
            ("position", &p.to_string()),
            ("attempt", attempt),
        ];
        for (k, v) in want {
            assert_eq!(f.get(k).map(String::as_str), Some(v), "{k} in {f:?}");
        }
    }
    let events = recorder.events.lock().unwrap().clone();
    let failed: Vec<&Fields> = events
        .iter()
        .filter(|f| f.get("message").is_some_and(|m| m == "delivery failed"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"], "ledger busy");
    assert_eq!(failed[0]["attempt"], "1");
}
