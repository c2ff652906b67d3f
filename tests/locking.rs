//! The write lock: one writer per directory, in this process and across processes; read-only
//! opens take no lock and see a consistent prefix while another process appends.
//!
//! The cross-process tests run this test binary again as a child: the child runs only the
//! `child_process_entry` test, which does nothing unless `CHILD_DIR_ENV` is set. The child
//! holds the store until its stdin is closed, so the parent decides when it lets go.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent,
    Store, StoreOptions,
};

const CHILD_DIR_ENV: &str = "EVLOG_LOCKING_TEST_CHILD_DIR";
const CHILD_MODE_ENV: &str = "EVLOG_LOCKING_TEST_CHILD_MODE";
const CHILD_SEGMENT_ENV: &str = "EVLOG_LOCKING_TEST_CHILD_SEGMENT_BYTES";
const CHILD_DURABILITY_ENV: &str = "EVLOG_LOCKING_TEST_CHILD_DURABILITY";
const READY: &str = "EVLOG-CHILD-READY";
const RESULT: &str = "EVLOG-CHILD-RESULT";
/// Events per append of the appending child: a reader must see all of them or none.
const BATCH: usize = 5;
const STREAMS: usize = 3;
/// Batches the appending child writes at full speed before it slows down.
const CHILD_FAST_BATCHES: usize = 2000;
/// Upper bound on waiting for the child: a guard against hanging, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------------------------

fn child_batch(i: usize) -> (String, Vec<EventData>) {
    let stream = format!("p-{}", i % STREAMS);
    let events = (0..BATCH)
        .map(|k| {
            EventData::new("Child", vec![(i % 251) as u8; 50 + i % 40]).with_metadata(
                Metadata::new()
                    .with("batch", i.to_string())
                    .with("k", k.to_string()),
            )
        })
        .collect();
    (stream, events)
}

/// Runs only in a child process started by this file's tests; does nothing otherwise.
///
/// Modes: `hold` opens the store, appends one batch and holds it until stdin closes; `append`
/// appends batches until stdin closes; `try_open` reports what `Store::open` returned.
#[test]
fn child_process_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE_ENV).expect("child mode");
    let segment_bytes: u64 = std::env::var(CHILD_SEGMENT_ENV)
        .ok()
        .map_or(64 << 20, |v| v.parse().expect("segment bytes"));
    let durability = match std::env::var(CHILD_DURABILITY_ENV).as_deref() {
        Ok("never") => Durability::Never,
        _ => Durability::Always,
    };
    let opts = StoreOptions::new()
        .segment_bytes(segment_bytes)
        .durability(durability);
    match mode.as_str() {
        "try_open" => {
            let what = match opts.open(&dir) {
                Ok(_) => "opened".to_string(),
                Err(Error::Locked { .. }) => "locked".to_string(),
                Err(e) => format!("error {e}"),
            };
            println!("{RESULT} {what}");
        }
        "hold" => {
            let s = opts.open(&dir).expect("child open");
            let (stream, events) = child_batch(0);
            s.append(&stream, ExpectedVersion::Any, &events)
                .expect("child append");
            println!("{READY}");
            let mut rest = Vec::new();
            std::io::stdin().read_to_end(&mut rest).expect("stdin");
            s.close().expect("child close");
            println!("{RESULT} closed");
        }
        "append" => {
            let s = opts.open(&dir).expect("child open");
            let stop = Arc::new(AtomicBool::new(false));
            {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rest = Vec::new();
                    let _ = std::io::stdin().read_to_end(&mut rest);
                    stop.store(true, Ordering::Release);
                });
            }
            let mut i = s.head_position().map_or(0, |h| (h as usize + 1) / BATCH);
            loop {
                let (stream, events) = child_batch(i);
                s.append(&stream, ExpectedVersion::Any, &events)
                    .expect("child append");
                i += 1;
                if i == 1 {
                    println!("{READY}");
                }
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if i >= CHILD_FAST_BATCHES {
                    // Keep appending, slowly: bounds the log if the parent is slow or stuck.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            s.close().expect("child close");
            println!("{RESULT} {i}");
        }
        other => panic!("unknown child mode {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The parent's handle on a child
// ---------------------------------------------------------------------------------------------

/// A child process running `child_process_entry`. Dropping it kills the child (by its id) if it
/// is still running, so a failing test leaves nothing behind.
struct ChildStore {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildStore {
    fn spawn(dir: &Path, mode: &str, env: &[(&str, &str)]) -> ChildStore {
        let exe = std::env::current_exe().expect("current exe");
        let mut cmd = Command::new(exe);
        cmd.args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        ChildStore {
            child,
            stdin,
            stdout,
        }
    }

    /// Reads the child's stdout up to the line starting with `marker`; returns the rest of it.
    fn wait_for(&mut self, marker: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child exited before printing {marker:?}");
            // libtest may print "test child_process_entry ... " on the same line first.
            if let Some(at) = line.find(marker) {
                return line[at + marker.len()..].trim().to_string();
            }
        }
    }

    /// Closes the child's stdin (it lets go of the store), reads its result and waits for it.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let result = self.wait_for(RESULT);
        let status = self.child.wait().expect("wait for child");
        assert!(status.success(), "child failed: {status}");
        result
    }

    /// Kills the child (SIGKILL) and waits for it.
    fn kill(mut self) {
        self.child.kill().expect("kill child");
        let _ = self.child.wait();
    }
}

impl Drop for ChildStore {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ev(payload: &[u8]) -> EventData {
    EventData::new("T", payload.to_vec())
}

fn read_all(s: &Store) -> Vec<RecordedEvent> {
    s.read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .expect("read_all")
}

// ---------------------------------------------------------------------------------------------
// In one process
// ---------------------------------------------------------------------------------------------

#[test]
fn second_open_in_same_process_is_locked_until_first_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let first = Store::open(&path).unwrap();
    first
        .append("a", ExpectedVersion::Any, &[ev(b"1")])
        .unwrap();

    match Store::open(&path) {
        Err(Error::Locked { dir }) => assert_eq!(dir, path),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Other options, and another spelling of the same directory, are the same store.
    assert!(matches!(
        StoreOptions::new()
            .segment_bytes(4096)
            .durability(Durability::Never)
            .open(&path),
        Err(Error::Locked { .. })
    ));
    let other_spelling: PathBuf = path.join(".");
    assert!(matches!(
        Store::open(&other_spelling),
        Err(Error::Locked { .. })
    ));
    // The refused open changed nothing: the first store goes on working.
    first
        .append("a", ExpectedVersion::Exact(0), &[ev(b"2")])
        .unwrap();
    assert_eq!(first.head_position(), Some(1));
    // A read-only open takes no lock.
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.head_position(), Some(1));
    assert!(matches!(
        ro.append("a", ExpectedVersion::Any, &[ev(b"x")]),
        Err(Error::ReadOnly)
    ));

    first.close().unwrap();
    let second = Store::open(&path).unwrap();
    assert_eq!(second.head_position(), Some(1));
    assert!(matches!(Store::open(&path), Err(Error::Locked { .. })));
    second
        .append("a", ExpectedVersion::Exact(1), &[ev(b"3")])
        .unwrap();
    drop(second); // dropping releases the lock too

    let third = Store::open(&path).unwrap();
    assert_eq!(third.stream_version("a"), Some(2));
    // The read-only store opened earlier still sees its prefix.
    assert_eq!(ro.head_position(), Some(1));
    assert_eq!(read_all(&ro).len(), 2);
    third.close().unwrap();
}

#[test]
fn stores_in_different_directories_do_not_lock_each_other() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = Store::open(a.path()).unwrap();
    let sb = Store::open(b.path()).unwrap();
    sa.append("x", ExpectedVersion::Any, &[ev(b"a")]).unwrap();
    sb.append("x", ExpectedVersion::Any, &[ev(b"b")]).unwrap();
    assert_eq!(read_all(&sa)[0].payload, b"a");
    assert_eq!(read_all(&sb)[0].payload, b"b");
}

// ---------------------------------------------------------------------------------------------
// Across processes
// ---------------------------------------------------------------------------------------------

#[test]
fn second_writer_process_gets_locked_while_child_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ChildStore::spawn(dir.path(), "hold", &[]);
    child.wait_for(READY);

    match Store::open(dir.path()) {
        Err(Error::Locked { dir: d }) => assert_eq!(d, dir.path()),
        other => panic!("expected Locked while the child holds the store, got {other:?}"),
    }
    // Read-only works meanwhile and sees the child's batch.
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.head_position(), Some(BATCH as u64 - 1));
    // Still locked on a second try: the refused open did not disturb the lock.
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));

    assert_eq!(child.finish(), "closed");
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.head_position(), Some(BATCH as u64 - 1));
    s.append(
        "p-0",
        ExpectedVersion::Exact(BATCH as u64 - 1),
        &[ev(b"parent")],
    )
    .unwrap();
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn writer_process_gets_locked_while_this_process_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let child = ChildStore::spawn(dir.path(), "try_open", &[]);
    assert_eq!(child.finish(), "locked");
    s.close().unwrap();
    let child = ChildStore::spawn(dir.path(), "try_open", &[]);
    assert_eq!(child.finish(), "opened");
}

#[test]
fn killed_writer_process_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ChildStore::spawn(dir.path(), "hold", &[]);
    child.wait_for(READY);
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    child.kill();
    // The OS dropped the dead process's lock; the lock file left behind does not matter.
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.head_position(), Some(BATCH as u64 - 1));
}

/// Checks one read-only view: positions dense from 0 up to its head, every batch whole, stream
/// versions dense and matching `stream_version`, backward reads the mirror of forward ones.
fn check_read_only_view(ro: &Store) -> Vec<RecordedEvent> {
    let all = read_all(ro);
    assert_eq!(ro.head_position(), all.last().map(|e| e.position));
    let mut batches: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64, "positions dense from 0");
        let b = e.metadata.extra["batch"].to_owned();
        let k: usize = e.metadata.extra["k"].parse().unwrap();
        batches.entry(b).or_default().push((k, e.position));
    }
    assert_eq!(all.len() % BATCH, 0, "whole batches only");
    for (b, mut ks) in batches {
        ks.sort();
        assert_eq!(ks.len(), BATCH, "batch {b} is whole");
        for (j, (k, p)) in ks.iter().enumerate() {
            assert_eq!(*k, j, "batch {b} in order");
            assert_eq!(*p, ks[0].1 + j as u64, "batch {b} at consecutive positions");
        }
    }
    let mut back = ro
        .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
        .collect::<evlog::Result<Vec<_>>>()
        .expect("read_all backward");
    back.reverse();
    assert_eq!(back, all, "backward read mirrors the forward one");
    let mut per_stream = 0;
    for t in 0..STREAMS {
        let stream = format!("p-{t}");
        let evs: Vec<_> = ro
            .read_stream(&stream, 0, Direction::Forward, usize::MAX)
            .collect::<evlog::Result<_>>()
            .expect("read_stream");
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e.version, i as u64, "{stream}: versions dense");
        }
        assert_eq!(
            ro.stream_version(&stream),
            (evs.len() as u64).checked_sub(1),
            "{stream}: stream_version matches its events"
        );
        per_stream += evs.len();
    }
    assert_eq!(per_stream, all.len());
    assert!(matches!(
        ro.append("p-0", ExpectedVersion::Any, &[ev(b"ro")]),
        Err(Error::ReadOnly)
    ));
    all
}

fn read_only_alongside_writer_process(env: &[(&str, &str)]) {
    const OPENS: usize = 40;
    const MIN_EVENTS_SEEN: usize = CHILD_FAST_BATCHES / 2 * BATCH;
    let dir = tempfile::tempdir().unwrap();
    let mut child = ChildStore::spawn(dir.path(), "append", env);
    child.wait_for(READY);
    let started = Instant::now();

    let first = Store::open_read_only(dir.path()).expect("read-only open alongside a writer");
    let first_view = check_read_only_view(&first);
    assert!(!first_view.is_empty());
    let mut last_len = first_view.len();
    let mut opens = 0;
    // Keep opening while the child appends at full speed, until it wrote a good many segments.
    while opens < OPENS || last_len < MIN_EVENTS_SEEN {
        assert!(
            started.elapsed() < PATIENCE,
            "the child appended only {last_len} events"
        );
        opens += 1;
        let ro = Store::open_read_only(dir.path()).expect("read-only open alongside a writer");
        let view = check_read_only_view(&ro);
        assert!(view.len() >= last_len, "a later open never sees less");
        assert_eq!(
            &view[..first_view.len()],
            &first_view[..],
            "the prefix never changes"
        );
        last_len = view.len();
        ro.close().unwrap();
    }
    // Make sure the child appended while a read-only store was open, then check that store
    // still shows exactly what it opened with.
    let mut moved = false;
    while !moved {
        let ro = Store::open_read_only(dir.path()).expect("read-only open alongside a writer");
        moved = ro.head_position() > first.head_position();
        std::thread::sleep(Duration::from_millis(1));
        assert!(
            started.elapsed() < PATIENCE,
            "the child never appended more"
        );
    }
    assert_eq!(check_read_only_view(&first), first_view);

    let appended: usize = child.finish().parse().expect("child batch count");
    let s = Store::open(dir.path()).unwrap();
    let all = read_all(&s);
    assert_eq!(
        all.len(),
        appended * BATCH,
        "every acknowledged batch is there"
    );
    check_read_only_view(&Store::open_read_only(dir.path()).unwrap());
    let report = s.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn read_only_open_alongside_a_writer_process_sees_a_consistent_prefix() {
    read_only_alongside_writer_process(&[]);
}

#[test]
fn read_only_open_alongside_a_rolling_writer_process_does_not_report_a_missing_segment() {
    read_only_alongside_writer_process(&[(CHILD_SEGMENT_ENV, "4096")]);
}

#[test]
fn read_only_open_alongside_an_unsynced_rolling_writer_process_does_not_report_a_missing_segment() {
    read_only_alongside_writer_process(&[
        (CHILD_SEGMENT_ENV, "4096"),
        (CHILD_DURABILITY_ENV, "never"),
    ]);
}
