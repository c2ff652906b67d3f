//! The event bus: typed delivery in order, parking and held-back streams, redrive order,
//! discard, undecodable payloads, panicking handlers, skip and retry-later answers, dead letters
//! off, and causation/correlation of what a handler publishes. No timing is asserted: the tests
//! wait for outcomes (`wait_for`, the dead-letter count).

#![cfg(feature = "bus")]

mod bus_common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_common::{store, until_empty};
use evlog::bus::{
    BusConfig, BusError, DeadLetterRecord, DomainEvent, EventBus, Outcome, ParkReason,
    RedriveTarget,
};
use evlog::{Direction, EventData, ExpectedVersion, Metadata, Uuid};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Step {
    n: u64,
}

impl DomainEvent for Step {
    const EVENT_TYPE: &'static str = "Step";
}

type Seen = Arc<Mutex<Vec<(String, u64)>>>;
type Poison = Arc<Mutex<HashSet<(String, u64)>>>;

fn fast() -> BusConfig {
    BusConfig::default()
        .max_retries(1)
        .retry_delay_ms(1)
        .max_retry_delay_ms(2)
        .idle_poll_ms(5)
}

/// Registers "h": records each `Step` it handles; fails (an error) on the poisoned ones.
fn recording_handler(bus: &EventBus, seen: &Seen, poison: &Poison) {
    let (seen, poison) = (seen.clone(), poison.clone());
    bus.subscribe("h", move |ctx, e: Step| {
        let key = (ctx.event().stream.to_string(), e.n);
        let failing = poison.lock().unwrap().contains(&key);
        if !failing {
            seen.lock().unwrap().push(key.clone());
        }
        async move {
            if failing {
                return Err(format!("{} {} is poisoned", key.0, key.1).into());
            }
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
}

/// A bus whose handler "h" records what it handles and fails on a-1 until healed.
fn a1_poisoned() -> (tempfile::TempDir, EventBus, Seen, Poison) {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast());
    let seen = Seen::default();
    let poison = Poison::default();
    poison.lock().unwrap().insert(("a".into(), 1));
    recording_handler(&bus, &seen, &poison);
    (dir, bus, seen, poison)
}

async fn publish(bus: &EventBus, stream: &str, n: u64) -> u64 {
    bus.publish_event(stream, ExpectedVersion::Any, &Step { n })
        .await
        .unwrap()
        .last_position
}

fn pairs(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_holds_back_its_stream_and_a_redrive_delivers_them_in_order() {
    let (_dir, bus, seen, poison) = a1_poisoned();

    let mut pos = Vec::new();
    for (s, n) in [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
        ("a", 3),
        ("b", 2),
    ] {
        pos.push(publish(&bus, s, n).await);
    }
    bus.wait_for("h", *pos.last().unwrap()).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        pairs(&[("a", 0), ("b", 0), ("b", 1), ("b", 2)])
    );

    let dlq = bus.dead_letters("h");
    let parked = dlq.list().unwrap();
    let summary: Vec<_> = parked
        .iter()
        .map(|l| {
            (
                l.position,
                l.stream.as_str(),
                l.version,
                l.reason,
                l.attempts,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (pos[1], "a", 1, ParkReason::Failed, 2),
            (pos[2], "a", 2, ParkReason::HeldBack, 0),
            (pos[5], "a", 3, ParkReason::HeldBack, 0),
        ]
    );
    assert!(parked[0].last_error.contains("a 1 is poisoned"));
    assert_eq!(
        (parked[0].handler.as_str(), parked[0].event_type.as_str()),
        ("h", "Step")
    );
    assert!(
        parked[1]
            .last_error
            .contains(&format!("position {}", pos[1]))
    );
    assert_eq!(bus.stats("h").unwrap().parked, 3);

    // Only a stream's first parked event can be redriven alone.
    assert!(matches!(
        dlq.redrive(pos[2], "ops"),
        Err(BusError::NotFirstInStream { first, .. }) if first == pos[1]
    ));
    assert!(matches!(
        dlq.redrive(pos[3], "ops"),
        Err(BusError::NotParked { .. })
    ));

    // Still failing: a redrive of the first leaves all three parked, attempts counted.
    dlq.redrive(pos[1], "ops").unwrap();
    for _ in 0..20_000 {
        if dlq.list().unwrap()[0].attempts == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(dlq.list().unwrap()[0].attempts, 4);
    assert_eq!(dlq.count().unwrap(), 3);

    // Healed: the whole stream is redriven, in order, then new events of it flow again.
    poison.lock().unwrap().clear();
    assert_eq!(dlq.redrive_stream("a", "ops").unwrap(), 3);
    until_empty(&dlq).await;
    let p = publish(&bus, "a", 4).await;
    bus.wait_for("h", p).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        pairs(&[
            ("a", 0),
            ("b", 0),
            ("b", 1),
            ("b", 2),
            ("a", 1),
            ("a", 2),
            ("a", 3),
            ("a", 4)
        ])
    );
    assert_eq!(bus.stats("h").unwrap().redriven, 3);

    // The history says who asked for what, and what came of it.
    let history = dlq.history().unwrap();
    let requests: Vec<_> = history
        .iter()
        .filter_map(|r| match r {
            DeadLetterRecord::RedriveRequested { target, by, .. } => {
                Some((target.clone(), by.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        requests,
        [
            (RedriveTarget::Position(pos[1]), "ops".to_string()),
            (RedriveTarget::Stream("a".into()), "ops".to_string())
        ]
    );
    let redriven: Vec<u64> = history
        .iter()
        .filter_map(|r| match r {
            DeadLetterRecord::Redriven { position, .. } => Some(*position),
            _ => None,
        })
        .collect();
    assert_eq!(redriven, [pos[1], pos[2], pos[5]]);
    assert!(history.iter().any(|r| matches!(r,
        DeadLetterRecord::RedriveFailed { position, attempts: 2, .. } if *position == pos[1])));
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_event_is_never_delivered_and_its_stream_flows_once_empty() {
    let (_dir, bus, seen, _poison) = a1_poisoned();
    let mut pos = Vec::new();
    for n in 0..3 {
        pos.push(publish(&bus, "a", n).await);
    }
    bus.wait_for("h", pos[2]).await.unwrap();
    let dlq = bus.dead_letters("h");
    assert_eq!(dlq.count().unwrap(), 2);

    dlq.discard(pos[1], "ops").unwrap();
    assert!(matches!(
        dlq.discard(pos[1], "ops"),
        Err(BusError::NotParked { .. })
    ));
    // a-2 is still parked, and a-3 is held behind it.
    let p3 = publish(&bus, "a", 3).await;
    bus.wait_for("h", p3).await.unwrap();
    let parked: Vec<u64> = dlq.list().unwrap().iter().map(|l| l.version).collect();
    assert_eq!(parked, [2, 3]);

    assert_eq!(dlq.redrive_all("ops").unwrap(), 2);
    until_empty(&dlq).await;
    let p4 = publish(&bus, "a", 4).await;
    bus.wait_for("h", p4).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        pairs(&[("a", 0), ("a", 2), ("a", 3), ("a", 4)])
    );
    assert!(dlq.history().unwrap().iter().any(|r| matches!(r,
        DeadLetterRecord::Discarded { position, by, at_us } if *position == pos[1] && by == "ops" && *at_us > 0)));
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_decode_is_parked_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().max_retries(5));
    let seen = Seen::default();
    recording_handler(&bus, &seen, &Poison::default());
    let bad = bus
        .publish(
            "c",
            ExpectedVersion::Any,
            vec![EventData::new("Step", b"not json".to_vec())],
        )
        .await
        .unwrap()
        .last_position;
    let wrong_shape = bus
        .publish(
            "e",
            ExpectedVersion::Any,
            vec![EventData::new("Step", br#"{"m":1}"#.to_vec())],
        )
        .await
        .unwrap()
        .last_position;
    publish(&bus, "c", 1).await;
    let last = publish(&bus, "d", 0).await;
    bus.wait_for("h", last).await.unwrap();

    assert_eq!(*seen.lock().unwrap(), pairs(&[("d", 0)]));
    let parked = bus.dead_letters("h").list().unwrap();
    assert_eq!(parked.len(), 3);
    for (l, p) in [(&parked[0], bad), (&parked[1], wrong_shape)] {
        assert_eq!(
            (l.position, l.reason, l.attempts),
            (p, ParkReason::BadPayload, 1)
        );
        assert!(
            l.last_error.starts_with("payload does not decode"),
            "{}",
            l.last_error
        );
    }
    assert_eq!(
        (parked[2].stream.as_str(), parked[2].reason),
        ("c", ParkReason::HeldBack)
    );
    let stats = bus.stats("h").unwrap();
    assert_eq!((stats.failures, stats.panics, stats.handled), (2, 0, 1));
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_counted_as_failing_and_the_bus_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().max_retries(2));
    let seen = Seen::default();
    let s = seen.clone();
    bus.subscribe("h", move |ctx, e: Step| {
        if e.n == 1 {
            panic!("step {} of {} is cursed", e.n, ctx.event().stream);
        }
        s.lock()
            .unwrap()
            .push((ctx.event().stream.to_string(), e.n));
        async { Ok(Outcome::Handled) }
    })
    .unwrap();
    // A blocking handler that panics is caught the same way.
    bus.subscribe_blocking("blocking", |_ctx, e: Step| {
        assert!(e.n != 1, "blocking handler refuses step 1");
        Ok(Outcome::Handled)
    })
    .unwrap();
    publish(&bus, "a", 0).await;
    publish(&bus, "a", 1).await;
    let last = publish(&bus, "b", 0).await;
    for h in ["h", "blocking"] {
        bus.wait_for(h, last).await.unwrap();
        let stats = bus.stats(h).unwrap();
        assert_eq!(
            (stats.failures, stats.panics, stats.handled, stats.parked),
            (3, 3, 2, 1)
        );
        let parked = bus.dead_letters(h).list().unwrap();
        assert_eq!(
            (parked[0].reason, parked[0].attempts),
            (ParkReason::Panicked, 3)
        );
        assert!(
            parked[0].last_error.starts_with("handler panicked"),
            "{}",
            parked[0].last_error
        );
    }
    assert!(
        bus.dead_letters("h").list().unwrap()[0]
            .last_error
            .contains("step 1 of a is cursed")
    );
    assert_eq!(*seen.lock().unwrap(), pairs(&[("a", 0), ("b", 0)]));
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_and_retry_later_answers() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().max_retries(3));
    bus.subscribe("h", |ctx, e: Step| async move {
        Ok(match e.n {
            // Ready on the third delivery.
            0 if ctx.attempt() < 3 => Outcome::RetryLater(Duration::from_millis(1)),
            1 => Outcome::Skip,
            // Never ready: parked after 1 + max_retries deliveries.
            2 => Outcome::RetryLater(Duration::from_millis(1)),
            _ => Outcome::Handled,
        })
    })
    .unwrap();
    for (s, n) in [("a", 0), ("b", 1), ("c", 2)] {
        publish(&bus, s, n).await;
    }
    let last = publish(&bus, "d", 3).await;
    bus.wait_for("h", last).await.unwrap();
    let stats = bus.stats("h").unwrap();
    assert_eq!(
        (stats.handled, stats.skipped, stats.failures, stats.parked),
        (2, 1, 2 + 4, 1)
    );
    let parked = bus.dead_letters("h").list().unwrap();
    assert_eq!(
        (
            parked[0].stream.as_str(),
            parked[0].reason,
            parked[0].attempts
        ),
        ("c", ParkReason::RetryLater, 4)
    );
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dead_letters_off_a_failing_event_is_retried_until_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(
        store(dir.path()),
        fast().max_retries(0).dead_letter_enabled(false),
    );
    bus.subscribe("h", |ctx, _e: Step| async move {
        if ctx.attempt() <= 5 {
            return Err("not yet".into());
        }
        Ok(Outcome::Handled)
    })
    .unwrap();
    publish(&bus, "a", 0).await;
    let last = publish(&bus, "a", 1).await;
    bus.wait_for("h", last).await.unwrap();
    let stats = bus.stats("h").unwrap();
    assert_eq!((stats.handled, stats.failures, stats.parked), (2, 10, 0));
    assert_eq!(bus.dead_letters("h").count().unwrap(), 0);
    bus.shutdown().await.unwrap();
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OrderPlaced {
    order: String,
}
impl DomainEvent for OrderPlaced {
    const EVENT_TYPE: &'static str = "OrderPlaced";
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OrderShipped {
    order: String,
}
impl DomainEvent for OrderShipped {
    const EVENT_TYPE: &'static str = "OrderShipped";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_by_a_handler_carry_causation_and_correlation() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast());
    bus.subscribe("shipper", |ctx, e: OrderPlaced| async move {
        ctx.publish_event(
            &format!("shipment-{}", e.order),
            ExpectedVersion::NoStream,
            &OrderShipped { order: e.order },
        )
        .await?;
        Ok(Outcome::Handled)
    })
    .unwrap();
    // Through the bus itself, not the context: the ids are set all the same.
    let through = bus.clone();
    bus.subscribe("notifier", move |_ctx, e: OrderPlaced| {
        let bus = through.clone();
        async move {
            let note = EventData::new("Notified", e.order.clone().into_bytes());
            bus.publish(
                &format!("note-{}", e.order),
                ExpectedVersion::NoStream,
                vec![note],
            )
            .await?;
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
    let correlation = Uuid::new_v4();
    let placed = OrderPlaced {
        order: "o-1".into(),
    }
    .to_event_data()
    .unwrap();
    let with = placed
        .clone()
        .with_metadata(Metadata::new().with_correlation_id(correlation));
    bus.publish("order-1", ExpectedVersion::NoStream, vec![with.clone()])
        .await
        .unwrap();
    // Without a correlation id, the handled event's id is the correlation.
    let bare = OrderPlaced {
        order: "o-2".into(),
    }
    .to_event_data()
    .unwrap();
    let last = bus
        .publish("order-2", ExpectedVersion::NoStream, vec![bare.clone()])
        .await
        .unwrap()
        .last_position;
    bus.wait_for("shipper", last).await.unwrap();
    bus.wait_for("notifier", last).await.unwrap();

    for (order, cause, corr) in [("o-1", with.id, correlation), ("o-2", bare.id, bare.id)] {
        for (stream, event_type) in [("shipment", "OrderShipped"), ("note", "Notified")] {
            let caused: Vec<_> = bus
                .store()
                .read_stream(&format!("{stream}-{order}"), 0, Direction::Forward, 10)
                .map(|e| e.unwrap())
                .collect();
            assert_eq!(caused.len(), 1);
            assert_eq!(&*caused[0].event_type, event_type);
            assert_eq!(caused[0].metadata.causation_id, Some(cause), "{stream}");
            assert_eq!(caused[0].metadata.correlation_id, Some(corr), "{stream}");
        }
    }
    // A publish outside any handler sets neither.
    let r = bus
        .publish(
            "order-3",
            ExpectedVersion::NoStream,
            vec![bare.clone().with_id(Uuid::new_v4())],
        )
        .await
        .unwrap();
    let e = bus
        .store()
        .read_stream("order-3", 0, Direction::Forward, 1)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(e.position, r.first_position);
    assert_eq!(
        (e.metadata.causation_id, e.metadata.correlation_id),
        (None, None)
    );
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast());
    let ok = |_ctx, _e: Step| async { Ok(Outcome::Handled) };
    bus.subscribe("h", ok).unwrap();
    for name in ["h", "", "$dlq-h"] {
        assert!(
            matches!(bus.subscribe(name, ok), Err(BusError::HandlerName { .. })),
            "{name:?}"
        );
    }
    assert!(matches!(
        bus.wait_for("other", 0).await,
        Err(BusError::NoHandler(_))
    ));
    bus.shutdown().await.unwrap();
    assert!(matches!(bus.subscribe("late", ok), Err(BusError::ShutDown)));
}

#[test]
fn registering_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast());
    let r = bus.subscribe("h", |_ctx, _e: Step| async { Ok(Outcome::Handled) });
    assert!(matches!(r, Err(BusError::NoRuntime)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_concurrency_a_waiting_stream_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().concurrency(4));
    // Published before the handler starts, so that its first poll reads them all: the streams
    // of one polled batch are delivered concurrently.
    for (s, n) in [("a", 0), ("a", 1), ("b", 0), ("b", 1)] {
        publish(&bus, s, n).await;
    }
    let last = publish(&bus, "c", 0).await;
    let seen = Seen::default();
    let (b_handled, b_seen) = tokio::sync::watch::channel(false);
    let b_handled = Arc::new(b_handled);
    let s = seen.clone();
    bus.subscribe("h", move |ctx, e: Step| {
        let (s, b_handled, mut b_seen) = (s.clone(), b_handled.clone(), b_seen.clone());
        let stream = ctx.event().stream.to_string();
        async move {
            // a-0 waits until b-0 was handled: one stream at a time, a first, would never end.
            if stream == "a" && e.n == 0 {
                b_seen.wait_for(|b| *b).await.unwrap();
            }
            s.lock().unwrap().push((stream.clone(), e.n));
            if stream == "b" {
                b_handled.send_replace(true);
            }
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
    tokio::time::timeout(Duration::from_secs(60), bus.wait_for("h", last))
        .await
        .expect("stream a held up stream b")
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let at = |s: &str, n: u64| seen.iter().position(|(x, m)| x == s && *m == n).unwrap();
    assert!(at("b", 0) < at("a", 0));
    assert!(at("a", 0) < at("a", 1) && at("b", 0) < at("b", 1));
    assert_eq!(seen.len(), 5);
    bus.shutdown().await.unwrap();
}

/// A handler of borrowed events (`subscribe_ref`): only what its filter passes, each stream in
/// order; a failing event is retried (it waits, its stream's later events queued behind it,
/// while other streams go on), then parked with them; a panic is a failure; a redrive reads
/// the events again and delivers them in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_of_borrowed_events_retries_parks_and_is_redriven_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast());
    let seen = Seen::default();
    let attempts: Arc<Mutex<Vec<(String, u64, u32)>>> = Arc::default();
    let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, a, h) = (seen.clone(), attempts.clone(), healed.clone());
    bus.subscribe_ref(
        "borrowed",
        evlog::ReadFilter::all().event_types(["Step"]),
        move |e, attempt| {
            let n: u64 = Step::decode(e.payload).unwrap().n;
            a.lock().unwrap().push((e.stream.to_owned(), n, attempt));
            let healed = h.load(std::sync::atomic::Ordering::SeqCst);
            if e.stream == "a" && n == 1 && !healed {
                if attempt == 1 {
                    panic!("a 1 panics");
                }
                return Err("a 1 fails".into());
            }
            s.lock().unwrap().push((e.stream.to_owned(), n));
            Ok(Outcome::Handled)
        },
    )
    .unwrap();
    let mut pos = Vec::new();
    for (st, n) in [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("b", 1)] {
        pos.push(publish(&bus, st, n).await);
    }
    // Not of the filter's type: never delivered.
    bus.publish(
        "b",
        ExpectedVersion::Any,
        vec![EventData::new("Other", b"{}".to_vec())],
    )
    .await
    .unwrap();
    bus.wait_for("borrowed", *pos.last().unwrap())
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        pairs(&[("a", 0), ("b", 0), ("b", 1)])
    );
    let a1: Vec<u32> = attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, n, _)| s == "a" && *n == 1)
        .map(|(_, _, t)| *t)
        .collect();
    assert_eq!(a1, [1, 2], "one retry, then parked");
    let dlq = bus.dead_letters("borrowed");
    let parked: Vec<(u64, ParkReason)> = dlq
        .list()
        .unwrap()
        .iter()
        .map(|l| (l.position, l.reason))
        .collect();
    assert_eq!(
        parked,
        [(pos[1], ParkReason::Failed), (pos[3], ParkReason::HeldBack)]
    );
    let stats = bus.stats("borrowed").unwrap();
    assert_eq!((stats.failures, stats.panics, stats.parked), (2, 1, 2));

    healed.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(dlq.redrive_all("ops").unwrap(), 2);
    until_empty(&dlq).await;
    assert_eq!(
        *seen.lock().unwrap(),
        pairs(&[("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2)])
    );
    bus.shutdown().await.unwrap();
}

/// Durable publishes from 8 tasks at once, each at its stream's exact expected version: every
/// one is stored once, in order, and handled. On a multi-threaded runtime the fsync is waited
/// for in place; on a current-thread runtime on a blocking thread.
async fn durable_publishes_from_many_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        evlog::StoreOptions::new()
            .durability(evlog::Durability::Always)
            .open(dir.path())
            .unwrap(),
    );
    let bus = EventBus::new(store.clone(), fast());
    let seen = Seen::default();
    recording_handler(&bus, &seen, &Poison::default());
    let tasks: Vec<_> = (0..8u64)
        .map(|w| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let stream = format!("w{w}");
                let mut last = 0;
                for n in 0..25u64 {
                    let expected = match n {
                        0 => ExpectedVersion::NoStream,
                        n => ExpectedVersion::Exact(n - 1),
                    };
                    let r = bus
                        .publish_event(&stream, expected, &Step { n })
                        .await
                        .unwrap();
                    assert_eq!(r.next_expected_version, n);
                    last = r.last_position;
                }
                last
            })
        })
        .collect();
    let mut last = 0;
    for t in tasks {
        last = last.max(t.await.unwrap());
    }
    bus.wait_for("h", last).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 200);
    for w in 0..8u64 {
        let stream = format!("w{w}");
        let mine: Vec<u64> = seen
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|p| p.1)
            .collect();
        assert_eq!(mine, (0..25).collect::<Vec<_>>(), "{stream}");
        assert_eq!(store.stream_version(&stream), Some(24));
    }
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_publishes_from_many_tasks_on_a_multi_threaded_runtime() {
    durable_publishes_from_many_tasks().await;
}

#[tokio::test(flavor = "current_thread")]
async fn durable_publishes_from_many_tasks_on_a_current_thread_runtime() {
    durable_publishes_from_many_tasks().await;
}
