//! `rebuild`'s checkpoint covers only the batches its handler returned `Ok` for: a handler that
//! fails leaves the checkpoint at the end of the last batch it completed, so the subscription
//! resumed after it delivers the failed batch again (at least once) and skips nothing.

use std::ops::ControlFlow;
use std::time::Duration;

use evlog::subscription::checkpoint::checkpoint_stream;
use evlog::subscription::rebuild::{RebuildOptions, rebuild};
use evlog::subscription::{Subscription, SubscriptionOptions};
use evlog::{Direction, Durability, Error, EventData, ExpectedVersion, Store, StoreOptions};

fn open(dir: &std::path::Path) -> Store {
    StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(16 << 10)
        .open(dir)
        .unwrap()
}

/// A store holding `n` events (positions `0..n`) over three streams.
fn store_with(dir: &std::path::Path, n: u64) -> Store {
    let store = open(dir);
    for i in 0..n {
        store
            .append(
                &format!("feed-{}", i % 3),
                ExpectedVersion::Any,
                &[EventData::new("Price", b"{}".to_vec())],
            )
            .unwrap();
    }
    store
}

/// The positions the checkpoints of `name` stored, oldest first.
fn checkpoints(store: &Store, name: &str) -> Vec<u64> {
    store
        .read_stream(&checkpoint_stream(name), 0, Direction::Forward, 1_000)
        .map(|e| {
            let e = e.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            v["position"].as_u64().unwrap()
        })
        .collect()
}

/// Every position the named subscription `name` delivers when resumed now, up to `end`.
fn resume(store: &Store, name: &str, opts: &SubscriptionOptions, end: u64) -> Vec<u64> {
    let mut sub = Subscription::named(store, name, opts.clone()).unwrap();
    let mut seen = Vec::new();
    while sub.next_position() < end {
        let before = sub.next_position();
        sub.poll(64, Duration::ZERO, |e| {
            if e.position < end {
                seen.push(e.position);
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(sub.next_position() > before, "no progress at {before}");
    }
    seen
}

/// A rebuild whose handler fails on its `fail_at`-th call (from 1), recording what it was given.
fn failing_rebuild(
    store: &Store,
    name: &str,
    opts: &RebuildOptions,
    fail_at: usize,
) -> (Error, Vec<u64>) {
    let mut calls = 0;
    let mut handled = Vec::new();
    let err = rebuild(
        store,
        name,
        opts,
        |_| {},
        |batch| {
            calls += 1;
            if calls == fail_at {
                return Err(Error::InvalidArgument("read model unavailable".into()));
            }
            handled.extend(batch.iter().map(|e| e.position));
            Ok(())
        },
    )
    .unwrap_err();
    (err, handled)
}

#[test]
fn a_failed_first_batch_is_not_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 1_500);
    let opts = RebuildOptions::default();
    // The read model had handled everything before: the rebuild clears that checkpoint.
    let mut sub = Subscription::named(&store, "rm", opts.subscription.clone()).unwrap();
    sub.poll(2_000, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    sub.stop().unwrap();

    let (err, handled) = failing_rebuild(&store, "rm", &opts, 1);
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(handled.is_empty());
    // Nothing was handled: the checkpoint says so (not 1,000, the failed batch's end).
    assert_eq!(checkpoints(&store, "rm").last(), Some(&0));
    let sub = Subscription::named(&store, "rm", opts.subscription.clone()).unwrap();
    assert_eq!(sub.checkpoint_position(), Some(0));
    assert_eq!(sub.next_position(), 0);
    drop(sub);
    // Resumed: every event again, from the failed batch's first one.
    assert_eq!(
        resume(&store, "rm", &opts.subscription, 1_500),
        (0..1_500).collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_later_batch_resumes_at_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 100);
    let opts = RebuildOptions {
        subscription: SubscriptionOptions::default()
            .checkpoint_every(10, Duration::from_secs(3_600)),
        batch: 10,
        ..RebuildOptions::default()
    };
    // Batches 0..10, 10..20, 20..30, 30..40 handled; 40..50 fails.
    let (_, handled) = failing_rebuild(&store, "rm", &opts, 5);
    assert_eq!(handled, (0..40).collect::<Vec<_>>());
    // One checkpoint per handled batch (the policy: every 10 events), none for the failed one.
    assert_eq!(checkpoints(&store, "rm"), [10, 20, 30, 40]);
    let sub = Subscription::named(&store, "rm", opts.subscription.clone()).unwrap();
    assert_eq!(sub.checkpoint_position(), Some(40));
    drop(sub);
    assert_eq!(
        resume(&store, "rm", &opts.subscription, 100),
        (40..100).collect::<Vec<_>>()
    );
}

#[test]
fn a_failure_between_checkpoints_stores_the_handled_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 100);
    let opts = RebuildOptions {
        subscription: SubscriptionOptions::default()
            .checkpoint_every(25, Duration::from_secs(3_600)),
        batch: 10,
        ..RebuildOptions::default()
    };
    // The policy checkpoints after the third batch (30 events); the fifth fails: the
    // checkpoint then covers the fourth, handled, batch as well, and not the fifth.
    let (_, handled) = failing_rebuild(&store, "rm", &opts, 5);
    assert_eq!(handled, (0..40).collect::<Vec<_>>());
    assert_eq!(checkpoints(&store, "rm"), [30, 40]);
    assert_eq!(
        resume(&store, "rm", &opts.subscription, 100),
        (40..100).collect::<Vec<_>>()
    );
}

#[test]
fn a_complete_rebuild_checkpoints_as_the_policy_asks_and_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 100);
    let opts = RebuildOptions {
        subscription: SubscriptionOptions::default()
            .checkpoint_every(25, Duration::from_secs(3_600)),
        batch: 10,
        ..RebuildOptions::default()
    };
    let mut handled = Vec::new();
    let n = rebuild(
        &store,
        "rm",
        &opts,
        |_| {},
        |batch| {
            handled.extend(batch.iter().map(|e| e.position));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(n, 100);
    assert_eq!(handled, (0..100).collect::<Vec<_>>());
    // No more store writes than the policy asks: after 30, 60 and 90 events, and at the end.
    assert_eq!(checkpoints(&store, "rm"), [30, 60, 90, 100]);
}
