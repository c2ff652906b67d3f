//! [`Monitor`]: a store and its bus, watched. Gauges and health are computed when asked, from
//! the public store API, the dead-letter streams, the checkpoints and the saga hook: nothing is
//! added to the store's append path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::bus::dead_letter::{DEAD_LETTER_STREAM_PREFIX, DeadLetterState};
use crate::bus::{EventBus, catch_up_dead_letters};
use crate::metrics::disk::{DiskSpace, disk_space};
use crate::metrics::health::{Check, Health, HealthConfig, Status};
use crate::metrics::recorder::Metrics;
use crate::metrics::saga::{SagaCounts, SagaGauges};
use crate::stats::zseg_image_len;
use crate::store::Store;
use crate::subscription::checkpoint::{CHECKPOINT_STREAM_PREFIX, Checkpoint};
use crate::wire::segment::parse_segment_file_name;
use crate::wire::zseg::parse_zseg_file_name;

/// What one look at the store found (what health and the gauges are made of).
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub poisoned: bool,
    /// Head position + 1.
    pub events: u64,
    pub streams: u64,
    pub disk: Option<DiskSpace>,
    /// Per handler: parked events, and the oldest one's parked time (µs since the epoch).
    pub dead_letters: Vec<(String, u64, Option<u64>)>,
    /// Per named subscription: events behind the head.
    pub lag: Vec<(String, u64)>,
    pub sagas: Option<SagaCounts>,
}

/// Watches a store and its bus for metrics and health.
///
/// Named subscriptions are those with a checkpoint stream (`$checkpoint-NAME`), the bus's
/// handlers included; handlers with dead letters are those with a `$dlq-NAME` stream. Both lists
/// are found by a scan of the stream ids, done again only when the number of streams changed.
pub struct Monitor {
    bus: EventBus,
    metrics: Arc<Metrics>,
    config: HealthConfig,
    sagas: Option<Arc<dyn SagaGauges>>,
    names: Mutex<Names>,
    dead: Mutex<HashMap<String, DeadLetterState>>,
    /// Image bytes of each compressed segment file (sealed files never change).
    zseg_images: Mutex<HashMap<String, u64>>,
}

#[derive(Default)]
struct Names {
    streams_seen: Option<usize>,
    dlq_handlers: Vec<String>,
    subscriptions: Vec<String>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("store", &self.bus.store().dir())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// Watches `bus` and its store; `metrics` should be the bus's observer (see
    /// [`EventBus::with_observer`]) for the delivery metrics to count.
    pub fn new(bus: EventBus, metrics: Arc<Metrics>, config: HealthConfig) -> Monitor {
        Monitor {
            bus,
            metrics,
            config,
            sagas: None,
            names: Mutex::new(Names::default()),
            dead: Mutex::new(HashMap::new()),
            zseg_images: Mutex::new(HashMap::new()),
        }
    }

    /// Reports saga counts through `gauges` (a saga manager, or a closure).
    pub fn with_sagas(mut self, gauges: Arc<dyn SagaGauges>) -> Monitor {
        self.sagas = Some(gauges);
        self
    }

    /// The bus.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        self.bus.store()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The health thresholds.
    pub fn health_config(&self) -> &HealthConfig {
        &self.config
    }

    /// The handlers that have a dead-letter stream, and the bus's handlers, sorted.
    pub fn dead_letter_handlers(&self) -> Vec<String> {
        let mut names = self.refresh_names().0;
        names.extend(self.bus.handler_names());
        names.sort_unstable();
        names.dedup();
        names
    }

    fn refresh_names(&self) -> (Vec<String>, Vec<String>) {
        let store = self.store();
        let mut n = self.names.lock();
        let count = store.stream_count();
        if n.streams_seen != Some(count) {
            let strip = |prefix: &str| -> Vec<String> {
                store
                    .stream_ids_with_prefix(prefix)
                    .into_iter()
                    .map(|s| s[prefix.len()..].to_owned())
                    .collect()
            };
            n.dlq_handlers = strip(DEAD_LETTER_STREAM_PREFIX);
            n.subscriptions = strip(CHECKPOINT_STREAM_PREFIX);
            n.streams_seen = Some(count);
        }
        (n.dlq_handlers.clone(), n.subscriptions.clone())
    }

    /// Looks at the store, the dead letters, the checkpoints and the sagas.
    pub(crate) fn observe(&self) -> Observed {
        let store = self.store();
        let events = store.head_position().map_or(0, |p| p + 1);
        let (_, subscriptions) = self.refresh_names();
        let mut dead_letters = Vec::new();
        {
            let mut dead = self.dead.lock();
            for handler in self.dead_letter_handlers() {
                let state = dead.entry(handler.clone()).or_default();
                let stream = crate::bus::dead_letter_stream(&handler);
                if catch_up_dead_letters(store, &stream, state).is_err() {
                    // An unreadable record: start over next time; report what was folded.
                    let folded = std::mem::take(state);
                    let oldest = folded.letters.values().map(|l| l.parked_at_us).min();
                    dead_letters.push((handler, folded.letters.len() as u64, oldest));
                    continue;
                }
                let oldest = state.letters.values().map(|l| l.parked_at_us).min();
                dead_letters.push((handler, state.letters.len() as u64, oldest));
            }
        }
        let now = Instant::now();
        let lag = subscriptions
            .into_iter()
            .filter_map(|name| {
                let ck = Checkpoint::load(store, &name, now).ok()?;
                Some((name, events.saturating_sub(ck.position.unwrap_or(0))))
            })
            .collect();
        Observed {
            poisoned: store.is_poisoned(),
            events,
            streams: store.stream_count() as u64,
            disk: disk_space(store.dir()).ok(),
            dead_letters,
            lag,
            sagas: self.sagas.as_ref().map(|s| s.saga_counts()),
        }
    }

    /// The health now.
    pub fn health(&self) -> Health {
        let health = self.health_of(&self.observe());
        self.metrics.gauges.health_status.set(health.status.code());
        health
    }

    pub(crate) fn health_of(&self, o: &Observed) -> Health {
        let c = &self.config;
        let mut checks = Vec::new();
        if o.poisoned {
            checks.push(Check {
                check: "store",
                status: Status::Failing,
                message: "an fsync or write error poisoned the store: no append is acknowledged \
                          until it is reopened; check the disk, then restart"
                    .into(),
            });
        }
        if let Some(d) = o.disk {
            let ratio = d.available_ratio();
            let status = if ratio < c.disk_failing_ratio {
                Some(Status::Failing)
            } else if ratio < c.disk_degraded_ratio {
                Some(Status::Degraded)
            } else {
                None
            };
            if let Some(status) = status {
                checks.push(Check {
                    check: "disk",
                    status,
                    message: format!(
                        "{} of {} bytes available ({:.1}%) on the store's file system",
                        d.available_bytes,
                        d.total_bytes,
                        ratio * 100.0
                    ),
                });
            }
        }
        for (name, lag) in &o.lag {
            if *lag > c.max_lag_events {
                checks.push(Check {
                    check: "subscription_lag",
                    status: Status::Degraded,
                    message: format!(
                        "subscription {name} is {lag} events behind the head (threshold {})",
                        c.max_lag_events
                    ),
                });
            }
        }
        for (handler, n, _) in &o.dead_letters {
            if *n > c.max_dead_letters {
                checks.push(Check {
                    check: "dead_letters",
                    status: Status::Degraded,
                    message: format!(
                        "handler {handler} has {n} parked events (threshold {}): list them at \
                         /api/events/dead-letter, then redrive or discard",
                        c.max_dead_letters
                    ),
                });
            }
        }
        if let Some(s) = o.sagas.filter(|s| s.stuck > 0) {
            checks.push(Check {
                check: "sagas",
                status: Status::Degraded,
                message: format!("{} sagas are stuck", s.stuck),
            });
        }
        Health::from_checks(checks)
    }

    /// Sets every gauge from the store and returns every metric in the OpenMetrics text format.
    pub fn scrape(&self) -> String {
        let o = self.observe();
        let health = self.health_of(&o);
        let g = &self.metrics.gauges;
        g.health_status.set(health.status.code());
        g.store_poisoned.set(i64::from(o.poisoned));
        g.store_events.set(o.events as i64);
        g.store_streams.set(o.streams as i64);
        if let Some((took, appends)) = self.store().last_fsync() {
            g.store_last_fsync_seconds.set(took.as_secs_f64());
            g.store_last_fsync_appends.set(appends as i64);
        }
        if let Some(d) = o.disk {
            g.disk_available_bytes.set(d.available_bytes as i64);
        }
        let files = self.segment_files(self.store().dir());
        g.store_bytes_on_disk.set(files.bytes_on_disk as i64);
        g.store_segments.set(files.segments as i64);
        g.store_compressed_segments.set(files.compressed as i64);
        let ratio = if files.zseg_bytes == 0 {
            0.0
        } else {
            files.zseg_image_bytes as f64 / files.zseg_bytes as f64
        };
        g.store_compression_ratio.set(ratio);
        let now_us = crate::store::now_us();
        for (handler, n, oldest) in &o.dead_letters {
            let label = [("handler", handler.clone())];
            g.dead_letters.get_or_create(&label).set(*n as i64);
            let age = oldest.map_or(0.0, |t| now_us.saturating_sub(t) as f64 / 1e6);
            g.dead_letter_oldest_age_seconds
                .get_or_create(&label)
                .set(age);
        }
        for (name, lag) in &o.lag {
            g.subscription_lag
                .get_or_create(&[("subscription", name.clone())])
                .set(*lag as i64);
        }
        if let Some(s) = o.sagas {
            for (state, n) in [
                ("active", s.active),
                ("completed", s.completed),
                ("compensated", s.compensated),
                ("stuck", s.stuck),
            ] {
                g.sagas
                    .get_or_create(&[("state", state.to_owned())])
                    .set(n as i64);
            }
        }
        self.metrics.encode()
    }

    /// The segment files of the store directory and what they weigh.
    fn segment_files(&self, dir: &Path) -> SegmentFiles {
        let mut f = SegmentFiles::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return f;
        };
        let mut images = self.zseg_images.lock();
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            f.bytes_on_disk += meta.len();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if parse_segment_file_name(name).is_some() {
                f.segments += 1;
            } else if parse_zseg_file_name(name).is_some() {
                f.segments += 1;
                f.compressed += 1;
                let image = match images.get(name) {
                    Some(i) => Some(*i),
                    None => zseg_image_len(&entry.path()).ok().inspect(|i| {
                        images.insert(name.to_owned(), *i);
                    }),
                };
                if let Some(i) = image {
                    f.zseg_bytes += meta.len();
                    f.zseg_image_bytes += i;
                }
            }
        }
        f
    }
}

#[derive(Debug, Default)]
struct SegmentFiles {
    bytes_on_disk: u64,
    segments: u64,
    compressed: u64,
    zseg_bytes: u64,
    zseg_image_bytes: u64,
}
