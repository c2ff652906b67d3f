//! What an idle `read_stream` iterator keeps alive between two `next()` calls: the events it
//! decoded, never the segments, maps or images it read them from (a subscriber may hold an
//! iterator for long, while compaction replaces the segments under it). Its own test binary,
//! as it counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use evlog::{Direction, Durability, EventData, ExpectedVersion, StoreOptions};

/// Counts the bytes allocated and not freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live_mib() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / f64::from(1 << 20)
}

/// After compaction rewrote every segment a held iterator's stream is in (their old bytes
/// pinned as images for readers that hold them), dropping the iterator frees less than 2 MiB.
#[test]
fn an_idle_stream_iterator_keeps_no_segment_compaction_replaced() {
    evlog::segment::set_image_cache_bytes(0);
    let dir = tempfile::tempdir().unwrap();
    let s = StoreOptions::new()
        .segment_bytes(1 << 20)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    for i in 0..20u32 {
        s.append(
            "s",
            ExpectedVersion::Any,
            &[EventData::new("T", vec![b'x'; 16])],
        )
        .unwrap();
        for _ in 0..9 {
            // ~100 KiB that compresses little.
            let p: Vec<u8> = (0..100_000u32)
                .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(i) >> 13) as u8)
                .collect();
            s.append("big", ExpectedVersion::Any, &[EventData::new("B", p)])
                .unwrap();
        }
        s.seal_active().unwrap();
    }
    s.compress_sealed().unwrap();
    let mut it = s.read_stream("s", 0, Direction::Forward, usize::MAX);
    assert_eq!(it.next().unwrap().unwrap().version, 0);
    // The other stream's events become hidden: compaction rewrites every segment.
    s.delete_stream("big", ExpectedVersion::Any).unwrap();
    assert_eq!(s.compact().unwrap().segments_rewritten, 20);
    let held = live_mib();
    drop(it);
    let freed = held - live_mib();
    assert!(freed < 2.0, "the idle iterator kept {freed:.1} MiB alive");
}
