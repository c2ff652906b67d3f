//! kill -9: a child process appends with `Durability::Always` (`append`, `append_async` and
//! `append_multi`) and reports every acknowledged append on stdout; the parent kills it with SIGKILL at a random moment (some children while
//! they open and recover the store, most while they append), then checks the directory: every
//! acknowledged event is there and byte-identical, positions and versions are dense, everything
//! an earlier check saw is still there, and verify finds no problem. Then the next child runs on
//! the same directory, recovering what the last one left. Half the children also compress their
//! sealed segments in the background (`StoreOptions::compress_sealed`), so kills land during
//! compressions too. Every child must end by the parent's SIGKILL, after it reported that it
//! opens the store: one that ends any other way (an exit of its own, a panic on any of its
//! threads, another signal), or never reports, fails the test with its stderr shown, so each
//! round is one real kill.
//!
//! The child is this test binary itself, run with `EVLOG_KILL9_CHILD_DIR` set: the test function
//! then plays the child and never returns.
//!
//! ```text
//! cargo test --release --test kill9 -- --nocapture          # 200 kills (the normal run)
//! EVLOG_KILL9_ROUNDS=10000 cargo test --release --test kill9 -- --nocapture
//! scripts/soak-kill9.sh 10000                                # the same, as a soak
//! ```
//!
//! `EVLOG_KILL9_SEED` replays a run (the seed is printed). `EVLOG_KILL9_DIR` puts the stores under
//! a chosen directory instead of the system temp dir.

mod kill9_common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evlog::{
    Direction, Durability, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent, Store,
    StoreOptions, Uuid,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Set in a child: the store directory it appends to.
const CHILD_DIR_ENV: &str = "EVLOG_KILL9_CHILD_DIR";
/// Set in a child: its random seed.
const CHILD_SEED_ENV: &str = "EVLOG_KILL9_CHILD_SEED";
/// Set in a child: its round number (it makes the event tags unique across children).
const CHILD_ROUND_ENV: &str = "EVLOG_KILL9_CHILD_ROUND";
/// How many children to kill (default [`DEFAULT_ROUNDS`]).
const ROUNDS_ENV: &str = "EVLOG_KILL9_ROUNDS";
/// Seed of the whole run (default: from the clock; printed).
const SEED_ENV: &str = "EVLOG_KILL9_SEED";
/// Directory to create the stores in (default: the system temp dir).
const DIR_ENV: &str = "EVLOG_KILL9_DIR";

/// Kills in the normal test run.
const DEFAULT_ROUNDS: u64 = 200;
/// A fresh store directory every this many rounds, so that a long soak's checks (which read
/// the whole store) do not grow without bound.
const ROUNDS_PER_STORE: u64 = 100;
/// Small segments, so that children roll often and are killed in the middle of rolls.
const SEGMENT_BYTES: u64 = 8192;
/// The streams children append to; each child thread owns the streams `i % threads == t`.
const STREAMS: [&str; 6] = [
    "order-1",
    "order-2",
    "account-7",
    "saga/ai-score",
    "oracle-feed",
    "audit-ü",
];
/// Event tags: `round * TAG_ROUND + thread * TAG_THREAD + counter`.
const TAG_ROUND: u64 = 1 << 32;
const TAG_THREAD: u64 = 1 << 28;
/// Set in the tags of the events of an `append_multi`: 4 events (2 streams, 2 each) whose tags
/// run from a multiple of 4, so the parent can tell whether a batch is there whole.
const TAG_MULTI: u64 = 1 << 27;

/// Name of the test function, which the child runs.
const TEST_NAME: &str = "kill9_every_acknowledged_append_survives";

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::Always)
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The event with `tag` in stream `stream` (an index into [`STREAMS`]). Everything about it is a
/// function of the tag, and the id holds the stream and the tag, so the parent can rebuild any
/// event it finds in the log, acknowledged or not, and compare it byte for byte.
fn event_for(tag: u64, stream: usize) -> EventData {
    let mut r = tag;
    let hi = ((stream as u64) << 56) | (splitmix(&mut r) >> 8);
    let id = Uuid::from_u64_pair(hi, tag);
    let len = match splitmix(&mut r) % 16 {
        0 => 2000 + splitmix(&mut r) % 4000, // big: some frames fill most of a segment
        1 => 0,
        _ => splitmix(&mut r) % 200,
    } as usize;
    let mut payload = Vec::with_capacity(len);
    while payload.len() < len {
        payload.extend_from_slice(&splitmix(&mut r).to_le_bytes());
    }
    payload.truncate(len);
    let mut e = EventData::new(format!("Type{}", tag % 5), payload).with_id(id);
    if splitmix(&mut r).is_multiple_of(4) {
        let mut m = Metadata::new()
            .with_correlation_id(Uuid::from_u64_pair(splitmix(&mut r), tag))
            .with("tag", tag.to_string());
        if tag.is_multiple_of(2) {
            m = m.with_causation_id(Uuid::from_u64_pair(tag, splitmix(&mut r)));
        }
        e = e.with_metadata(m);
    }
    if tag & TAG_MULTI != 0 && tag.is_multiple_of(2) {
        // Opaque metadata bytes: written only in frames of version 3, as append_multi's are.
        e.metadata.bytes = tag.to_le_bytes().to_vec();
    }
    e
}

/// The stream index and tag an event id holds.
fn tag_of(id: Uuid) -> (usize, u64) {
    let (hi, lo) = id.as_u64_pair();
    ((hi >> 56) as usize, lo)
}

// ---------------------------------------------------------------------------------------------
// The child.

/// Writes one whole line to stdout and flushes it. A line of less than `PIPE_BUF` bytes is
/// written to the pipe atomically, so a kill never leaves half a line.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Opens the store and appends until it is killed. Prints `@@S` before the open, `@@O` after
/// it, and `@@A stream first last next_version tag n` after each acknowledged append.
fn child_main(dir: &Path) -> ! {
    let seed: u64 = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    let round: u64 = std::env::var(CHILD_ROUND_ENV).unwrap().parse().unwrap();
    // A panic on any thread aborts the child (SIGABRT, not SIGKILL), which fails the test.
    kill9_common::abort_on_unexpected_panic(|_| false);
    let mut rng = StdRng::seed_from_u64(seed);
    let threads = rng.gen_range(1..=3usize);
    // Half the children also compress their sealed segments in the background, so that kills
    // land during compressions too.
    let compress = rng.gen_bool(0.5);
    report("@@S\n");
    let store = match opts().compress_sealed(compress).open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: open failed: {e}");
            std::process::exit(2);
        }
    };
    report("@@O\n");
    std::thread::scope(|scope| {
        for t in 0..threads {
            let store = &store;
            let seed = rng.r#gen::<u64>();
            scope.spawn(move || child_thread(store, round, t, threads, seed));
        }
    });
    eprintln!("child: every thread stopped before the kill");
    std::process::exit(3);
}

fn child_thread(store: &Store, round: u64, t: usize, threads: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mine: Vec<usize> = (0..STREAMS.len()).filter(|i| i % threads == t).collect();
    let mut counter = 0u64;
    let mut last: Option<(usize, Vec<EventData>, evlog::AppendResult)> = None;
    // Bounded so that a child the parent fails to kill ends by itself.
    for _ in 0..200_000 {
        if let Some((s, events, result)) = &last
            && threads == 1
            && rng.gen_ratio(1, 20)
        {
            // A re-send of the last append (same ids, same content): the original result,
            // nothing written. (Only with one thread: then the last append is the log's last
            // frame, always inside the idempotency window.)
            let again = store
                .append(STREAMS[*s], ExpectedVersion::Any, events)
                .unwrap_or_else(|e| panic!("child: re-send failed: {e}"));
            assert_eq!(
                again, *result,
                "child: a re-send must return the original result"
            );
            continue;
        }
        if mine.len() >= 2 && rng.gen_ratio(1, 6) {
            // Two of this thread's streams in one append_multi, 2 events each, every expected
            // version checked.
            let a = rng.gen_range(0..mine.len());
            let b = (a + rng.gen_range(1..mine.len())) % mine.len();
            counter = counter.next_multiple_of(4);
            let tag0 = round * TAG_ROUND + t as u64 * TAG_THREAD + TAG_MULTI + counter;
            counter += 4;
            let batch: Vec<(&str, ExpectedVersion, Vec<EventData>)> = [mine[a], mine[b]]
                .iter()
                .enumerate()
                .map(|(k, &s)| {
                    let expected = store
                        .stream_version(STREAMS[s])
                        .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    let tag = tag0 + 2 * k as u64;
                    (
                        STREAMS[s],
                        expected,
                        vec![event_for(tag, s), event_for(tag + 1, s)],
                    )
                })
                .collect();
            let rs = match store.append_multi(&batch) {
                Ok(rs) => rs,
                Err(e) => {
                    eprintln!("child: append_multi failed: {e}");
                    std::process::exit(4);
                }
            };
            let mut line = String::new();
            for (k, (&s, r)) in [mine[a], mine[b]].iter().zip(&rs).enumerate() {
                line.push_str(&format!(
                    "@@A {s} {} {} {} {} 2\n",
                    r.first_position,
                    r.last_position,
                    r.next_expected_version,
                    tag0 + 2 * k as u64
                ));
            }
            report(&line);
            last = None;
            continue;
        }
        let s = mine[rng.gen_range(0..mine.len())];
        let n = match rng.gen_range(0..100) {
            0..50 => 1,
            50..85 => rng.gen_range(2..=5),
            _ => rng.gen_range(6..=30),
        };
        let tag0 = round * TAG_ROUND + t as u64 * TAG_THREAD + counter;
        counter += n;
        let events: Vec<EventData> = (0..n).map(|k| event_for(tag0 + k, s)).collect();
        let current = store.stream_version(STREAMS[s]);
        let expected = match (rng.gen_range(0..10), current) {
            (0, _) => ExpectedVersion::Any,
            (1, Some(_)) => ExpectedVersion::StreamExists,
            (_, None) => ExpectedVersion::NoStream,
            (_, Some(v)) => ExpectedVersion::Exact(v),
        };
        // One in three through `append_async`: its fsync is led by the store's syncer thread.
        let appended = if rng.gen_ratio(1, 3) {
            store
                .append_async(STREAMS[s], expected, &events)
                .and_then(|durable| rt.block_on(durable))
        } else {
            store.append(STREAMS[s], expected, &events)
        };
        let r = match appended {
            Ok(r) => r,
            Err(e) => {
                eprintln!("child: append failed: {e}");
                std::process::exit(4);
            }
        };
        report(&format!(
            "@@A {s} {} {} {} {tag0} {n}\n",
            r.first_position, r.last_position, r.next_expected_version
        ));
        last = Some((s, events, r));
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// One acknowledged append, as the child reported it.
#[derive(Debug, Clone, Copy)]
struct Ack {
    stream: usize,
    first: u64,
    last: u64,
    next_version: u64,
    tag0: u64,
    n: u64,
}

fn parse_ack(line: &str) -> Ack {
    let f: Vec<u64> = line[2..]
        .split(' ')
        .map(|x| {
            x.parse()
                .unwrap_or_else(|_| panic!("bad ack line {line:?}"))
        })
        .collect();
    assert_eq!(f.len(), 6, "bad ack line {line:?}");
    Ack {
        stream: f[0] as usize,
        first: f[1],
        last: f[2],
        next_version: f[3],
        tag0: f[4],
        n: f[5],
    }
}

/// What the parent learned from one child.
struct ChildRun {
    acks: Vec<Ack>,
    /// The child finished opening the store before it was killed.
    opened: bool,
}

/// Runs one child on `dir` and kills it after `delay` from when it starts opening the store.
fn run_child(dir: &Path, round: u64, seed: u64, delay: Duration) -> ChildRun {
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEED_ENV, seed.to_string())
        .env(CHILD_ROUND_ENV, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let kill9_common::Reports {
        rx,
        reader,
        err_reader,
    } = kill9_common::read_reports(&mut child);
    let mut lines = Vec::new();
    // Wait until the child is about to open the store, then give it `delay`. (If its stdout
    // closes first, it ended by itself: the check below fails.)
    let mut timed_out = false;
    let started = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l == "S" => break Some(Instant::now()),
            Ok(l) => lines.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break None;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
        }
    };
    if let Some(at) = started {
        let deadline = at + delay;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    let _ = child.kill();
    let status = child.wait().expect("wait for the child");
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let stderr = err_reader.join().unwrap();
    assert!(
        !timed_out,
        "round {round}: the child did not report @@S within 60 s; its stderr:\n{stderr}"
    );
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: the child ended by itself ({status}) instead of being killed; \
         its stderr:\n{stderr}"
    );
    let mut run = ChildRun {
        acks: Vec::new(),
        opened: false,
    };
    for l in &lines {
        if l == "O" {
            run.opened = true;
        } else if l.starts_with("A ") {
            run.acks.push(parse_ack(l));
        }
    }
    run
}

/// Checks the store in `dir` after a kill, and returns every event it holds. `known` is what the
/// last check saw: it must still be there, unchanged, as a prefix of the log.
fn check_store(
    dir: &Path,
    round: u64,
    read_only: bool,
    known: &[RecordedEvent],
    acks: &[Ack],
) -> Vec<RecordedEvent> {
    let store = if read_only {
        opts().open_read_only(dir)
    } else {
        opts().open(dir)
    }
    .unwrap_or_else(|e| panic!("round {round}: open after the kill failed: {e}"));
    let all: Vec<RecordedEvent> = store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap_or_else(|e| panic!("round {round}: read_all failed: {e}"));

    // Dense positions and versions, and every event is one a child wrote, byte for byte.
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64, "round {round}: positions are dense");
        let want = versions.get(&*e.stream).map_or(0, |v| v + 1);
        assert_eq!(
            e.version, want,
            "round {round}: versions of {} are dense",
            e.stream
        );
        versions.insert(&e.stream, e.version);
        let (s, tag) = tag_of(e.id);
        assert!(
            s < STREAMS.len(),
            "round {round}: unknown event id {}",
            e.id
        );
        let want = event_for(tag, s);
        assert_eq!(&*e.stream, STREAMS[s], "round {round}: stream of tag {tag}");
        assert_eq!(*e.event_type, *want.event_type, "round {round}: tag {tag}");
        assert_eq!(
            e.payload, want.payload,
            "round {round}: payload of tag {tag}"
        );
        assert_eq!(e.metadata, want.metadata, "round {round}: tag {tag}");
    }
    // An append_multi is there whole or not at all: its 4 events in a row.
    for (i, e) in all.iter().enumerate() {
        let (_, tag) = tag_of(e.id);
        if tag & TAG_MULTI == 0 {
            continue;
        }
        let k = (tag % 4) as usize;
        for j in 0..4 {
            let other = i.checked_sub(k).and_then(|at| all.get(at + j));
            assert_eq!(
                other.map(|o| tag_of(o.id).1),
                Some(tag - k as u64 + j as u64),
                "round {round}: an append_multi is partly there (event {j} of the batch of the \
                 event at position {i})"
            );
        }
    }
    for s in STREAMS {
        assert_eq!(
            store.stream_version(s),
            versions.get(s).copied(),
            "round {round}: version of stream {s}"
        );
    }
    assert_eq!(
        store.head_position(),
        (all.len() as u64).checked_sub(1),
        "round {round}: head position"
    );

    // What the last check saw is still there: nothing the store once showed is lost.
    assert!(
        all.len() >= known.len(),
        "round {round}: the log shrank from {} to {} events",
        known.len(),
        all.len()
    );
    for (a, b) in known.iter().zip(&all) {
        assert_eq!(
            a, b,
            "round {round}: event at position {} changed",
            a.position
        );
    }

    // Every acknowledged append is there, where and as the child was told.
    for a in acks {
        assert_eq!(a.last - a.first + 1, a.n, "round {round}: ack {a:?}");
        for k in 0..a.n {
            let e = all.get((a.first + k) as usize).unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged event at position {} is missing ({} events); \
                     ack {a:?}",
                    a.first + k,
                    all.len()
                )
            });
            assert_eq!(
                tag_of(e.id),
                (a.stream, a.tag0 + k),
                "round {round}: ack {a:?}"
            );
            assert_eq!(
                e.version,
                a.next_version + 1 - a.n + k,
                "round {round}: ack {a:?}"
            );
        }
    }

    // Per-stream reads agree with the log, both ways.
    if round.is_multiple_of(5) {
        for s in STREAMS {
            let want: Vec<&RecordedEvent> = all.iter().filter(|e| &*e.stream == s).collect();
            let fwd: Vec<RecordedEvent> = store
                .read_stream(s, 0, Direction::Forward, usize::MAX)
                .collect::<evlog::Result<_>>()
                .unwrap();
            let mut back: Vec<RecordedEvent> = store
                .read_stream(s, u64::MAX, Direction::Backward, usize::MAX)
                .collect::<evlog::Result<_>>()
                .unwrap();
            back.reverse();
            assert!(
                fwd.iter().eq(want.iter().copied()),
                "round {round}: read_stream({s}) forward"
            );
            assert!(
                back.iter().eq(want.iter().copied()),
                "round {round}: read_stream({s}) backward"
            );
        }
    }

    let rep = store.verify().unwrap();
    assert!(
        rep.is_clean(),
        "round {round}: verify found problems: {:?}",
        rep.problems
    );
    let closed = store.close();
    assert!(closed.is_ok(), "round {round}: close: {closed:?}");
    all
}

#[test]
fn kill9_every_acknowledged_append_survives() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        child_main(Path::new(&dir));
    }
    let rounds: u64 = std::env::var(ROUNDS_ENV)
        .ok()
        .map(|v| v.parse().expect("EVLOG_KILL9_ROUNDS is a number"))
        .unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .map(|v| v.parse().expect("EVLOG_KILL9_SEED is a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("kill9: {rounds} rounds, {SEED_ENV}={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let root = match std::env::var_os(DIR_ENV) {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();

    let mut dir = PathBuf::new();
    let mut known: Vec<RecordedEvent> = Vec::new();
    let (mut kills, mut during_open, mut acked_appends, mut acked_events) =
        (0u64, 0u64, 0u64, 0u64);
    let mut max_events = 0usize;
    // Checks that found compressed segments (written by children that compress).
    let mut with_compressed = 0u64;
    for round in 0..rounds {
        if round % ROUNDS_PER_STORE == 0 {
            dir = root.path().join(format!("store-{round}"));
            known.clear();
        }
        // A quarter of the children are killed within the first 3 ms of opening the store
        // (while it recovers what the last child left); the rest while they append.
        let delay = if rng.gen_ratio(1, 4) {
            Duration::from_micros(rng.gen_range(0..3_000))
        } else {
            Duration::from_micros(rng.gen_range(3_000..80_000))
        };
        let run = run_child(&dir, round, rng.r#gen(), delay);
        kills += 1;
        if !run.opened {
            during_open += 1;
        }
        acked_appends += run.acks.len() as u64;
        acked_events += run.acks.iter().map(|a| a.n).sum::<u64>();
        // Every third check opens read-only, which changes nothing: the next child then opens
        // (and is perhaps killed while it recovers) exactly what the killed one left.
        let read_only = rng.gen_ratio(1, 3);
        known = check_store(&dir, round, read_only, &known, &run.acks);
        max_events = max_events.max(known.len());
        let zsegs = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "zseg"))
                    .count()
            })
            .unwrap_or(0);
        if zsegs > 0 {
            with_compressed += 1;
        }
        if rounds > DEFAULT_ROUNDS && (round + 1).is_multiple_of(500) {
            println!(
                "kill9: {} kills survived so far ({during_open} while opening)",
                round + 1
            );
        }
    }
    println!(
        "kill9: survived {kills} kills ({during_open} before the child's open returned); \
         {acked_appends} acknowledged appends ({acked_events} events) all present; \
         largest store {max_events} events; {with_compressed} checks found compressed segments"
    );
}

/// Found by the kill -9 harness when a child ran for a minute with 8 KiB segments: a sealed
/// segment's memory maps (the segment, mapped on first use, and its `.idx`) were kept for as
/// long as the store was open, so a process that touched more than about 25,000-32,000 sealed
/// segments reached Linux's default `vm.max_map_count` (65,530): the next map failed with
/// ENOMEM. Before commit 0920cfa (maps on first use) this failed the roll and poisoned the
/// store; after it, appending worked but reading the whole store failed. Fixed by the map cache
/// (`segment::map_cache_maps`): at most 8,192 maps are kept, the others are unmapped when no
/// reader holds them and mapped again on their next use.
#[test]
fn a_store_of_40000_segments_can_be_appended_to_and_read_whole() {
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let store = StoreOptions::new()
        .segment_bytes(4096)
        .durability(Durability::Never)
        .open(root.path())
        .unwrap();
    // One 3.5 KiB event fills a 4 KiB segment: every append seals one.
    let payload = vec![7u8; 3500];
    for i in 0..40_000u64 {
        if let Err(e) = store.append(
            "s",
            ExpectedVersion::Any,
            &[EventData::new("T", payload.clone())],
        ) {
            panic!("append {i} failed: {e}");
        }
    }
    store.close().unwrap();
    let store = opts().open(root.path()).unwrap();
    assert_eq!(store.head_position(), Some(39_999));
    // Reading every event touches every sealed segment and its index.
    let mut n = 0u64;
    for e in store.read_all(0, Direction::Forward, ReadFilter::all()) {
        if let Err(e) = e {
            panic!("read_all failed after {n} events: {e}");
        }
        n += 1;
    }
    assert_eq!(n, 40_000);
    let back = store
        .read_stream("s", u64::MAX, Direction::Backward, usize::MAX)
        .collect::<evlog::Result<Vec<_>>>()
        .unwrap();
    assert_eq!(back.len(), 40_000);
    store
        .append(
            "s",
            ExpectedVersion::Exact(39_999),
            &[EventData::new("T", payload)],
        )
        .unwrap();
}
