//! Catch-up subscriptions that start at a stream's version, and checkpoints committed with
//! outputs: only the asked stream's versions from the one asked are delivered, a stream prefix
//! the stream does not have is refused, and a checkpoint past what was delivered is refused
//! (it skipped the events in between). Each test failed before its fix.

use std::ops::ControlFlow;
use std::time::Duration;

use evlog::subscription::{Start, Subscription, SubscriptionOptions};
use evlog::{Durability, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions};

fn ev(ty: &str) -> EventData {
    EventData::new(ty, b"{}".to_vec())
}

fn open(dir: &std::path::Path) -> Store {
    StoreOptions::new()
        .durability(Durability::Never)
        .open(dir)
        .unwrap()
}

fn positions<S: AsRef<Store>>(sub: &mut Subscription<S>) -> Vec<(u64, String, u64)> {
    let mut seen = Vec::new();
    sub.poll(100, Duration::ZERO, |e| {
        seen.push((e.position, e.stream.to_string(), e.version));
        ControlFlow::Continue(())
    })
    .unwrap();
    seen
}

/// Start::StreamVersion { version } past the stream's current last version: the
/// subscription starts at the log's end and then delivers the stream's next events, whose
/// versions are still below `version`.
#[test]
fn a_stream_start_past_the_streams_end_delivers_only_versions_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("s", ExpectedVersion::Any, &[ev("A"), ev("A"), ev("A")])
        .unwrap(); // versions 0, 1, 2
    let opts = SubscriptionOptions::default().start(Start::StreamVersion {
        stream: "s".into(),
        version: 10,
    });
    let mut sub = Subscription::new(&store, opts).unwrap();
    store.append("s", ExpectedVersion::Any, &[ev("A")]).unwrap(); // version 3
    let seen = positions(&mut sub);
    assert!(
        seen.iter().all(|(_, _, v)| *v >= 10),
        "delivered versions below the requested start version 10: {seen:?}"
    );
}

/// Start::StreamVersion replaces the caller's stream_prefix filter instead of combining
/// with it: an event the caller's filter excludes is delivered.
#[test]
fn a_stream_start_outside_the_callers_stream_prefix_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("customer-1", ExpectedVersion::Any, &[ev("A")])
        .unwrap();
    let opts = SubscriptionOptions::default()
        .filter(ReadFilter::all().stream_prefix("order-"))
        .start(Start::StreamVersion {
            stream: "customer-1".into(),
            version: 0,
        });
    // Refused with a clear error instead of delivering what the filter excludes.
    let refused = Subscription::new(&store, opts);
    assert!(
        matches!(refused, Err(evlog::Error::InvalidArgument(_))),
        "{:?}",
        refused.err()
    );
}

/// commit_with accepts a checkpoint past what the subscription delivered (only the log's
/// end is checked), and moves the subscription past the undelivered events: they are
/// never delivered, in this run or after a restart.
#[test]
fn a_commit_past_the_delivered_events_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("s", ExpectedVersion::Any, &[ev("A"), ev("A"), ev("A")])
        .unwrap(); // positions 0, 1, 2
    let mut sub = Subscription::named(&store, "h", SubscriptionOptions::default()).unwrap();
    let mut seen = Vec::new();
    sub.poll(1, Duration::ZERO, |e| {
        seen.push(e.position);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, [0]);
    assert_eq!(sub.next_position(), 1);
    let none: &[(&str, ExpectedVersion, Vec<EventData>)] = &[];
    let r = sub.commit_with(3, none);
    assert!(
        r.is_err(),
        "commit_with(3) accepted although only position 0 was delivered (next_position 1); \
         checkpoint now {:?}, next_position {}",
        sub.checkpoint_position(),
        sub.next_position()
    );
}
