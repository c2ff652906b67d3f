//! `evlog bench`: the standard workload (`evlog::workload::Workload`) against a store in a
//! temporary directory (or `--dir`): append, whole-stream read and replay throughput, with
//! latency percentiles. Numbers measure this machine at this moment; the criterion benches in
//! `benches/` are the reference.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use evlog::workload::{STANDARD_STREAMS, Workload};
use evlog::{Direction, Durability, EventData, ExpectedVersion, ReadFilter, StoreOptions};
use serde_json::json;

use crate::progress::{Unit, bar};
use crate::text::{bytes, duration};
use crate::{Failure, Outcome};

/// Durability levels of `evlog bench`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// fsync before each append returns (concurrent appends share one fsync).
    Always,
    /// fsync in the background every `--interval-ms`.
    Interval,
    /// fsync only when a segment is sealed and at close.
    Never,
}

/// Arguments of `evlog bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Events to append.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Streams the events are spread over (at random).
    #[arg(long, default_value_t = STANDARD_STREAMS, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// When appends are made durable.
    #[arg(long, value_enum, default_value = "always")]
    pub durability: DurabilityArg,
    /// The fsync interval of `--durability interval`, in milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,
    /// Threads appending concurrently (each its own share of the events).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Store directory to use and keep (default: a temporary directory, removed at the end).
    /// Events are appended to whatever the store already holds.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Latency percentiles of one phase.
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn latency(mut v: Vec<Duration>) -> Latency {
    if v.is_empty() {
        return Latency {
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            max: Duration::ZERO,
        };
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        max: v[v.len() - 1],
    }
}

/// One measured phase.
struct Phase {
    name: &'static str,
    /// What one latency sample is.
    per: &'static str,
    ops: u64,
    events: u64,
    bytes: u64,
    elapsed: Duration,
    latency: Latency,
}

impl Phase {
    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn text(&self) -> String {
        format!(
            "{:<13} {} event(s) in {}: {:.0} events/s, {}/s; latency per {}: p50 {}, p99 {}, max {}\n",
            format!("{}:", self.name),
            self.events,
            duration(self.elapsed),
            self.events_per_sec(),
            bytes((self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)) as u64),
            self.per,
            duration(self.latency.p50),
            duration(self.latency.p99),
            duration(self.latency.max)
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "operations": self.ops,
            "events": self.events,
            "bytes": self.bytes,
            "elapsed_us": self.elapsed.as_micros() as u64,
            "events_per_sec": self.events_per_sec(),
            "latency_per": self.per,
            "p50_us": self.latency.p50.as_secs_f64() * 1e6,
            "p99_us": self.latency.p99.as_secs_f64() * 1e6,
            "max_us": self.latency.max.as_secs_f64() * 1e6,
        })
    }
}

/// Runs the subcommand.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let temp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("evlog-bench-")
                .tempdir()
                .map_err(|e| Failure::usage(format!("create a temporary directory: {e}")))?;
            temp.path().to_path_buf()
        }
    };
    let durability = match a.durability {
        DurabilityArg::Always => Durability::Always,
        DurabilityArg::Interval => Durability::Interval(Duration::from_millis(a.interval_ms)),
        DurabilityArg::Never => Durability::Never,
    };
    let store = StoreOptions::new().durability(durability).open(&dir)?;

    // Generate the events before the clock starts.
    let per_thread: Vec<Vec<(String, EventData)>> = (0..a.threads)
        .map(|t| {
            let n = a.events / a.threads + u64::from(t < a.events % a.threads);
            let mut w = Workload::with_streams(a.seed.wrapping_add(t), a.streams);
            (0..n).map(|_| w.next_event()).collect()
        })
        .collect();
    let streams: BTreeSet<&str> = per_thread
        .iter()
        .flatten()
        .map(|(s, _)| s.as_str())
        .collect();
    let payload_bytes: u64 = per_thread
        .iter()
        .flatten()
        .map(|(_, e)| e.payload.len() as u64)
        .sum();

    let pb = bar(Some(a.events), "appending", Unit::Items);
    let start = Instant::now();
    let results: Vec<evlog::Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = per_thread
            .iter()
            .map(|events| {
                let (store, pb) = (&store, &pb);
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(events.len());
                    for (i, (stream, e)) in events.iter().enumerate() {
                        let t = Instant::now();
                        store.append(stream, ExpectedVersion::Any, std::slice::from_ref(e))?;
                        lat.push(t.elapsed());
                        if i % 64 == 63 {
                            pb.inc(64);
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let append_elapsed = start.elapsed();
    pb.finish_and_clear();
    let mut append_lat = Vec::with_capacity(a.events as usize);
    for r in results {
        append_lat.extend(r?);
    }
    let append = Phase {
        name: "append",
        per: "append",
        ops: a.events,
        events: a.events,
        bytes: payload_bytes,
        elapsed: append_elapsed,
        latency: latency(append_lat),
    };
    store.sync()?;

    // Whole-stream reads, each stream once.
    let pb = bar(Some(streams.len() as u64), "reading streams", Unit::Items);
    let mut lat = Vec::with_capacity(streams.len());
    let (mut events, mut read_bytes) = (0u64, 0u64);
    let start = Instant::now();
    for s in &streams {
        let t = Instant::now();
        for e in store.read_stream(s, 0, Direction::Forward, usize::MAX) {
            let e = e?;
            events += 1;
            read_bytes += e.payload.len() as u64;
        }
        lat.push(t.elapsed());
        pb.inc(1);
    }
    let reads = Phase {
        name: "stream reads",
        per: "stream",
        ops: streams.len() as u64,
        events,
        bytes: read_bytes,
        elapsed: start.elapsed(),
        latency: latency(lat),
    };
    pb.finish_and_clear();

    // Replay: every event in position order.
    let total = store.head_position().map_or(0, |p| p + 1);
    let pb = bar(Some(total), "replaying", Unit::Items);
    let mut lat = Vec::with_capacity(total as usize);
    let (mut events, mut read_bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut it = store.read_all(0, Direction::Forward, ReadFilter::all());
    loop {
        let t = Instant::now();
        let Some(e) = it.next() else { break };
        let e = e?;
        lat.push(t.elapsed());
        events += 1;
        read_bytes += e.payload.len() as u64;
        if events.is_multiple_of(4096) {
            pb.set_position(events);
        }
    }
    let replay = Phase {
        name: "replay",
        per: "event",
        ops: events,
        events,
        bytes: read_bytes,
        elapsed: start.elapsed(),
        latency: latency(lat),
    };
    pb.finish_and_clear();
    store.close()?;
    let on_disk = dir_bytes(&dir);

    let durability_name = match a.durability {
        DurabilityArg::Always => "always".to_string(),
        DurabilityArg::Interval => format!("interval {} ms", a.interval_ms),
        DurabilityArg::Never => "never".to_string(),
    };
    let out = if a.json {
        format!(
            "{}\n",
            json!({
                "events": a.events,
                "streams": a.streams,
                "streams_written": streams.len(),
                "durability": durability_name,
                "threads": a.threads,
                "seed": a.seed,
                "dir": a.dir.as_ref().map(|d| d.display().to_string()),
                "append": append.json(),
                "stream_reads": reads.json(),
                "replay": replay.json(),
                "bytes_on_disk": on_disk,
            })
        )
    } else {
        let mut s = format!(
            "bench: {} event(s) over {} stream(s) ({} written), durability {durability_name}, {} thread(s), store {}\n",
            a.events,
            a.streams,
            streams.len(),
            a.threads,
            a.dir
                .as_ref()
                .map_or("in a temporary directory".to_string(), |d| d
                    .display()
                    .to_string())
        );
        s.push_str(&append.text());
        s.push_str(&reads.text());
        s.push_str(&replay.text());
        s.push_str(&format!("store size:   {} on disk\n", bytes(on_disk)));
        s
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(Outcome::Ok)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = latency(v);
        assert_eq!(l.p50, Duration::from_millis(51));
        assert_eq!(l.p99, Duration::from_millis(99));
        assert_eq!(l.max, Duration::from_millis(100));
        assert_eq!(latency(Vec::new()).max, Duration::ZERO);
    }
}
