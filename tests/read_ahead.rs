//! Forward reads read compressed segments ahead in other threads (`store::read_ahead`): the
//! bytes read ahead must be those of the segment the read gets to, even when compaction
//! replaced it meanwhile, and no thread may outlive its read.

use evlog::*;
use std::sync::Mutex;

/// The tests of this file count threads: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn event(i: u64) -> EventData {
    EventData::new(
        "T",
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat((i % 7) as usize)),
    )
}

/// A store of `n` events over 13 streams in segments of `segment_bytes`, every sealed one
/// compressed, closed: a store opened on it has no decompressed image at hand.
/// With `standard`, the events are the standard workload's (which zstd decompresses at about
/// the speed of a real store's).
fn compressed_store(dir: &std::path::Path, n: u64, segment_bytes: u64, standard: bool) {
    let s = StoreOptions::new()
        .segment_bytes(segment_bytes)
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    let mut w = evlog::workload::Workload::standard(7);
    for i in 0..n {
        let e = if standard { w.next_event().1 } else { event(i) };
        s.append(&format!("agg-{}", i % 13), ExpectedVersion::Any, &[e])
            .unwrap();
    }
    assert!(s.compress_sealed().unwrap().segments >= 3);
    s.close().unwrap();
}

#[cfg(target_os = "linux")]
fn read_ahead_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "evlog-readahead")
        .count()
}

#[test]
fn read_all_goes_on_across_a_compaction_of_the_segments_it_read_ahead() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    compressed_store(dir.path(), 6000, 128 << 10, false);
    let s = StoreOptions::new().open(dir.path()).unwrap();
    // Segments of ~1,000 frames: `read_all`'s first batch (256 frames) is decoded at once, but
    // not handed out.
    short_reads_read_nothing_ahead(&s);
    let mut it = s.read_all(0, Direction::Forward, ReadFilter::all());
    // Past the first 256 frames handed out: the segments after the first are read ahead.
    for want in 0..300 {
        assert_eq!(it.next().unwrap().unwrap().position, want);
    }
    // Compaction replaces those segments by new files with other frame offsets.
    s.delete_stream("agg-1", ExpectedVersion::Any).unwrap();
    let rep = s.compact().unwrap();
    assert!(rep.segments_rewritten >= 3, "{rep:?}");
    let mut next = 300;
    for e in it {
        let e = e.unwrap_or_else(|e| panic!("read_all failed after position {next}: {e}"));
        // The events of the first two batches (positions below 512) were read before the
        // deletion; after them the deleted stream is gone.
        assert!(&*e.stream != "agg-1" || e.position < 512, "{e:?}");
        while next < e.position {
            assert_eq!(next % 13, 1, "position {next} is missing");
            next += 1;
        }
        assert_eq!(e.position, next);
        next += 1;
    }
    assert_eq!(next, 6000);
}

#[cfg(target_os = "linux")]
#[test]
fn no_read_ahead_thread_outlives_its_read() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // Segments of 16 MiB: a thread decompresses one for milliseconds, so that one left
    // running after its read is dropped would most likely be counted below.
    let n = 200_000;
    compressed_store(dir.path(), n, 16 << 20, true);
    let s = StoreOptions::new().open(dir.path()).unwrap();
    // A read that has handed out 256 frames reads ahead; dropped, it waits for its threads.
    let started = threads_started_by(|| {
        let mut it = s.read_all(0, Direction::Forward, ReadFilter::all());
        for _ in 0..300 {
            it.next().unwrap().unwrap();
        }
        drop(it);
        assert_eq!(read_ahead_threads(), 0);
    });
    assert!(started > 0);
    // So does a replay that stops after 300 events (of one frame each), in a fresh handle (the
    // read above may have left images in memory, which need no thread).
    drop(s);
    let s = StoreOptions::new().open(dir.path()).unwrap();
    let started = threads_started_by(|| {
        let mut seen = 0;
        s.replay(0, u64::MAX, &ReadFilter::all(), |_| {
            seen += 1;
            if seen == 300 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(seen, 300);
        assert_eq!(read_ahead_threads(), 0);
    });
    assert!(started > 0);
    // And every event reads back in order, with the threads' help.
    let mut next = 0;
    for e in s.read_all(0, Direction::Forward, ReadFilter::all()) {
        assert_eq!(e.unwrap().position, next);
        next += 1;
    }
    assert_eq!(next, n);
    assert_eq!(read_ahead_threads(), 0);
}

/// A `read_all` of 10 events and a replay stopped at its first event start no thread.
fn short_reads_read_nothing_ahead(s: &Store) {
    let started = threads_started_by(|| {
        let few = s
            .read_all(0, Direction::Forward, ReadFilter::all())
            .take(10);
        assert_eq!(few.count(), 10);
        let mut seen = 0;
        s.replay(0, u64::MAX, &ReadFilter::all(), |_| {
            seen += 1;
            std::ops::ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    });
    assert_eq!(started, 0, "a read of a few events reads nothing ahead");
}

/// Runs `f` and returns how many read-ahead threads it started.
fn threads_started_by(f: impl FnOnce()) -> u64 {
    let before = evlog::segment::read_ahead_threads();
    f();
    evlog::segment::read_ahead_threads() - before
}

#[test]
fn reads_that_stop_early_read_nothing_ahead_and_long_ones_do_even_over_small_segments() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Frames of 100 events (~11 KiB) in segments of 1 MiB: ~90 frames per segment, fewer than
    // a batch of `read_all`; a read must still read ahead once it has handed out 256 frames.
    let dir = tempfile::tempdir().unwrap();
    {
        let s = StoreOptions::new()
            .segment_bytes(1 << 20)
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap();
        for f in 0..3000u64 {
            let batch: Vec<_> = (0..100).map(|i| event(f * 100 + i)).collect();
            s.append(&format!("agg-{}", f % 13), ExpectedVersion::Any, &batch)
                .unwrap();
        }
        s.seal_active().unwrap();
        assert!(s.compress_sealed().unwrap().segments >= 10);
        s.close().unwrap();
    }
    let s = StoreOptions::new().open(dir.path()).unwrap();
    short_reads_read_nothing_ahead(&s);
    let started = threads_started_by(|| {
        let mut next = 0;
        for e in s.read_all(0, Direction::Forward, ReadFilter::all()) {
            assert_eq!(e.unwrap().position, next);
            next += 1;
        }
        assert_eq!(next, 300_000);
    });
    assert!(started > 0, "read_all of small segments read nothing ahead");
    drop(s);
    let s = StoreOptions::new().open(dir.path()).unwrap();
    let started = threads_started_by(|| {
        let end = s
            .replay(0, u64::MAX, &ReadFilter::all(), |_| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(end.events, 300_000);
    });
    assert!(started > 0, "replay of small segments read nothing ahead");
}

#[test]
fn a_subscription_polling_in_small_batches_reads_ahead_across_its_polls() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let n = 6000;
    compressed_store(dir.path(), n, 128 << 10, false);
    let s = StoreOptions::new().open(dir.path()).unwrap();
    // Polls of 100 events (one frame each): no single poll hands out the 256 frames after
    // which a read reads ahead, so only a read-ahead kept from one poll to the next does.
    let started = threads_started_by(|| {
        let mut sub = evlog::subscription::Subscription::new(&s, Default::default()).unwrap();
        let mut next = 0;
        while next < n {
            let got = sub.poll_owned(100, std::time::Duration::ZERO).unwrap();
            assert!(!got.is_empty() && got.len() <= 100);
            for e in got {
                assert_eq!(e.position, next);
                next += 1;
            }
        }
        assert!(
            sub.poll_owned(100, std::time::Duration::ZERO)
                .unwrap()
                .is_empty()
        );
        drop(sub);
        assert_eq!(
            read_ahead_threads(),
            0,
            "a thread outlived its subscription"
        );
    });
    assert!(started > 0, "the subscription read nothing ahead");
}

/// A frame whose checksums are right but whose second record does not decode (a crafted or
/// foreign file, or a writer bug): `read_all` returns the error, and nothing after it, not
/// even the frame's first record.
#[test]
fn no_event_comes_out_of_read_all_after_its_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    {
        let s = StoreOptions::new()
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap();
        s.append("a", ExpectedVersion::Any, &[event(0), event(1)])
            .unwrap();
        s.append("a", ExpectedVersion::Any, &[event(2)]).unwrap();
        assert!(s.seal_active().unwrap());
        s.append("a", ExpectedVersion::Any, &[event(3)]).unwrap();
        s.close().unwrap();
    }
    let path = dir.path().join(format!("{:020}.seg", 0));
    let mut b = std::fs::read(&path).unwrap();
    let f = 64; // the segment header; the first frame follows
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let body_len = u32_at(&b, f + 8) as usize;
    let body = f + 32;
    let second = body + 4 + u32_at(&b, body) as usize;
    // The second record: length, version, timestamp, id, flags (0: no ids), stream length,
    // stream id. Its stream id's first byte becomes invalid UTF-8.
    assert_eq!(b[second + 4 + 8 + 8 + 16], 0, "flags");
    b[second + 39] = 0xff;
    // Checksums recomputed: body, header, and the header checksum's copy in the trailer.
    let crc = crc32fast::hash(&b[body..body + body_len]);
    b[f + 24..f + 28].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32fast::hash(&b[f..f + 28]);
    b[f + 28..f + 32].copy_from_slice(&hcrc.to_le_bytes());
    let end = f + 32 + body_len + 8;
    b[end - 4..end].copy_from_slice(&hcrc.to_le_bytes());
    std::fs::write(&path, &b).unwrap();
    let s = Store::open_read_only(dir.path()).unwrap();
    let got: Vec<_> = s
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(
            got[0],
            Err(Error::Corrupted {
                what: "stream id",
                ..
            })
        ),
        "{got:?}"
    );
}

/// What a test case does between the reads of one long-lived `read_all`.
#[derive(Debug, Clone)]
enum Step {
    /// Takes up to this many events from the read.
    Read(u16),
    /// Appends this many single-event frames.
    Append(u8),
    /// Deletes a stream (soft) and compacts: segments, possibly read ahead, are replaced.
    DeleteAndCompact(u8),
    /// Seals the active segment and compresses every sealed one.
    SealAndCompress,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u16..700).prop_map(Step::Read),
        2 => (1u8..60).prop_map(Step::Append),
        2 => (0u8..13).prop_map(Step::DeleteAndCompact),
        1 => Just(Step::SealAndCompress),
    ]
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// One forward `read_all` over compressed segments, interleaved with appends, deletions,
    /// compactions and compressions: whatever its read-ahead did, every event it hands out is
    /// the one at its position, in position order, and it skips only events that are hidden.
    #[test]
    fn a_long_read_all_hands_out_the_log_whatever_happens_meanwhile(
        events in 300u64..1500,
        segment_kib in 4u64..17,
        from in 0u64..200,
        steps in proptest::collection::vec(step(), 1..14),
    ) {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let s = StoreOptions::new()
            .segment_bytes(segment_kib << 10)
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap();
        // The model: each position's stream, version and payload; per stream, its next
        // version and the versions below which it is hidden.
        let mut log: Vec<(String, u64, Vec<u8>)> = Vec::new();
        let mut next_version = [0u64; 13];
        let mut hidden_below = [0u64; 13];
        fn append(s: &Store, log: &mut Vec<(String, u64, Vec<u8>)>, next: &mut [u64; 13], n: u64) {
            for _ in 0..n {
                let i = log.len() as u64;
                let k = ((i * 7 + i / 5) % 13) as usize;
                let stream = format!("agg-{k}");
                let e = event(i);
                s.append(&stream, ExpectedVersion::Any, std::slice::from_ref(&e))
                    .unwrap();
                log.push((stream, next[k], e.payload));
                next[k] += 1;
            }
        }
        append(&s, &mut log, &mut next_version, events);
        s.compress_sealed().unwrap();
        drop(s);
        // A fresh handle: no image at hand, so reading ahead starts threads.
        let s = StoreOptions::new().open(dir.path()).unwrap();
        let mut it = s.read_all(from, Direction::Forward, ReadFilter::all());
        let mut got: Vec<RecordedEvent> = Vec::new();
        for step in &steps {
            match step {
                Step::Read(n) => {
                    for _ in 0..*n {
                        match it.next() {
                            Some(e) => got.push(e.unwrap()),
                            None => break,
                        }
                    }
                }
                Step::Append(n) => append(&s, &mut log, &mut next_version, u64::from(*n)),
                Step::DeleteAndCompact(k) => {
                    let k = usize::from(*k);
                    s.delete_stream(&format!("agg-{k}"), ExpectedVersion::Any).unwrap();
                    hidden_below[k] = next_version[k];
                    s.compact().unwrap();
                }
                Step::SealAndCompress => {
                    s.seal_active().unwrap();
                    s.compress_sealed().unwrap();
                }
            }
        }
        for e in it {
            got.push(e.unwrap());
        }
        let k_of = |stream: &str| stream["agg-".len()..].parse::<usize>().unwrap();
        let mut last: Option<u64> = None;
        for e in &got {
            let (stream, version, payload) = &log[e.position as usize];
            prop_assert_eq!(&*e.stream, stream.as_str());
            prop_assert_eq!(e.version, *version);
            prop_assert_eq!(&e.payload, payload);
            // Skipped positions (and those before the first) must be hidden by now: an event,
            // once hidden, stays hidden, so one visible now was visible when the read passed.
            let skipped_from = last.map_or(from, |l| l + 1);
            prop_assert!(e.position >= skipped_from, "out of order at {}", e.position);
            for p in skipped_from..e.position {
                let (st, v, _) = &log[p as usize];
                prop_assert!(*v < hidden_below[k_of(st)], "position {} was skipped", p);
            }
            last = Some(e.position);
        }
        for p in last.map_or(from, |l| l + 1)..log.len() as u64 {
            let (st, v, _) = &log[p as usize];
            prop_assert!(*v < hidden_below[k_of(st)], "position {} is missing at the end", p);
        }
    }
}
