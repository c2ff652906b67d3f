//! Criterion benches of the storage core, each beside its baseline in the same run.
//!
//! `cargo bench --bench store` (add `-- --quick` for a fast pass). Figures and the machine
//! they were measured on are in BENCHMARKS.md; `benches/report.rs` prints the percentiles and
//! ratios the goals are stated in.

#[path = "common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use evlog::workload::{Rng, Workload};
use evlog::{Direction, Durability, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions};

fn open(dir: &std::path::Path, d: Durability) -> Store {
    StoreOptions::new().durability(d).open(dir).unwrap()
}

fn bare_file(dir: &std::path::Path) -> std::fs::File {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("bare"))
        .unwrap()
}

fn durable_appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let f = bare_file(dir.path());
    let buf = vec![0x5au8; 4096];
    let mut off = 0u64;
    g.bench_function("bare_4KiB_pwrite_fdatasync", |b| {
        b.iter(|| {
            f.write_all_at(&buf, off).unwrap();
            f.sync_data().unwrap();
            off += 4096;
        })
    });
    let store = open(&dir.path().join("s"), Durability::Always);
    let mut w = Workload::standard(1);
    g.bench_function("evlog_1_writer", |b| {
        b.iter_batched(
            || w.next_event(),
            |(s, e)| store.append(&s, ExpectedVersion::Any, &[e]).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let store = Arc::new(store);
    g.throughput(Throughput::Elements(8));
    g.bench_function("evlog_8_threads_x1", |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(std::sync::Barrier::new(9));
            let hs: Vec<_> = (0..8)
                .map(|k| {
                    let store = store.clone();
                    let barrier = barrier.clone();
                    let mut w = Workload::standard(1000 + k);
                    let evs: Vec<_> = (0..iters).map(|_| w.next_event()).collect();
                    std::thread::spawn(move || {
                        barrier.wait();
                        for (s, e) in evs {
                            store.append(&s, ExpectedVersion::Any, &[e]).unwrap();
                        }
                    })
                })
                .collect();
            barrier.wait();
            let t = Instant::now();
            for h in hs {
                h.join().unwrap();
            }
            t.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("durable_batch_of_100");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(100));
    let store = open(&dir.path().join("b"), Durability::Always);
    let mut w = Workload::standard(2);
    let mut i = 0u64;
    g.bench_function("evlog", |b| {
        b.iter_batched(
            || (0..100).map(|_| w.next_event().1).collect::<Vec<_>>(),
            |evs| {
                i += 1;
                store
                    .append(&Workload::stream_name(i), ExpectedVersion::Any, &evs)
                    .unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    // The same bytes per batch as evlog wrote (its segment bytes over its batches).
    let seg_bytes: u64 = std::fs::read_dir(dir.path().join("b"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let per_batch = (seg_bytes / i.max(1)).max(1) as usize;
    let buf = vec![0x5au8; per_batch];
    let mut off = 0u64;
    g.bench_function(format!("bare_{per_batch}B_pwrite_fdatasync"), |b| {
        b.iter(|| {
            f.write_all_at(&buf, off).unwrap();
            f.sync_data().unwrap();
            off += per_batch as u64;
        })
    });
    g.finish();
}

fn nondurable_appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("nondurable_append");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Durability::Never);
    let mut w = Workload::standard(3);
    g.bench_function("evlog", |b| {
        b.iter_batched(
            || w.next_event(),
            |(s, e)| store.append(&s, ExpectedVersion::Any, &[e]).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A store of `n` standard events over `streams` streams, closed.
fn filled(n: usize, streams: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Durability::Never);
    let mut w = Workload::with_streams(4, streams);
    for _ in 0..n {
        let (s, e) = w.next_event();
        store.append(&s, ExpectedVersion::Any, &[e]).unwrap();
    }
    store.close().unwrap();
    dir
}

fn reads(c: &mut Criterion) {
    // 200,000 events over 2,000 streams: ~100 events per stream, scattered through the log.
    let dir = filled(200_000, 2_000);
    let store = open(dir.path(), Durability::Never);
    let mut g = c.benchmark_group("read");
    let mut rng = Rng::new(9);
    g.throughput(Throughput::Elements(100));
    g.bench_function("evlog_whole_stream_of_100", |b| {
        b.iter(|| {
            let s = Workload::stream_name(rng.below(2_000));
            let mut n = 0;
            for e in store.read_stream(&s, 0, Direction::Forward, usize::MAX) {
                e.unwrap();
                n += 1;
            }
            n
        })
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(200_000));
    g.bench_function("evlog_replay_all", |b| {
        b.iter(|| {
            let mut n = 0;
            for e in store.read_all(0, Direction::Forward, ReadFilter::all()) {
                e.unwrap();
                n += 1;
            }
            n
        })
    });
    let types = ReadFilter::all().event_types(["PriceFeedUpdatedEvent"]);
    g.bench_function("evlog_replay_one_type", |b| {
        b.iter(|| store.read_all(0, Direction::Forward, types.clone()).count())
    });
    // Baseline: read the same segment files sequentially into memory.
    let segs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    g.bench_function("bare_sequential_read_of_the_segments", |b| {
        b.iter(|| {
            segs.iter()
                .map(|p| std::fs::read(p).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
    drop(store);

    let mut g = c.benchmark_group("open");
    g.sample_size(20);
    g.bench_function("evlog_open_and_first_append_200k_events", |b| {
        b.iter_batched(
            || (),
            |_| {
                let s = open(dir.path(), Durability::Never);
                s.append(
                    "probe",
                    ExpectedVersion::Any,
                    &[EventData::new("Probe", b"{}".to_vec())],
                )
                .unwrap();
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Replays of a store whose sealed segments are compressed, beside a bare zstd decode of the
/// same compressed blocks (no checks, no records): what decompression alone costs.
fn compressed_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .durability(Durability::Never)
        .segment_bytes(8 << 20);
    {
        let store = opts.open(dir.path()).unwrap();
        let mut w = Workload::with_streams(4, 2_000);
        for _ in 0..200_000 {
            let (s, e) = w.next_event();
            store.append(&s, ExpectedVersion::Any, &[e]).unwrap();
        }
        store.compress_sealed().unwrap();
        store.close().unwrap();
    }
    let store = opts.open(dir.path()).unwrap();
    let head = store.head_position().unwrap() + 1;
    let mut g = c.benchmark_group("read_compressed");
    g.sample_size(10);
    g.throughput(Throughput::Elements(head));
    g.bench_function("evlog_replay_all_read_all", |b| {
        b.iter(|| {
            store
                .read_all(0, Direction::Forward, ReadFilter::all())
                .count()
        })
    });
    let all = ReadFilter::all();
    g.bench_function("evlog_replay_all_borrowed", |b| {
        b.iter(|| {
            store
                .replay(0, u64::MAX, &all, |_| std::ops::ControlFlow::Continue(()))
                .unwrap()
                .events
        })
    });
    // Without the cache of decompressed images every replay decompresses every segment again:
    // the figure to put beside the bare zstd decode.
    evlog::segment::set_image_cache_bytes(0);
    g.bench_function("evlog_replay_all_borrowed_decompressing", |b| {
        b.iter(|| {
            store
                .replay(0, u64::MAX, &all, |_| std::ops::ControlFlow::Continue(()))
                .unwrap()
                .events
        })
    });
    evlog::segment::set_image_cache_bytes(evlog::segment::DEFAULT_IMAGE_CACHE_BYTES);
    let types = ReadFilter::all().event_types(["PriceFeedUpdatedEvent"]);
    g.bench_function("evlog_replay_one_type_borrowed", |b| {
        b.iter(|| {
            store
                .replay(0, u64::MAX, &types, |_| std::ops::ControlFlow::Continue(()))
                .unwrap()
                .events
        })
    });
    // Baseline: zstd alone over the same compressed blocks.
    let segs = common::compressed_segments(dir.path());
    g.bench_function("bare_zstd_decode_of_the_compressed_segments", |b| {
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let mut out = vec![0u8; 64 << 10];
        b.iter(|| common::zstd_over_blocks(&segs, &mut d, &mut out))
    });
    g.finish();
    let mut g = c.benchmark_group("read_compressed_stream");
    let mut rng = Rng::new(9);
    g.throughput(Throughput::Elements(100));
    g.bench_function("evlog_whole_stream_of_100_borrowed", |b| {
        b.iter(|| {
            let s = Workload::stream_name(rng.below(2_000));
            store
                .replay_stream(&s, 0, |_| std::ops::ControlFlow::Continue(()))
                .unwrap()
                .events
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    durable_appends,
    nondurable_appends,
    reads,
    compressed_reads
);
criterion_main!(benches);
