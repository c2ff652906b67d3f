//! Metrics and health (feature `serve`): the bus feeds delivery and append metrics, the gauges
//! come from the store, the dead-letter streams, the checkpoints and the saga hook, and health
//! turns degraded or failing with the reasons. No timing is asserted.

#![cfg(feature = "serve")]

mod serve_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use evlog::bus::{BusConfig, DomainEvent, EventBus, Outcome};
use evlog::metrics::{HealthConfig, Metrics, Monitor, SagaCounts, Status, text_to_json};
use evlog::subscription::{Subscription, SubscriptionOptions};
use evlog::{EventData, ExpectedVersion, Store};

#[derive(serde::Serialize, serde::Deserialize)]
struct Flaky {
    n: u32,
}
impl DomainEvent for Flaky {
    const EVENT_TYPE: &'static str = "Flaky";
}

/// The value of the sample `name{labels}` in the OpenMetrics text (labels as written).
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

fn bus_with_metrics(store: Arc<Store>) -> (EventBus, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let config = BusConfig::default().max_retries(1).retry_delay_ms(1);
    (
        EventBus::with_observer(store, config, metrics.clone()),
        metrics,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_retries_parked_events_and_appends_are_counted_per_handler_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (bus, metrics) = bus_with_metrics(store.clone());
    // n = 0 fails once then works; n = 1 always fails (parked after 2 attempts).
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    bus.subscribe("mailer", move |_ctx, e: Flaky| {
        let first = e.n == 0 && c.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first || e.n == 1 {
                return Err("down".into());
            }
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
    let mut last = 0;
    for (i, n) in [0u32, 1].into_iter().enumerate() {
        let stream = format!("s-{i}");
        let r = bus
            .publish_event(&stream, ExpectedVersion::NoStream, &Flaky { n })
            .await
            .unwrap();
        last = r.last_position;
    }
    bus.publish(
        "other",
        ExpectedVersion::Any,
        vec![EventData::new("Other", b"12345".to_vec())],
    )
    .await
    .unwrap();
    bus.wait_for("mailer", last).await.unwrap();
    // Stopped: its checkpoint is written and nothing appends while the gauges are compared.
    bus.shutdown().await.unwrap();
    let monitor = Monitor::new(bus.clone(), metrics, HealthConfig::default());
    let text = monitor.scrape();
    let l = r#"{handler="mailer",event_type="Flaky""#;
    let s = |name: &str, extra: &str| sample(&text, &format!("{name}{l}{extra}}}"));
    assert_eq!(
        s("evlog_deliveries_total", r#",result="handled""#),
        Some(1.0)
    );
    assert_eq!(
        s("evlog_deliveries_total", r#",result="failed""#),
        Some(3.0)
    );
    assert_eq!(s("evlog_delivery_retries_total", ""), Some(2.0));
    assert_eq!(s("evlog_parked_events_total", ""), Some(1.0));
    assert_eq!(s("evlog_delivery_processing_seconds_count", ""), Some(4.0));
    assert_eq!(sample(&text, "evlog_appends_total"), Some(3.0));
    assert_eq!(sample(&text, "evlog_appended_events_total"), Some(3.0));
    // Two Flaky payloads ({"n":0}, {"n":1}: 7 bytes each) and "12345".
    assert_eq!(sample(&text, "evlog_appended_bytes_total"), Some(19.0));
    assert_eq!(
        sample(&text, "evlog_append_latency_seconds_count"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"evlog_dead_letters{handler="mailer"}"#),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            r#"evlog_dead_letter_oldest_age_seconds{handler="mailer"}"#
        )
        .is_some()
    );
    let head = store.head_position().unwrap() + 1;
    assert_eq!(sample(&text, "evlog_store_events"), Some(head as f64));
    assert_eq!(
        sample(&text, "evlog_store_streams"),
        Some(store.stream_count() as f64)
    );
    assert!(sample(&text, "evlog_store_on_disk_bytes").unwrap() > 0.0);
    assert_eq!(sample(&text, "evlog_store_segments"), Some(1.0));
    assert_eq!(sample(&text, "evlog_store_poisoned"), Some(0.0));
    // Every publish was fsynced (the default durability): the last fsync is reported.
    let (took, appends) = store.last_fsync().unwrap();
    assert!(appends >= 1);
    assert_eq!(
        sample(&text, "evlog_store_last_fsync_seconds"),
        Some(took.as_secs_f64())
    );
    assert_eq!(
        sample(&text, "evlog_store_last_fsync_appends"),
        Some(appends as f64)
    );
    // One parked event is above the default threshold (0): degraded, with the reason.
    assert_eq!(sample(&text, "evlog_health_status"), Some(1.0));
    let h = monitor.health();
    assert_eq!(h.status, Status::Degraded);
    assert_eq!(h.reasons.len(), 1);
    assert_eq!(h.reasons[0].check, "dead_letters");
    assert!(h.reasons[0].message.contains("mailer has 1 parked"));
    // The JSON form holds the same values.
    let json = text_to_json(&text);
    let family = json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "evlog_appends")
        .unwrap();
    assert_eq!(family["type"], "counter");
    assert_eq!(family["samples"][0]["value"], 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_head_minus_checkpoint_and_a_lagging_subscription_degrades_health() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let e = || vec![EventData::new("T", b"{}".to_vec())];
    for i in 0..3 {
        store
            .append(&format!("s-{i}"), ExpectedVersion::NoStream, &e())
            .unwrap();
    }
    let mut sub = Subscription::named(
        store.clone(),
        "reader",
        SubscriptionOptions::default().checkpoint_every(u64::MAX, Duration::MAX),
    )
    .unwrap();
    let none: &[(&str, ExpectedVersion, Vec<EventData>)] = &[];
    // Two events handled, checkpointed with their (no) outputs.
    assert_eq!(sub.poll_owned(2, Duration::ZERO).unwrap().len(), 2);
    sub.commit_with(2, none).unwrap();
    for i in 3..8 {
        store
            .append(&format!("s-{i}"), ExpectedVersion::NoStream, &e())
            .unwrap();
    }
    let (bus, metrics) = bus_with_metrics(store.clone());
    let config = HealthConfig {
        max_lag_events: 5,
        ..HealthConfig::default()
    };
    let monitor = Monitor::new(bus, metrics, config);
    let head = store.head_position().unwrap() + 1;
    let text = monitor.scrape();
    assert_eq!(
        sample(
            &text,
            r#"evlog_subscription_lag_events{subscription="reader"}"#
        ),
        Some((head - 2) as f64)
    );
    assert!(head - 2 > 5);
    let h = monitor.health();
    assert_eq!(h.status, Status::Degraded);
    assert_eq!(h.reasons[0].check, "subscription_lag");
    assert!(h.reasons[0].message.contains("reader"), "{h:?}");
    // Caught up (the checkpoint's own event is the only one after it): ok again.
    while sub.next_position() < head {
        sub.poll_owned(1_000, Duration::ZERO).unwrap();
    }
    sub.commit_with(head, none).unwrap();
    assert_eq!(monitor.health().status, Status::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_counts_come_from_the_hook_and_stuck_sagas_degrade_health() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (bus, metrics) = bus_with_metrics(store);
    let stuck = Arc::new(AtomicU32::new(0));
    let s = stuck.clone();
    let monitor =
        Monitor::new(bus, metrics, HealthConfig::default()).with_sagas(Arc::new(move || {
            SagaCounts {
                active: 4,
                completed: 9,
                compensated: 2,
                stuck: u64::from(s.load(Ordering::SeqCst)),
            }
        }));
    assert_eq!(monitor.health().status, Status::Ok);
    stuck.store(1, Ordering::SeqCst);
    let text = monitor.scrape();
    for (state, n) in [
        ("active", 4.0),
        ("completed", 9.0),
        ("compensated", 2.0),
        ("stuck", 1.0),
    ] {
        assert_eq!(
            sample(&text, &format!(r#"evlog_sagas{{state="{state}"}}"#)),
            Some(n),
            "{state}"
        );
    }
    let h = monitor.health();
    assert_eq!((h.status, h.reasons[0].check), (Status::Degraded, "sagas"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_is_degraded_then_failing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (bus, metrics) = bus_with_metrics(store);
    // Thresholds above any real share of free space: the real disk looks nearly full.
    let degraded = HealthConfig {
        disk_degraded_ratio: 1.01,
        ..HealthConfig::default()
    };
    let h = Monitor::new(bus.clone(), metrics.clone(), degraded).health();
    assert_eq!((h.status, h.reasons[0].check), (Status::Degraded, "disk"));
    let failing = HealthConfig {
        disk_degraded_ratio: 1.01,
        disk_failing_ratio: 1.01,
        ..HealthConfig::default()
    };
    let h = Monitor::new(bus, metrics, failing).health();
    assert_eq!((h.status, h.reasons[0].check), (Status::Failing, "disk"));
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_store_makes_health_failing() {
    let (fs, store) = serve_common::fault_store();
    let (bus, metrics) = bus_with_metrics(store.clone());
    let monitor = Monitor::new(bus, metrics, HealthConfig::default());
    let e = || vec![EventData::new("T", b"{}".to_vec())];
    store.append("a", ExpectedVersion::Any, &e()).unwrap();
    assert_eq!(monitor.health().status, Status::Ok);
    serve_common::poison(&fs, &store);
    let h = monitor.health();
    assert_eq!((h.status, h.reasons[0].check), (Status::Failing, "store"));
    assert_eq!(sample(&monitor.scrape(), "evlog_store_poisoned"), Some(1.0));
}
