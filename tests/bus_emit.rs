//! Handlers that emit their output events with `HandlerContext::emit`: the outputs are stored
//! with the checkpoint, once per handled event (a failed attempt stores nothing, a stale
//! expected version fails the attempt and the retry reads again, a redrive stores them with its
//! record), and a restart delivers again only the events that were not done, not the other
//! streams' events handled while one waited for its retry. No timing is asserted: the tests wait
//! for outcomes. The same promise across kill -9 is checked by tests/bus_kill9.rs.

#![cfg(feature = "bus")]

mod bus_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_common::{Credited, credit, store, until_empty};
use evlog::bus::{BusConfig, DomainEvent, EventBus, HandlerError, Outcome};
use evlog::{Direction, ExpectedVersion, RecordedEvent, Store};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Step {
    n: u64,
}

impl DomainEvent for Step {
    const EVENT_TYPE: &'static str = "Step";
}

fn fast() -> BusConfig {
    BusConfig::default()
        .max_retries(3)
        .retry_delay_ms(1)
        .max_retry_delay_ms(2)
        .idle_poll_ms(5)
}

async fn publish(bus: &EventBus, stream: &str, n: u64) -> u64 {
    bus.publish_event(stream, ExpectedVersion::Any, &Step { n })
        .await
        .unwrap()
        .last_position
}

fn read(store: &Store, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, 0, Direction::Forward, usize::MAX)
        .collect::<evlog::Result<_>>()
        .unwrap()
}

/// The `n` of each `Credited` in `stream`, in order.
fn credited(store: &Store, stream: &str) -> Vec<u64> {
    read(store, stream)
        .iter()
        .map(|e| {
            assert_eq!(&*e.event_type, "Credited");
            serde_json::from_slice::<Credited>(&e.payload).unwrap().n
        })
        .collect()
}

/// Waits until the handler `h` has handled `n` events (for runs whose checkpoint cannot pass an
/// event waiting for a retry).
/// Appends `Step` events 0..n to stream "src" (before a handler starts: they come to it in
/// one batch).
fn append_steps(store: &Store, n: u64) {
    for n in 0..n {
        store
            .append(
                "src",
                ExpectedVersion::Any,
                &[Step { n }.to_event_data().unwrap()],
            )
            .unwrap();
    }
}

/// Subscribes handler "h", which emits each step to "totals" expecting the version it reads
/// there; returns its calls (step, attempt), in order.
fn totals_expecting_the_version_read(bus: &EventBus) -> Arc<Mutex<Vec<(u64, u32)>>> {
    let calls: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let seen = calls.clone();
    bus.subscribe("h", move |ctx, e: Step| {
        seen.lock().unwrap().push((e.n, ctx.attempt()));
        let store = ctx.bus().store().clone();
        async move {
            let expected = store
                .stream_version("totals")
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            ctx.emit_event("totals", expected, &Credited { n: e.n })?;
            Ok::<_, HandlerError>(Outcome::Handled)
        }
    })
    .unwrap();
    calls
}

async fn until_handled(bus: &EventBus, n: u64) {
    for _ in 0..20_000 {
        if bus.stats("h").unwrap().handled >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("handled {:?}", bus.stats("h"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitted_events_are_stored_once_each_with_their_causation() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(
        store(dir.path()),
        fast()
            .concurrency(3)
            .batch_events(8)
            .checkpoint_every_events(5),
    );
    bus.subscribe("h", |ctx, e: Step| async move {
        let out = format!("out-{}", ctx.event().stream);
        ctx.emit_event(&out, ExpectedVersion::Any, &Credited { n: e.n })?;
        Ok(Outcome::Handled)
    })
    .unwrap();
    let mut last = 0;
    for i in 0..30 {
        last = publish(&bus, ["a", "b", "c"][i % 3], (i / 3) as u64).await;
    }
    bus.wait_for("h", last).await.unwrap();
    let store = bus.store().clone();
    for s in ["a", "b", "c"] {
        assert_eq!(
            credited(&store, &format!("out-{s}")),
            (0..10).collect::<Vec<_>>()
        );
        let sources = read(&store, s);
        for (src, out) in sources.iter().zip(read(&store, &format!("out-{s}"))) {
            assert_eq!(out.metadata.causation_id, Some(src.id));
            assert_eq!(out.metadata.correlation_id, Some(src.id));
        }
    }
    bus.shutdown().await.unwrap();
    // Nothing is emitted again by a handler that starts over from the checkpoint.
    let bus = EventBus::new(store.clone(), fast());
    bus.subscribe("h", |ctx, e: Step| async move {
        ctx.emit_event("again", ExpectedVersion::Any, &Credited { n: e.n })?;
        Ok(Outcome::Handled)
    })
    .unwrap();
    bus.wait_for("h", last).await.unwrap();
    bus.shutdown().await.unwrap();
    assert!(read(&store, "again").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_stores_nothing_and_its_retry_emits_again() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().concurrency(2));
    bus.subscribe("h", |ctx, e: Step| async move {
        ctx.emit_event("out", ExpectedVersion::Any, &Credited { n: e.n })?;
        if ctx.attempt() == 1 {
            return Err("the first attempt fails after emitting".into());
        }
        Ok(Outcome::Handled)
    })
    .unwrap();
    let mut last = 0;
    for n in 0..12 {
        last = publish(&bus, "a", n).await;
    }
    bus.wait_for("h", last).await.unwrap();
    assert_eq!(credited(bus.store(), "out"), (0..12).collect::<Vec<_>>());
    assert_eq!(bus.stats("h").unwrap().failures, 12);
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expected_version_fails_the_attempt_and_the_retry_reads_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // Ten events before the handler starts: they come in one batch, and each handler call
    // reads the version of "totals" before the outputs of the calls before it are stored.
    append_steps(&store, 10);
    let bus = EventBus::new(store.clone(), fast().batch_events(64));
    let calls = totals_expecting_the_version_read(&bus);
    bus.wait_for("h", 9).await.unwrap();
    let attempts: HashMap<u64, u32> = calls.lock().unwrap().iter().copied().collect();
    // The first is stored; the second's version was stale: it is retried (reading the version
    // again), and the later events, handled in the same batch, are delivered again after it.
    assert_eq!(credited(&store, "totals"), (0..10).collect::<Vec<_>>());
    assert_eq!(attempts[&0], 1);
    assert_eq!(attempts[&1], 2, "{attempts:?}");
    let stats = bus.stats("h").unwrap();
    assert!(stats.failures >= 1, "{stats:?}");
    assert_eq!(bus.dead_letters("h").count().unwrap(), 0);
    bus.shutdown().await.unwrap();
}

/// A refusal caused only by the batch (the handler read a version the batch's earlier outputs,
/// stored after it, made stale) uses up no retry: with no retries at all, the event is still
/// delivered again, alone, and its outputs stored; nothing is parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_made_stale_by_the_batch_alone_uses_up_no_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    append_steps(&store, 2);
    let bus = EventBus::new(store.clone(), fast().max_retries(0).batch_events(64));
    // Nobody else writes "totals": only the batch can make the version read stale.
    let calls = totals_expecting_the_version_read(&bus);
    bus.wait_for("h", 1).await.unwrap();
    let parked = bus.dead_letters("h").list().unwrap();
    assert!(parked.is_empty(), "parked: {parked:?}");
    assert_eq!(credited(&store, "totals"), [0, 1]);
    // The second event's first delivery, in the batch, had its outputs refused; the second,
    // alone, stored them.
    assert_eq!(*calls.lock().unwrap(), [(0, 1), (1, 1), (1, 2)]);
    bus.shutdown().await.unwrap();
}

/// Two emits to one stream whose versions cannot follow (the first expects the last version
/// there is) refuse the outputs: the attempt fails, and the event is parked with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_whose_versions_overflow_are_refused_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().max_retries(0));
    bus.subscribe("h", |ctx, e: Step| async move {
        ctx.emit_event(
            "out",
            ExpectedVersion::Exact(u64::MAX),
            &Credited { n: e.n },
        )?;
        ctx.emit_event("out", ExpectedVersion::Exact(0), &Credited { n: e.n })?;
        Ok(Outcome::Handled)
    })
    .unwrap();
    let last = publish(&bus, "a", 0).await;
    bus.wait_for("h", last).await.unwrap();
    let parked = bus.dead_letters("h").list().unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].last_error.contains("expecting"), "{parked:?}");
    assert!(read(bus.store(), "out").is_empty());
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_cannot_be_stored_park_the_event_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().max_retries(1));
    bus.subscribe("h", |ctx, e: Step| async move {
        let to = if e.n == 1 { "$checkpoint-h" } else { "out" };
        ctx.emit_event(to, ExpectedVersion::Any, &Credited { n: e.n })?;
        Ok(Outcome::Handled)
    })
    .unwrap();
    let mut last = 0;
    for n in 0..3 {
        last = publish(&bus, "a", n).await;
    }
    bus.wait_for("h", last).await.unwrap();
    let parked = bus.dead_letters("h").list().unwrap();
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert!(
        parked[0].last_error.contains("system streams"),
        "{parked:?}"
    );
    assert_eq!(parked[1].version, 2, "held back behind it");
    assert_eq!(credited(bus.store(), "out"), [0]);
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_stores_the_outputs_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast().max_retries(1));
    let healed = Arc::new(Mutex::new(false));
    let h = healed.clone();
    bus.subscribe("h", move |ctx, e: Step| {
        let fails = e.n == 1 && !*h.lock().unwrap();
        async move {
            ctx.emit_event("out", ExpectedVersion::Any, &Credited { n: e.n })?;
            if fails {
                return Err("not yet".into());
            }
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
    let mut last = 0;
    for n in 0..4 {
        last = publish(&bus, "a", n).await;
    }
    bus.wait_for("h", last).await.unwrap();
    assert_eq!(credited(bus.store(), "out"), [0]);
    let dlq = bus.dead_letters("h");
    assert_eq!(dlq.count().unwrap(), 3);
    *healed.lock().unwrap() = true;
    dlq.redrive_all("test").unwrap();
    until_empty(&dlq).await;
    assert_eq!(credited(bus.store(), "out"), [0, 1, 2, 3]);
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_delivers_again_only_the_events_that_were_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let delivered: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let register = |bus: &EventBus, wait_on_a0: bool| {
        let delivered = delivered.clone();
        bus.subscribe("h", move |ctx, e: Step| {
            let stream = ctx.event().stream.to_string();
            delivered.lock().unwrap().push((stream.clone(), e.n));
            async move {
                if wait_on_a0 && stream == "a" && e.n == 0 {
                    // Long after the test ends: the event waits for its retry when the bus
                    // stops.
                    return Ok(Outcome::RetryLater(Duration::from_secs(3600)));
                }
                credit(&ctx, &stream, e.n)?;
                Ok(Outcome::Handled)
            }
        })
        .unwrap();
    };
    let bus = EventBus::new(store.clone(), fast().concurrency(2).batch_events(4));
    register(&bus, true);
    for n in 0..3 {
        publish(&bus, "a", n).await;
    }
    let mut last = 0;
    for n in 0..20 {
        last = publish(&bus, "b", n).await;
    }
    // Every b event is handled while a-0 (and a-1, a-2 behind it) wait.
    until_handled(&bus, 20).await;
    bus.shutdown().await.unwrap();
    assert_eq!(credited(&store, "out-b"), (0..20).collect::<Vec<_>>());
    assert!(read(&store, "out-a").is_empty());

    let bus = EventBus::new(store.clone(), fast().concurrency(2).batch_events(4));
    register(&bus, false);
    bus.wait_for("h", last).await.unwrap();
    bus.shutdown().await.unwrap();
    let delivered = delivered.lock().unwrap().clone();
    let count = |s: &str, n: u64| delivered.iter().filter(|d| **d == (s.into(), n)).count();
    for n in 0..20 {
        assert_eq!(count("b", n), 1, "b {n} delivered once: {delivered:?}");
    }
    assert_eq!(count("a", 0), 2, "{delivered:?}");
    assert_eq!(credited(&store, "out-a"), [0, 1, 2]);
    assert_eq!(credited(&store, "out-b"), (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_to_a_deleted_stream_fails_the_attempt_and_the_handler_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .append(
            "gone",
            ExpectedVersion::NoStream,
            &[Credited { n: 0 }.to_event_data().unwrap()],
        )
        .unwrap();
    store
        .tombstone_stream("gone", ExpectedVersion::Any)
        .unwrap();
    let bus = EventBus::new(store.clone(), fast().max_retries(1));
    bus.subscribe("h", |ctx, e: Step| async move {
        let to = if &*ctx.event().stream == "a" && e.n == 0 {
            "gone".to_owned()
        } else {
            format!("out-{}", ctx.event().stream)
        };
        ctx.emit_event(&to, ExpectedVersion::Any, &Credited { n: e.n })?;
        Ok(Outcome::Handled)
    })
    .unwrap();
    publish(&bus, "a", 0).await;
    publish(&bus, "a", 1).await;
    let last = publish(&bus, "b", 0).await;
    bus.wait_for("h", last).await.unwrap();
    let parked = bus.dead_letters("h").list().unwrap();
    assert_eq!(parked.len(), 2, "a-0, and a-1 behind it: {parked:?}");
    assert!(parked[0].last_error.contains("deleted"), "{parked:?}");
    assert_eq!(credited(&store, "out-b"), [0]);
    let stats = bus.stats("h").unwrap();
    // a-0's three deliveries failed when their outputs were refused, none counted as handled:
    // the first, in a batch, used up no retry (the batch's other outputs could have made its
    // version stale); then the first attempt and its one retry.
    assert_eq!((stats.handled, stats.failures), (1, 3), "{stats:?}");
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_the_handlers_checkpoint_stream_by_another_stops_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), fast());
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    bus.subscribe("h", move |ctx, e: Step| {
        *c.lock().unwrap() += 1;
        async move {
            credit(&ctx, &ctx.event().stream, e.n)?;
            Ok(Outcome::Handled)
        }
    })
    .unwrap();
    let first = publish(&bus, "a", 0).await;
    bus.wait_for("h", first).await.unwrap();
    // Another writer of the checkpoint stream (a second bus running the same handler name):
    // not a refusal of the handler's outputs, to retry, but an error that stops the handler.
    bus.store()
        .append(
            "$checkpoint-h",
            ExpectedVersion::Any,
            &[evlog::EventData::new(
                "CheckpointStored",
                br#"{"position":0}"#.to_vec(),
            )],
        )
        .unwrap();
    let second = publish(&bus, "a", 1).await;
    // The handler stops before it is done with a-1.
    bus.wait_for("h", second).await.unwrap_err();
    let err = bus.shutdown().await.unwrap_err();
    assert!(err.to_string().contains("$checkpoint-h"), "{err}");
    assert_eq!(*calls.lock().unwrap(), 2, "a-1 was not delivered again");
    assert_eq!(credited(bus.store(), "out-a"), [0]);
}
