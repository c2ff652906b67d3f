//! Catch-up subscriptions: history then live appends with no gap and no duplicate, filters,
//! system streams, durable checkpoints (by count, by a test clock, on stop), resuming, bounded
//! polls, and exactly-once commits with `commit_with`.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evlog::subscription::checkpoint::checkpoint_stream;
use evlog::subscription::{Start, Subscription, SubscriptionOptions};
use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions,
};

fn ev(ty: &str) -> EventData {
    EventData::new(ty, b"{}".to_vec())
}

fn open(dir: &std::path::Path) -> Store {
    StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(16 << 10)
        .open(dir)
        .unwrap()
}

/// Every position `poll` hands out until `want` events were seen.
fn drain<S: AsRef<Store>>(sub: &mut Subscription<S>, want: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} events",
            seen.len()
        );
        sub.poll(7, Duration::from_millis(50), |e| {
            seen.push(e.position);
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    seen
}

#[test]
fn history_then_live_appends_arrive_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    for i in 0..500 {
        store
            .append(&format!("s-{}", i % 7), ExpectedVersion::Any, &[ev("A")])
            .unwrap();
    }
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..2_000 {
                store
                    .append(
                        &format!("s-{}", i % 5),
                        ExpectedVersion::Any,
                        &[ev("B"), ev("A")],
                    )
                    .unwrap();
                if i % 100 == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    let mut sub = Subscription::new(store.clone(), SubscriptionOptions::default()).unwrap();
    let seen = drain(&mut sub, 4_500);
    writer.join().unwrap();
    assert_eq!(seen, (0..4_500).collect::<Vec<u64>>());
    // Nothing more, and a poll that waits returns when the time is up.
    let p = sub
        .poll(10, Duration::from_millis(20), |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!((p.delivered, p.next_position), (0, 4_500));
}

#[test]
fn filters_and_starting_points() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..300u64 {
        let ty = ["A", "B", "C"][(i % 3) as usize];
        store
            .append(
                &format!("{}-{}", ["order", "user"][(i % 2) as usize], i % 4),
                ExpectedVersion::Any,
                &[ev(ty)],
            )
            .unwrap();
    }
    let all: Vec<_> = store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .map(|e| e.unwrap())
        .collect();
    let cases = [
        (ReadFilter::all().event_types(["B"]), Start::Beginning),
        (
            ReadFilter::all().stream_prefix("user"),
            Start::Position(101),
        ),
        (
            ReadFilter::all()
                .event_types(["A", "C"])
                .stream_prefix("order-2"),
            Start::Beginning,
        ),
        (
            ReadFilter::all(),
            Start::StreamVersion {
                stream: "order-0".into(),
                version: 10,
            },
        ),
    ];
    for (filter, start) in cases {
        let want: Vec<u64> = all
            .iter()
            .filter(|e| filter.matches(&e.stream, &e.event_type))
            .filter(|e| match &start {
                Start::Position(p) => e.position >= *p,
                Start::StreamVersion { stream, version } => {
                    &*e.stream == stream && e.version >= *version
                }
                _ => true,
            })
            .map(|e| e.position)
            .collect();
        let opts = SubscriptionOptions::default()
            .filter(filter.clone())
            .start(start.clone());
        let mut sub = Subscription::new(&store, opts).unwrap();
        let mut got = Vec::new();
        loop {
            let p = sub
                .poll(13, Duration::ZERO, |e| {
                    got.push(e.position);
                    ControlFlow::Continue(())
                })
                .unwrap();
            if p.delivered == 0 {
                break;
            }
        }
        assert_eq!(got, want, "{filter:?} from {start:?}");
    }
    // From the end: only what is appended afterwards.
    let mut sub =
        Subscription::new(&store, SubscriptionOptions::default().start(Start::End)).unwrap();
    assert_eq!(sub.poll_owned(10, Duration::ZERO).unwrap().len(), 0);
    store
        .append("new", ExpectedVersion::Any, &[ev("N")])
        .unwrap();
    let got = sub.poll_owned(10, Duration::from_millis(10)).unwrap();
    assert_eq!(got.iter().map(|e| e.position).collect::<Vec<_>>(), [300]);
}

#[test]
fn a_poll_hands_out_at_most_max_events_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for _ in 0..100 {
        store.append("s", ExpectedVersion::Any, &[ev("A")]).unwrap();
    }
    let mut sub = Subscription::new(&store, SubscriptionOptions::default()).unwrap();
    let p = sub
        .poll(10, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!((p.delivered, p.next_position, p.stopped), (10, 10, false));
    let p = sub
        .poll(10, Duration::ZERO, |e| {
            if e.position == 12 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!((p.delivered, p.next_position, p.stopped), (3, 13, true));
    assert_eq!(sub.poll_owned(1_000, Duration::ZERO).unwrap().len(), 87);
}

#[test]
fn system_streams_are_left_out_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append("a", ExpectedVersion::Any, &[ev("A")]).unwrap();
    store
        .append("$dlq-h", ExpectedVersion::Any, &[ev("Parked")])
        .unwrap();
    store.append("b", ExpectedVersion::Any, &[ev("A")]).unwrap();
    let mut sub = Subscription::new(&store, SubscriptionOptions::default()).unwrap();
    let got: Vec<u64> = sub
        .poll_owned(10, Duration::ZERO)
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(got, [0, 2]);
    let mut sub =
        Subscription::new(&store, SubscriptionOptions::default().include_system(true)).unwrap();
    assert_eq!(sub.poll_owned(10, Duration::ZERO).unwrap().len(), 3);
}

/// A clock the test moves by hand.
fn test_clock() -> (Arc<AtomicU64>, evlog::subscription::Clock) {
    let base = Instant::now();
    let ms = Arc::new(AtomicU64::new(0));
    let m = ms.clone();
    (
        ms,
        Arc::new(move || base + Duration::from_millis(m.load(Ordering::SeqCst))),
    )
}

#[test]
fn a_named_subscription_checkpoints_by_count_by_time_and_on_stop_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..50 {
        store
            .append(&format!("s-{}", i % 3), ExpectedVersion::Any, &[ev("A")])
            .unwrap();
    }
    let (ms, clock) = test_clock();
    let opts = SubscriptionOptions::default()
        .checkpoint_every(20, Duration::from_secs(5))
        .clock(clock);
    let mut sub = Subscription::named(&store, "proj", opts.clone()).unwrap();
    assert_eq!(sub.checkpoint_position(), None);
    // 15 events: neither 20 events nor 5 s yet.
    sub.poll(15, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(sub.checkpoint_position(), None);
    // 5 more: 20 events, a checkpoint at 20.
    sub.poll(5, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(sub.checkpoint_position(), Some(20));
    // 3 more and 4.9 s: none; at 5 s: one.
    ms.store(4_900, Ordering::SeqCst);
    sub.poll(3, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(sub.checkpoint_position(), Some(20));
    ms.store(5_000, Ordering::SeqCst);
    sub.poll(1, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(sub.checkpoint_position(), Some(24));
    // A drop does not write; the next run resumes at 24 and sees 24..50 again (at least once).
    sub.poll(10, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    drop(sub);
    let mut sub = Subscription::named(&store, "proj", opts.clone()).unwrap();
    assert_eq!(sub.next_position(), 24);
    let again: Vec<u64> = sub
        .poll_owned(100, Duration::ZERO)
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    // The checkpoint events themselves (positions 50 and 51) are system events, not delivered.
    assert_eq!(again, (24..50).collect::<Vec<u64>>());
    sub.stop().unwrap();
    // After stop, across a reopen of the store: nothing is delivered again.
    drop(store);
    let store = open(dir.path());
    let mut sub = Subscription::named(&store, "proj", opts).unwrap();
    assert_eq!(sub.poll_owned(100, Duration::ZERO).unwrap().len(), 0);
    store
        .append("s-0", ExpectedVersion::Any, &[ev("A")])
        .unwrap();
    assert_eq!(sub.poll_owned(100, Duration::ZERO).unwrap().len(), 1);
    // The checkpoint stream keeps only its recent events visible.
    let kept = store
        .read_stream(
            &checkpoint_stream("proj"),
            0,
            Direction::Forward,
            usize::MAX,
        )
        .count();
    assert!(kept <= 16, "{kept}");
}

#[test]
fn two_runners_of_one_name_cannot_both_move_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append("s", ExpectedVersion::Any, &[ev("A"), ev("A")])
        .unwrap();
    let opts = SubscriptionOptions::default();
    let mut a = Subscription::named(&store, "x", opts.clone()).unwrap();
    let mut b = Subscription::named(&store, "x", opts).unwrap();
    a.poll(1, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    b.poll(2, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    assert!(a.checkpoint().unwrap());
    assert!(matches!(
        b.checkpoint(),
        Err(Error::WrongExpectedVersion { .. })
    ));
}

#[test]
fn a_checkpoint_stream_with_foreign_events_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .append(
            &checkpoint_stream("y"),
            ExpectedVersion::Any,
            &[ev("Other")],
        )
        .unwrap();
    match Subscription::named(&store, "y", SubscriptionOptions::default()) {
        Err(e @ Error::BadCheckpoint { .. }) => assert!(e.to_string().contains("$checkpoint-y")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted a foreign checkpoint"),
    }
    assert!(matches!(
        Subscription::named(&store, "", SubscriptionOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn commit_with_stores_outputs_and_checkpoint_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..10 {
        store
            .append(&format!("in-{}", i % 2), ExpectedVersion::Any, &[ev("A")])
            .unwrap();
    }
    let opts = SubscriptionOptions::default().filter(ReadFilter::all().stream_prefix("in-"));
    let mut sub = Subscription::named(&store, "copier", opts.clone()).unwrap();
    for _ in 0..4 {
        let e = sub.poll_owned(1, Duration::ZERO).unwrap().remove(0);
        let out = format!("out-{}", e.stream);
        let expected = store
            .stream_version(&out)
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        sub.commit_with(e.position + 1, &[(out, expected, vec![ev("Copied")])])
            .unwrap();
    }
    assert_eq!(sub.checkpoint_position(), Some(4));
    // A failing output (a stale expected version) stores nothing, checkpoint included.
    let e = sub.poll_owned(1, Duration::ZERO).unwrap().remove(0);
    let bad = sub.commit_with(
        e.position + 1,
        &[("out-in-0", ExpectedVersion::NoStream, vec![ev("Copied")])],
    );
    assert!(matches!(bad, Err(Error::WrongExpectedVersion { .. })));
    drop(sub);
    let sub = Subscription::named(&store, "copier", opts.clone()).unwrap();
    assert_eq!(sub.next_position(), 4);
    let outputs = Mutex::new(0);
    store
        .replay(
            0,
            u64::MAX,
            &ReadFilter::all().stream_prefix("out-"),
            |_| {
                *outputs.lock().unwrap() += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(*outputs.lock().unwrap(), 4);
    // A checkpoint past the log's end is refused (it would skip what is appended later).
    let mut sub = Subscription::named(&store, "copier", opts.clone()).unwrap();
    let end = store.head_position().unwrap() + 1;
    assert!(matches!(
        sub.commit_with(end + 1, &[("o", ExpectedVersion::Any, vec![ev("X")])]),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(sub.checkpoint_position(), Some(4));
    // An unnamed subscription cannot commit.
    let mut plain = Subscription::new(&store, SubscriptionOptions::default()).unwrap();
    assert!(matches!(
        plain.commit_with(1, &[("o", ExpectedVersion::Any, vec![ev("X")])]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn rebuild_replays_from_zero_in_batches_into_a_fresh_checkpoint() {
    use evlog::subscription::rebuild::{Progress, RebuildOptions, rebuild};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..30u64 {
        store
            .append_at(
                &format!("feed-{}", i % 3),
                ExpectedVersion::Any,
                &[ev(["Price", "Audit"][(i % 2) as usize])],
                1_000 + i,
            )
            .unwrap();
    }
    // The read model had a checkpoint already: the rebuild starts over anyway.
    let opts = SubscriptionOptions::default().filter(ReadFilter::all().event_types(["Price"]));
    let mut sub = Subscription::named(&store, "prices", opts.clone()).unwrap();
    sub.poll(100, Duration::ZERO, |_| ControlFlow::Continue(()))
        .unwrap();
    sub.stop().unwrap();
    let end = store.head_position().unwrap() + 1;

    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut last = None;
    let n = rebuild(
        &store,
        "prices",
        &RebuildOptions {
            subscription: opts.clone(),
            batch: 4,
            ..RebuildOptions::default()
        },
        |p: Progress| last = Some(p),
        |batch| {
            sizes.push(batch.len());
            got.extend(batch.iter().map(|e| e.position));
            // Appended while the rebuild runs: after its end, left to the live subscription.
            store.append("feed-0", ExpectedVersion::Any, &[ev("Price")])?;
            Ok(())
        },
    )
    .unwrap();
    let want: Vec<u64> = (0..30).filter(|p| p % 2 == 0).collect();
    assert_eq!(got, want);
    assert_eq!(n, 15);
    assert!(sizes.iter().all(|s| *s <= 4), "{sizes:?}");
    let last = last.unwrap();
    assert_eq!(
        (last.events, last.next_position, last.end_position),
        (15, end, end)
    );
    // The live subscription goes on from the rebuild's end: the events appended meanwhile.
    let mut sub = Subscription::named(&store, "prices", opts.clone()).unwrap();
    assert_eq!(sub.next_position(), end);
    let later = sub.poll_owned(100, Duration::ZERO).unwrap();
    assert_eq!(later.len(), sizes.len());
    assert!(later.iter().all(|e| e.position >= end));

    // A time range: only what was appended between the two times.
    let mut got = Vec::new();
    rebuild(
        &store,
        "window",
        &RebuildOptions {
            since_us: Some(1_010),
            until_us: Some(1_013),
            ..RebuildOptions::default()
        },
        |_| {},
        |batch| {
            got.extend(batch.iter().map(|e| e.position));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(got, [10, 11, 12, 13]);
}
