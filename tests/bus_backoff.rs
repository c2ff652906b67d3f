//! The retry schedule on tokio's paused test clock: the delays between a failing handler's
//! deliveries are exactly `Backoff::delay` of the configured settings (exponential, jitter,
//! cap), and a "retry later" answer waits the delay the handler asked for. No real time passes.

#![cfg(feature = "bus")]

mod bus_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_common::store;
use evlog::bus::{Backoff, BusConfig, DomainEvent, EventBus, Outcome, ParkReason};
use evlog::{ExpectedVersion, Uuid};
use tokio::time::Instant;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Charge {
    cents: u64,
}

impl DomainEvent for Charge {
    const EVENT_TYPE: &'static str = "Charge";
}

/// Publishes one `Charge` with a known id to the stream `payment-CENTS`; returns its position.
async fn publish(bus: &EventBus, id: Uuid, cents: u64) -> u64 {
    let data = Charge { cents }.to_event_data().unwrap().with_id(id);
    bus.publish(
        &format!("payment-{cents}"),
        ExpectedVersion::Any,
        vec![data],
    )
    .await
    .unwrap()
    .last_position
}

#[tokio::test(start_paused = true)]
async fn retries_wait_the_exponential_jittered_capped_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let config = BusConfig::default()
        .max_retries(6)
        .retry_delay_ms(1_000)
        .max_retry_delay_ms(10_000);
    let backoff = config.backoff();
    let bus = EventBus::new(store(dir.path()), config);
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = attempts.clone();
    bus.subscribe("billing", move |_ctx, _e: Charge| {
        a.lock().unwrap().push(Instant::now());
        async { Err("card network down".into()) }
    })
    .unwrap();

    let id = Uuid::new_v4();
    let position = publish(&bus, id, 500).await;
    bus.wait_for("billing", position).await.unwrap();

    let at = attempts.lock().unwrap().clone();
    assert_eq!(at.len(), 7, "one delivery and six retries");
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    let want: Vec<Duration> = (1..=6)
        .map(|r| backoff.delay(r, Backoff::seed(&id)))
        .collect();
    assert_eq!(gaps, want);
    // The schedule's shape: each delay in the upper half of its doubling step, capped at 10 s.
    let steps: Vec<u64> = (1..=6)
        .map(|r| backoff.step(r).as_millis() as u64)
        .collect();
    assert_eq!(steps, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
    for (gap, r) in gaps.iter().zip(1..) {
        assert!(
            *gap >= backoff.step(r) / 2 && *gap <= backoff.step(r),
            "{gap:?}"
        );
    }

    let parked = bus.dead_letters("billing").list().unwrap();
    assert_eq!(
        (
            parked[0].reason,
            parked[0].attempts,
            parked[0].last_error.as_str()
        ),
        (ParkReason::Failed, 7, "card network down")
    );
    bus.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn two_failing_events_get_different_jitter_and_advance_moves_a_retry_due() {
    let dir = tempfile::tempdir().unwrap();
    let config = BusConfig::default().max_retries(1).retry_delay_ms(1_000);
    let backoff = config.backoff();
    let bus = EventBus::new(store(dir.path()), config);
    let attempts: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let a = attempts.clone();
    bus.subscribe("billing", move |_ctx, e: Charge| {
        a.lock().unwrap().push((e.cents, Instant::now()));
        async { Err("declined".into()) }
    })
    .unwrap();
    let (id1, id2) = (Uuid::new_v4(), Uuid::new_v4());
    publish(&bus, id1, 1).await;
    let last = publish(&bus, id2, 2).await;
    bus.wait_for("billing", last).await.unwrap();
    // Each event is attempted twice, its retry after its own delay; the second event's
    // attempts do not wait for the first's retry (they are of another stream).
    let at = attempts.lock().unwrap().clone();
    let of = |c: u64| -> Vec<Instant> {
        at.iter()
            .filter(|(cents, _)| *cents == c)
            .map(|(_, t)| *t)
            .collect()
    };
    let (one, two) = (of(1), of(2));
    assert_eq!((one.len(), two.len(), at.len()), (2, 2, 4));
    assert_eq!(one[0], two[0], "both first attempts before any retry");
    assert_eq!(one[1] - one[0], backoff.delay(1, Backoff::seed(&id1)));
    assert_eq!(two[1] - two[0], backoff.delay(1, Backoff::seed(&id2)));
    assert_ne!(one[1] - one[0], two[1] - two[0], "jitter differs");

    // A retry is due exactly when its delay has passed on the clock: advance to just before,
    // then to it.
    let id3 = Uuid::new_v4();
    let delay = backoff.delay(1, Backoff::seed(&id3));
    let p = publish(&bus, id3, 3).await;
    while attempts.lock().unwrap().len() < 5 {
        tokio::task::yield_now().await;
    }
    let first = attempts.lock().unwrap()[4].1;
    tokio::time::advance(delay - (Instant::now() - first) - Duration::from_millis(1)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(attempts.lock().unwrap().len(), 5, "not due yet");
    bus.wait_for("billing", p).await.unwrap();
    let at = attempts.lock().unwrap().clone();
    assert_eq!(at.len(), 6);
    assert_eq!(at[5].1 - at[4].1, delay);
    bus.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retry_later_waits_what_the_handler_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(store(dir.path()), BusConfig::default().max_retries(3));
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = attempts.clone();
    bus.subscribe("billing", move |ctx, _e: Charge| {
        a.lock().unwrap().push(Instant::now());
        let attempt = ctx.attempt();
        async move {
            Ok(match attempt {
                1 => Outcome::RetryLater(Duration::from_secs(30)),
                2 => Outcome::RetryLater(Duration::from_millis(250)),
                _ => Outcome::Handled,
            })
        }
    })
    .unwrap();
    let p = publish(&bus, Uuid::new_v4(), 9).await;
    bus.wait_for("billing", p).await.unwrap();
    let at = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [Duration::from_secs(30), Duration::from_millis(250)]);
    assert_eq!(bus.stats("billing").unwrap().handled, 1);
    bus.shutdown().await.unwrap();
}
