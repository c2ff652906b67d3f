//! Many threads on one store: optimistic-concurrency races, group commit, and readers running
//! alongside writers (and alongside segment rolls) that must only ever see whole appends.
//!
//! The assertions are on outcomes only (who won, which positions, which events), never timings.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use evlog::{
    AppendResult, Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter,
    RecordedEvent, Store, StoreOptions, Uuid,
};

const THREADS: usize = 8;
const ROUNDS: u64 = 200;
/// Events per append in the reader tests: a reader must see them all or none.
const BATCH: usize = 5;
const SMALL_SEGMENT_BYTES: u64 = 4096;

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count()
}

fn read_all(s: &Store, from: u64, direction: Direction) -> Vec<RecordedEvent> {
    s.read_all(from, direction, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .expect("read_all never fails alongside writers")
}

// ---------------------------------------------------------------------------------------------
// Optimistic concurrency
// ---------------------------------------------------------------------------------------------

fn race_one_stream(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        StoreOptions::new()
            .durability(durability)
            .open(dir.path())
            .unwrap(),
    );
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut wins = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait();
                    // Every thread saw the same version before this round: round - 1.
                    let expected = match round {
                        0 => ExpectedVersion::NoStream,
                        r => ExpectedVersion::Exact(r - 1),
                    };
                    let e = EventData::new("Won", format!("{t}:{round}").into_bytes());
                    match s.append("race", expected, &[e]) {
                        Ok(r) => wins.push((round, r)),
                        Err(Error::WrongExpectedVersion {
                            stream,
                            expected: got_expected,
                            actual,
                        }) => {
                            assert_eq!(stream, "race");
                            assert_eq!(got_expected, expected);
                            // The loser was beaten by exactly this round's winner.
                            assert_eq!(actual, Some(round), "thread {t} round {round}");
                        }
                        Err(e) => panic!("thread {t} round {round}: unexpected error {e:?}"),
                    }
                }
                (t, wins)
            })
        })
        .collect();
    let mut winner: BTreeMap<u64, (usize, AppendResult)> = BTreeMap::new();
    for h in handles {
        let (t, wins) = h.join().unwrap();
        for (round, r) in wins {
            if let Some((other, _)) = winner.insert(round, (t, r)) {
                panic!("round {round} has two winners: threads {other} and {t}");
            }
        }
    }
    assert_eq!(
        winner.keys().copied().collect::<Vec<_>>(),
        (0..ROUNDS).collect::<Vec<_>>(),
        "every round has exactly one winner"
    );
    for (round, (_, r)) in &winner {
        assert_eq!(
            *r,
            AppendResult {
                first_position: *round,
                last_position: *round,
                next_expected_version: *round,
            }
        );
    }
    assert_eq!(s.stream_version("race"), Some(ROUNDS - 1));
    assert_eq!(s.head_position(), Some(ROUNDS - 1));
    let events: Vec<_> = s
        .read_stream("race", 0, Direction::Forward, usize::MAX)
        .collect::<evlog::Result<_>>()
        .unwrap();
    assert_eq!(
        events.len() as u64,
        ROUNDS,
        "no version duplicated or skipped"
    );
    for (i, e) in events.iter().enumerate() {
        let round = i as u64;
        assert_eq!(e.version, round);
        assert_eq!(e.position, round);
        let (t, _) = winner[&round];
        assert_eq!(
            e.payload,
            format!("{t}:{round}").into_bytes(),
            "the winner's event"
        );
    }
    let s = Arc::into_inner(s).expect("threads are done");
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.stream_version("race"), Some(ROUNDS - 1));
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn racing_exact_appends_to_one_stream_have_one_winner_per_round() {
    race_one_stream(Durability::Always);
}

#[test]
fn racing_exact_appends_without_fsync_have_one_winner_per_round() {
    race_one_stream(Durability::Never);
}

// ---------------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------------

#[test]
fn parallel_appends_to_different_streams_get_dense_unique_positions() {
    const APPENDS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        StoreOptions::new()
            .durability(Durability::Always)
            .open(dir.path())
            .unwrap(),
    );
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let stream = format!("stream-{t}");
                let mut out = Vec::new();
                barrier.wait();
                let mut expected = ExpectedVersion::NoStream;
                for i in 0..APPENDS {
                    let events: Vec<_> = (0..1 + i % 3)
                        .map(|k| EventData::new("T", format!("{t}.{i}.{k}").into_bytes()))
                        .collect();
                    let r = s.append(&stream, expected, &events).expect("append");
                    expected = ExpectedVersion::Exact(r.next_expected_version);
                    out.push((r, events));
                }
                (stream, out)
            })
        })
        .collect();
    // position -> (stream, version, id)
    let mut placed: BTreeMap<u64, (String, u64, Uuid)> = BTreeMap::new();
    for h in handles {
        let (stream, out) = h.join().unwrap();
        let mut next_version = 0;
        for (r, events) in out {
            let n = events.len() as u64;
            assert_eq!(r.last_position - r.first_position + 1, n);
            assert_eq!(r.next_expected_version, next_version + n - 1);
            for (k, e) in events.iter().enumerate() {
                let p = r.first_position + k as u64;
                let prev = placed.insert(p, (stream.clone(), next_version + k as u64, e.id));
                assert!(prev.is_none(), "position {p} given twice");
            }
            next_version += n;
        }
    }
    let total = placed.len() as u64;
    assert_eq!(
        placed.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "positions are dense"
    );
    let check = |s: &Store| {
        assert_eq!(s.head_position(), Some(total - 1));
        let all = read_all(s, 0, Direction::Forward);
        assert_eq!(all.len() as u64, total);
        for e in &all {
            let (stream, version, id) = &placed[&e.position];
            assert_eq!(&*e.stream, stream.as_str());
            assert_eq!(e.version, *version);
            assert_eq!(e.id, *id);
        }
    };
    check(&s);
    let s = Arc::into_inner(s).expect("threads are done");
    s.close().unwrap();
    let s = Store::open(dir.path()).unwrap();
    check(&s);
    assert!(s.verify().unwrap().is_clean());
}

// ---------------------------------------------------------------------------------------------
// Readers alongside writers
// ---------------------------------------------------------------------------------------------

/// Checks a forward read from position `from`: dense positions from `from`, and every append
/// (batch) whole: its events at consecutive positions, in order, all `BATCH` of them.
fn check_forward(events: &[RecordedEvent], from: u64, what: &str) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.position,
            from + i as u64,
            "{what}: positions dense from {from}"
        );
    }
    check_batches(events, what);
}

fn batch_key(e: &RecordedEvent) -> (&str, usize) {
    let b = e.metadata.extra.get("batch").expect("batch id");
    let k = e.metadata.extra["k"].parse().expect("index in batch");
    (b, k)
}

/// Every batch seen is whole (positions ascending or descending as read).
fn check_batches(events: &[RecordedEvent], what: &str) {
    let mut seen: HashMap<&str, Vec<(usize, u64)>> = HashMap::new();
    for e in events {
        let (b, k) = batch_key(e);
        seen.entry(b).or_default().push((k, e.position));
    }
    for (b, mut ks) in seen {
        assert_eq!(
            ks.len(),
            BATCH,
            "{what}: batch {b} seen with {} events",
            ks.len()
        );
        ks.sort();
        for w in ks.windows(2) {
            assert_eq!(
                w[0].1 + 1,
                w[1].1,
                "{what}: batch {b} not at consecutive positions"
            );
        }
    }
}

struct Run {
    durability: Durability,
    segment_bytes: u64,
    writers: usize,
    appends: usize,
    payload_bytes: usize,
}

/// Writers append batches of `BATCH` to their own streams while readers read the whole log
/// forward and backward, from the middle, stream by stream, slowly, and by following the head.
fn readers_alongside_writers(run: Run) {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .durability(run.durability)
        .segment_bytes(run.segment_bytes);
    let s = Arc::new(opts.open(dir.path()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..run.writers)
        .map(|t| {
            let s = s.clone();
            let payload = vec![t as u8; run.payload_bytes];
            thread::spawn(move || {
                let stream = format!("w-{t}");
                for i in 0..run.appends {
                    let batch = format!("{t}.{i}");
                    let events: Vec<_> = (0..BATCH)
                        .map(|k| {
                            EventData::new(["A", "B"][k % 2], payload.clone()).with_metadata(
                                Metadata::new()
                                    .with("batch", batch.clone())
                                    .with("k", k.to_string()),
                            )
                        })
                        .collect();
                    s.append(&stream, ExpectedVersion::Any, &events)
                        .expect("append");
                }
            })
        })
        .collect();

    let mut readers = Vec::new();
    // Whole log, both directions, and from the middle.
    readers.push({
        let (s, done) = (s.clone(), done.clone());
        thread::spawn(move || {
            let mut passes = 0u64;
            let mut last_len = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let fwd = read_all(&s, 0, Direction::Forward);
                check_forward(&fwd, 0, "forward");
                assert!(fwd.len() >= last_len, "the log never shrinks");
                last_len = fwd.len();
                let back = read_all(&s, u64::MAX, Direction::Backward);
                check_batches(&back, "backward");
                let top = back.first().map_or(0, |e| e.position + 1);
                assert_eq!(back.len() as u64, top, "backward: dense down to 0");
                for (i, e) in back.iter().enumerate() {
                    assert_eq!(e.position, top - 1 - i as u64, "backward: dense");
                }
                let mid = (fwd.len() / 2 / BATCH * BATCH) as u64;
                check_forward(&read_all(&s, mid, Direction::Forward), mid, "from middle");
                passes += 1;
                if finished {
                    return (passes, fwd.len());
                }
            }
        })
    });
    // Stream by stream, and one slow iterator that lives across many appends (and rolls).
    readers.push({
        let (s, done) = (s.clone(), done.clone());
        let writers = run.writers;
        thread::spawn(move || {
            let mut passes = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                for t in 0..writers {
                    let stream = format!("w-{t}");
                    let evs: Vec<_> = s
                        .read_stream(&stream, 0, Direction::Forward, usize::MAX)
                        .collect::<evlog::Result<_>>()
                        .expect("read_stream never fails alongside writers");
                    assert_eq!(evs.len() % BATCH, 0, "{stream}: whole batches only");
                    for (i, e) in evs.iter().enumerate() {
                        assert_eq!(e.version, i as u64, "{stream}: versions dense");
                        assert_eq!(&*e.stream, stream.as_str());
                    }
                    check_batches(&evs, "stream");
                    let back: Vec<_> = s
                        .read_stream(&stream, u64::MAX, Direction::Backward, usize::MAX)
                        .collect::<evlog::Result<_>>()
                        .expect("read_stream never fails alongside writers");
                    assert_eq!(back.len() % BATCH, 0, "{stream} backward: whole batches");
                    check_batches(&back, "stream backward");
                }
                let mut slow = Vec::new();
                for (i, e) in s
                    .read_all(0, Direction::Forward, ReadFilter::all())
                    .enumerate()
                {
                    slow.push(e.expect("slow read"));
                    if i % 3 == 0 {
                        thread::yield_now();
                    }
                }
                check_forward(&slow, 0, "slow forward");
                passes += 1;
                if finished {
                    return (passes, slow.len());
                }
            }
        })
    });
    // A follower: waits for the head, reads what is new, sees every event once, in order.
    let follower = {
        let (s, done) = (s.clone(), done.clone());
        thread::spawn(move || {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut last: Option<u64> = None;
            loop {
                let finished = done.load(Ordering::Acquire);
                let head = s.wait_for_head_after(last, Duration::from_millis(20));
                if head != last {
                    let from = last.map_or(0, |p| p + 1);
                    let new = read_all(&s, from, Direction::Forward);
                    check_forward(&new, from, "follower");
                    if let Some(e) = new.last() {
                        last = Some(e.position);
                    }
                    assert!(last >= head, "read at least up to the head it was told");
                    seen.extend(new);
                } else if finished {
                    check_forward(&seen, 0, "follower total");
                    return seen.len();
                }
            }
        })
    };

    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let total = run.writers * run.appends * BATCH;
    for r in readers {
        let (passes, final_len) = r.join().unwrap();
        assert!(passes >= 1);
        assert_eq!(
            final_len, total,
            "a read after the writers finished sees everything"
        );
    }
    assert_eq!(
        follower.join().unwrap(),
        total,
        "the follower saw every event once"
    );

    assert_eq!(s.head_position(), Some(total as u64 - 1));
    if run.segment_bytes == SMALL_SEGMENT_BYTES {
        assert!(
            segment_files(dir.path()) > 10,
            "segments did not roll: {}",
            segment_files(dir.path())
        );
    }
    let before = read_all(&s, 0, Direction::Forward);
    let s = Arc::into_inner(s).expect("threads are done");
    assert!(s.verify().unwrap().is_clean());
    s.close().unwrap();
    let s = opts.open(dir.path()).unwrap();
    assert_eq!(read_all(&s, 0, Direction::Forward), before);
}

#[test]
fn readers_alongside_group_commit_writers_see_only_whole_batches() {
    readers_alongside_writers(Run {
        durability: Durability::Always,
        segment_bytes: 64 << 20,
        writers: 4,
        appends: 100,
        payload_bytes: 40,
    });
}

#[test]
fn readers_alongside_unsynced_writers_see_only_whole_batches() {
    readers_alongside_writers(Run {
        durability: Durability::Never,
        segment_bytes: 64 << 20,
        writers: 4,
        appends: 300,
        payload_bytes: 40,
    });
}

#[test]
fn readers_alongside_segment_rolls_see_only_whole_batches() {
    readers_alongside_writers(Run {
        durability: Durability::Always,
        segment_bytes: SMALL_SEGMENT_BYTES,
        writers: 4,
        appends: 60,
        payload_bytes: 60,
    });
}

#[test]
fn readers_alongside_unsynced_segment_rolls_see_only_whole_batches() {
    readers_alongside_writers(Run {
        durability: Durability::Never,
        segment_bytes: SMALL_SEGMENT_BYTES,
        writers: 4,
        appends: 150,
        payload_bytes: 60,
    });
}

#[test]
fn readers_alongside_interval_writers_see_only_whole_batches() {
    readers_alongside_writers(Run {
        durability: Durability::Interval(Duration::from_millis(2)),
        segment_bytes: SMALL_SEGMENT_BYTES,
        writers: 4,
        appends: 100,
        payload_bytes: 60,
    });
}

/// Read-only opens of the directory while a writer in this process appends and rolls segments:
/// every open succeeds and shows a prefix of whole batches.
#[test]
fn read_only_open_racing_a_segment_roll_does_not_report_a_missing_segment() {
    const APPENDS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(SMALL_SEGMENT_BYTES);
    let s = Arc::new(opts.open(dir.path()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        thread::spawn(move || {
            for i in 0..APPENDS {
                let events: Vec<_> = (0..BATCH)
                    .map(|k| {
                        EventData::new("T", vec![1u8; 60]).with_metadata(
                            Metadata::new()
                                .with("batch", i.to_string())
                                .with("k", k.to_string()),
                        )
                    })
                    .collect();
                s.append(&format!("s-{}", i % 3), ExpectedVersion::Any, &events)
                    .expect("append");
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut opens = 0;
    let mut failures = Vec::new();
    while !done.load(Ordering::Acquire) {
        opens += 1;
        match opts.open_read_only(dir.path()) {
            Ok(ro) => {
                let evs = read_all(&ro, 0, Direction::Forward);
                check_forward(&evs, 0, "read-only open");
                assert_eq!(ro.head_position(), evs.last().map(|e| e.position));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    writer.join().unwrap();
    assert!(segment_files(dir.path()) > 10, "segments did not roll");
    assert!(
        failures.is_empty(),
        "{} of {opens} read-only opens failed, first: {}",
        failures.len(),
        failures[0]
    );
}

/// When `append` returns, its caller reads its own events: the head covers them and a read of
/// the stream returns them (with group commit, where another thread's fsync may cover them).
fn append_is_visible_to_its_caller_when_it_returns(durability: Durability, segment_bytes: u64) {
    const APPENDS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        StoreOptions::new()
            .durability(durability)
            .segment_bytes(segment_bytes)
            .open(dir.path())
            .unwrap(),
    );
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, barrier) = (s.clone(), barrier.clone());
            thread::spawn(move || {
                let stream = format!("own-{t}");
                let mut unseen = Vec::new();
                barrier.wait();
                for i in 0..APPENDS {
                    let e = EventData::new("T", vec![t as u8; 40]);
                    let r = s
                        .append(&stream, ExpectedVersion::Any, std::slice::from_ref(&e))
                        .expect("append");
                    let head = s.head_position();
                    let mine: Vec<_> = s
                        .read_stream(&stream, r.next_expected_version, Direction::Forward, 1)
                        .collect::<evlog::Result<_>>()
                        .expect("read_stream");
                    if head < Some(r.last_position) || mine.first().map(|m| m.id) != Some(e.id) {
                        unseen.push((i, r.last_position, head));
                    }
                }
                unseen
            })
        })
        .collect();
    let mut unseen = Vec::new();
    for h in handles {
        unseen.extend(h.join().unwrap());
    }
    assert!(
        unseen.is_empty(),
        "{} of {} appends were not visible to their caller when append returned \
         (append index, its position, head then): {:?}",
        unseen.len(),
        THREADS * APPENDS,
        &unseen[..unseen.len().min(5)]
    );
}

#[test]
fn group_commit_append_is_visible_to_its_caller_when_it_returns() {
    append_is_visible_to_its_caller_when_it_returns(Durability::Always, 64 << 20);
}

#[test]
fn group_commit_append_is_visible_to_its_caller_across_segment_rolls() {
    append_is_visible_to_its_caller_when_it_returns(Durability::Always, SMALL_SEGMENT_BYTES);
}

#[test]
fn unsynced_append_is_visible_to_its_caller_when_it_returns() {
    append_is_visible_to_its_caller_when_it_returns(Durability::Never, SMALL_SEGMENT_BYTES);
}

/// A backward stream read spans several internal batches when a stream has more than a
/// thousand events. With durable appends the index holds an append's events before they are
/// visible (the head moves after the fsync), so the read's first batch can be all invisible
/// while the next, read a moment later, sees the lower part of the same append once its fsync
/// ended. The read must see one head throughout: whole appends only.
#[test]
fn backward_stream_reads_across_internal_batches_see_only_whole_appends() {
    const APPEND: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        StoreOptions::new()
            .durability(Durability::Always)
            .open(dir.path())
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        thread::spawn(move || {
            let mut appends = 0;
            while !done.load(Ordering::Acquire) {
                let events: Vec<_> = (0..APPEND)
                    .map(|_| EventData::new("A", vec![7u8; 16]))
                    .collect();
                s.append("s", ExpectedVersion::Any, &events).unwrap();
                appends += 1;
            }
            appends
        })
    };
    let mut reads = 0;
    while reads < 400 || s.head_position().unwrap_or(0) < 150 * APPEND as u64 {
        let back: Vec<_> = s
            .read_stream("s", u64::MAX, Direction::Backward, usize::MAX)
            .collect::<evlog::Result<_>>()
            .expect("read_stream never fails alongside a writer");
        assert_eq!(back.len() % APPEND, 0, "backward: whole appends only");
        for (i, e) in back.iter().enumerate() {
            assert_eq!(e.version, (back.len() - 1 - i) as u64, "backward: dense");
        }
        reads += 1;
    }
    done.store(true, Ordering::Release);
    writer.join().unwrap();
}
