//! A slow consumer's memory is bounded: a bus handler that lags tens of thousands of events
//! behind the head (a backlog of ~160 MB stored before the bus starts, and more published while
//! the handler is stalled) makes the bus hold about one polled batch of events, never the
//! backlog. Measured with a counting global allocator, so this is its own test binary. No
//! timing is asserted: the test waits for the handler's progress with generous deadlines.

#![cfg(feature = "bus")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evlog::bus::{BusConfig, EventBus, Outcome};
use evlog::{Durability, EventData, ExpectedVersion, StoreOptions};
use tokio::sync::Semaphore;

/// Counts the heap bytes allocated and not freed, and their peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            if new_size >= l.size() {
                grew(new_size - l.size());
            } else {
                shrank(l.size() - new_size);
            }
        }
        q
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        shrank(l.size());
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const MIB: usize = 1 << 20;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The peak of live heap bytes since the last call (then starts a new period at the bytes live
/// now).
fn take_peak() -> usize {
    PEAK.swap(live(), Ordering::Relaxed)
}

/// Streams the events are spread over, round robin.
const STREAMS: usize = 16;
/// Bytes of each event's payload: its stream's number and its version, then filler.
const PAYLOAD: usize = 4_096;
/// Events stored before the bus starts: ~160 MB of payload.
const BACKLOG: usize = 40_000;
/// Events published through the bus while its handler is stalled: ~33 MB more.
const LIVE_PUBLISHES: usize = 8_000;
/// Events the handler is let through at a time after the stall.
const BURST: usize = 4_000;
/// Events the bus reads from the log per poll.
const BATCH_EVENTS: usize = 1_024;

fn stream_name(s: usize) -> String {
    format!("acct-{s:02}")
}

fn payload(stream: usize, version: u64) -> Vec<u8> {
    let mut p = vec![0xA5; PAYLOAD];
    p[..8].copy_from_slice(&(stream as u64).to_le_bytes());
    p[8..16].copy_from_slice(&version.to_le_bytes());
    p
}

/// What the handler saw, kept in fixed-size state (its own memory does not grow with the
/// events it handles).
#[derive(Default)]
struct Seen {
    /// The next version expected of each stream.
    next_version: Mutex<[u64; STREAMS]>,
    /// The last position handled, plus one.
    next_position: AtomicU64,
    handled: AtomicU64,
    /// The first few things that were wrong.
    errors: Mutex<Vec<String>>,
}

impl Seen {
    fn wrong(&self, what: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 10 {
            errors.push(what);
        }
    }

    fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst) as usize
    }
}

/// Polls (never asserting a duration) until `done`, for at most 60 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handler_far_behind_the_head_keeps_the_heap_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        StoreOptions::new()
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap(),
    );

    // The backlog, stored before the bus starts.
    let mut versions = [0u64; STREAMS];
    let event = |i: usize, versions: &mut [u64; STREAMS]| {
        let s = i % STREAMS;
        let v = versions[s];
        versions[s] += 1;
        (s, EventData::new("Deposited", payload(s, v)))
    };
    for i in 0..BACKLOG {
        let (s, data) = event(i, &mut versions);
        store
            .append(&stream_name(s), ExpectedVersion::Any, &[data])
            .unwrap();
    }
    let backlog_bytes = BACKLOG * PAYLOAD;

    // The bound. The bus reads `BATCH_EVENTS` events per poll, as owned copies (payload plus
    // ~200 bytes of stream, type, id and bookkeeping each), and delivers a batch before it
    // reads the next: about one batch (~4.2 MiB) is held on account of the slow handler,
    // whatever the backlog. Allowed: four batches (the batch being delivered, the next being
    // read, vector growth and allocator slack), plus what was live before the bus started (the
    // runtime, the store's per-stream index: ~1.3 MiB), plus 16 MiB for the rest that does not
    // depend on the backlog (the bus, its subscription and checkpoints, the publishes under
    // way, the test's state). That is ~34 MiB, against ~197 MB of events the handler is behind
    // at the worst. (Heap only: the sealed segments are memory-mapped files, the page cache's.)
    let batch_bytes = BATCH_EVENTS * (PAYLOAD + 256);
    let before_bus = live();
    let bound = before_bus + 4 * batch_bytes + 16 * MIB;
    assert!(
        bound < backlog_bytes / 4,
        "the bound ({} MiB) must be far below the backlog ({} MiB)",
        bound / MIB,
        backlog_bytes / MIB
    );

    let bus = EventBus::new(
        store.clone(),
        BusConfig::default().batch_events(BATCH_EVENTS),
    );
    // The slow handler: each event waits for a permit, which the test hands out in bursts.
    let permits = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Seen::default());
    {
        let (permits, seen) = (permits.clone(), seen.clone());
        bus.subscribe_all("slow", move |_ctx, e| {
            let (permits, seen) = (permits.clone(), seen.clone());
            async move {
                permits.acquire().await.unwrap().forget();
                let s = u64::from_le_bytes(e.payload[..8].try_into().unwrap()) as usize;
                let v = u64::from_le_bytes(e.payload[8..16].try_into().unwrap());
                if e.payload.len() != PAYLOAD || s >= STREAMS || *e.stream != stream_name(s) {
                    seen.wrong(format!("event at {} is not one of ours", e.position));
                } else {
                    let mut next = seen.next_version.lock().unwrap();
                    if e.version != next[s] || v != e.version {
                        seen.wrong(format!(
                            "{} v{} (payload v{v}) where v{} was expected",
                            e.stream, e.version, next[s]
                        ));
                    }
                    next[s] = e.version + 1;
                }
                if e.position < seen.next_position.load(Ordering::SeqCst) {
                    seen.wrong(format!("position {} out of order", e.position));
                }
                seen.next_position.store(e.position + 1, Ordering::SeqCst);
                seen.handled.fetch_add(1, Ordering::SeqCst);
                Ok(Outcome::Handled)
            }
        })
        .unwrap();
    }
    take_peak();

    // Stalled: more events published through the bus while the handler waits at the first.
    let mut last = 0;
    for i in BACKLOG..BACKLOG + LIVE_PUBLISHES {
        let (s, data) = event(i, &mut versions);
        last = bus
            .publish(&stream_name(s), ExpectedVersion::Any, vec![data])
            .await
            .unwrap()
            .last_position;
    }
    let total = BACKLOG + LIVE_PUBLISHES;
    assert_eq!(seen.handled(), 0, "the handler ran without permits");
    // (when, events the handler was behind, peak of live heap bytes)
    let mut peaks = vec![("stalled, while events were published", total, take_peak())];

    // Let it through in bursts; each time it is still tens of thousands of events behind.
    while seen.handled() + BURST < total {
        let target = seen.handled() + BURST;
        permits.add_permits(BURST);
        until("a burst to be handled", || seen.handled() >= target).await;
        // Behind by this many before the burst, which the peak covers.
        let behind = total + BURST - seen.handled();
        peaks.push(("during a burst", behind, take_peak()));
    }
    let behind = total - seen.handled();
    permits.add_permits(behind);
    bus.wait_for("slow", last).await.unwrap();
    peaks.push(("catching up the rest", behind, take_peak()));
    let mib = |b: usize| b as f64 / MIB as f64;
    eprintln!(
        "backlog {:.0} MiB stored + {:.0} MiB published while stalled; live before the bus \
         {:.1} MiB; bound {:.1} MiB; (events behind, peak MiB): {:?}",
        mib(backlog_bytes),
        mib(LIVE_PUBLISHES * PAYLOAD),
        mib(before_bus),
        mib(bound),
        peaks
            .iter()
            .map(|&(_, behind, p)| (behind, (mib(p) * 10.0).round() / 10.0))
            .collect::<Vec<_>>(),
    );
    assert!(
        peaks.len() >= 8 && peaks[..8].iter().all(|&(_, behind, _)| behind >= 20_000),
        "the handler was not far behind at several samples: {peaks:?}"
    );
    for &(when, behind, peak) in &peaks {
        assert!(
            peak < bound,
            "{when}: {:.1} MiB of heap live at the peak, over the bound of {:.1} MiB \
             (the handler was behind by {behind} events, {:.0} MiB)",
            mib(peak),
            mib(bound),
            mib(behind * PAYLOAD)
        );
    }

    // Every event handled once, each stream in order, nothing parked or retried.
    let errors = seen.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.handled(), total);
    assert_eq!(*seen.next_version.lock().unwrap(), versions);
    assert_eq!(
        versions.iter().sum::<u64>(),
        total as u64,
        "every event is in the streams' versions"
    );
    let stats = bus.stats("slow").unwrap();
    assert_eq!(
        (stats.handled, stats.failures, stats.parked),
        (total as u64, 0, 0)
    );
    bus.shutdown().await.unwrap();
}
