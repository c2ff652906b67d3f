//! [`Metrics`]: the Prometheus registry (prometheus-client), the counters and histograms the bus
//! feeds, and the gauges [`crate::metrics::Monitor`] sets when scraped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::bus::{Attempt, BusObserver, HandlerObserver};

/// Labels of one handler and one event type.
pub(crate) type TypeLabels = [(&'static str, String); 2];
/// Labels of one handler, event type and delivery result.
type ResultLabels = [(&'static str, String); 3];
/// One label.
pub(crate) type OneLabel = [(&'static str, String); 1];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
/// A gauge holding an `f64`.
pub(crate) type FloatGauge = Gauge<f64, AtomicU64>;

fn delivery_histogram() -> Histogram {
    // 50 µs to about 26 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// The metrics of one store and its bus. Give it to [`crate::bus::EventBus::with_observer`] so
/// that the bus feeds it, and to [`crate::metrics::Monitor`], which sets the gauges from the
/// store when scraped.
///
/// Recording a delivery costs one read lock, one hash lookup of the event type and a few atomic
/// adds (`benches/metrics.rs`); the metric handles of each handler and event type are made once.
pub struct Metrics {
    registry: Registry,
    appends: Counter,
    appended_events: Counter,
    appended_bytes: Counter,
    append_seconds: Histogram,
    deliveries: Family<ResultLabels, Counter>,
    retries: Family<TypeLabels, Counter>,
    parked: Family<TypeLabels, Counter>,
    delivery_seconds: HistogramFamily<TypeLabels>,
    pub(crate) gauges: Gauges,
}

/// The gauges set at scrape time.
#[derive(Default)]
pub(crate) struct Gauges {
    pub store_events: Gauge,
    pub store_streams: Gauge,
    pub store_bytes_on_disk: Gauge,
    pub store_segments: Gauge,
    pub store_compressed_segments: Gauge,
    pub store_compression_ratio: FloatGauge,
    pub store_poisoned: Gauge,
    pub store_last_fsync_seconds: FloatGauge,
    pub store_last_fsync_appends: Gauge,
    pub disk_available_bytes: Gauge,
    pub dead_letters: Family<OneLabel, Gauge>,
    pub dead_letter_oldest_age_seconds: Family<OneLabel, FloatGauge>,
    pub subscription_lag: Family<OneLabel, Gauge>,
    pub sagas: Family<OneLabel, Gauge>,
    pub health_status: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every evlog metric (prefix `evlog_`), all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("evlog");
        let m = Metrics {
            registry: Registry::default(),
            appends: Counter::default(),
            appended_events: Counter::default(),
            appended_bytes: Counter::default(),
            append_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            deliveries: Family::default(),
            retries: Family::default(),
            parked: Family::default(),
            delivery_seconds: Family::new_with_constructor(delivery_histogram),
            gauges: Gauges::default(),
        };
        let g = &m.gauges;
        // One line per metric: name (after the `evlog_` prefix), help, unit if any, handle.
        macro_rules! reg {
            ($name:expr, $help:expr, $metric:expr) => {
                registry.register($name, $help, $metric.clone())
            };
            ($name:expr, $help:expr, $unit:ident, $metric:expr) => {
                registry.register_with_unit($name, $help, Unit::$unit, $metric.clone())
            };
        }

        reg!(
            "appends",
            "Appends through the bus (publish calls)",
            m.appends
        );
        reg!(
            "appended_events",
            "Events appended through the bus",
            m.appended_events
        );
        reg!(
            "appended",
            "Payload bytes appended through the bus",
            Bytes,
            m.appended_bytes
        );
        reg!(
            "append_latency",
            "Time of a publish until its events are durable",
            Seconds,
            m.append_seconds
        );
        reg!(
            "deliveries",
            "Delivery attempts per handler, event type and result (handled, skipped, failed)",
            m.deliveries
        );
        reg!(
            "delivery_retries",
            "Delivery attempts after the first, per handler and event type",
            m.retries
        );
        reg!(
            "parked_events",
            "Events parked in a dead-letter stream, per handler and event type",
            m.parked
        );
        reg!(
            "delivery_processing",
            "Time a handler took per delivery attempt, per handler and event type",
            Seconds,
            m.delivery_seconds
        );
        reg!(
            "store_events",
            "Events in the log (head position + 1)",
            g.store_events
        );
        reg!(
            "store_streams",
            "Streams with events, system streams included",
            g.store_streams
        );
        reg!(
            "store_on_disk",
            "Bytes of the files of the store directory",
            Bytes,
            g.store_bytes_on_disk
        );
        reg!(
            "store_segments",
            "Segment files, sealed and active",
            g.store_segments
        );
        reg!(
            "store_compressed_segments",
            "Sealed segments stored compressed",
            g.store_compressed_segments
        );
        reg!(
            "store_compression_ratio",
            "Bytes the compressed segments stand for over their bytes on disk (0: none compressed)",
            g.store_compression_ratio
        );
        reg!(
            "store_poisoned",
            "1 when an fsync or write error poisoned the store (reopen it)",
            g.store_poisoned
        );
        reg!(
            "store_last_fsync",
            "Time the last fsync of appends took",
            Seconds,
            g.store_last_fsync_seconds
        );
        reg!(
            "store_last_fsync_appends",
            "Appends the last fsync made durable (group commit)",
            g.store_last_fsync_appends
        );
        reg!(
            "disk_available",
            "Bytes still available on the store's file system",
            Bytes,
            g.disk_available_bytes
        );
        reg!("dead_letters", "Parked events per handler", g.dead_letters);
        reg!(
            "dead_letter_oldest_age",
            "Age of the oldest parked event per handler",
            Seconds,
            g.dead_letter_oldest_age_seconds
        );
        reg!(
            "subscription_lag_events",
            "Head position + 1 minus the checkpoint, per named subscription",
            g.subscription_lag
        );
        reg!(
            "sagas",
            "Sagas per state (active, completed, compensated, stuck)",
            g.sagas
        );
        reg!(
            "health_status",
            "Health at the last check: 0 ok, 1 degraded, 2 failing",
            g.health_status
        );
        Metrics { registry, ..m }
    }

    /// Records one append of `events` events (`bytes` of payload) that took `elapsed`: the bus
    /// calls it for each publish; an application that appends to the store directly may call
    /// it too.
    pub fn record_append(&self, events: usize, bytes: u64, elapsed: Duration) {
        self.appends.inc();
        self.appended_events.inc_by(events as u64);
        self.appended_bytes.inc_by(bytes);
        self.append_seconds.observe(elapsed.as_secs_f64());
    }

    /// The metrics of the handler `handler`, for recording its deliveries.
    pub fn handler_metrics(&self, handler: &str) -> HandlerMetrics {
        HandlerMetrics {
            handler: handler.to_owned(),
            deliveries: self.deliveries.clone(),
            retries: self.retries.clone(),
            parked: self.parked.clone(),
            seconds: self.delivery_seconds.clone(),
            by_type: RwLock::new(HashMap::new()),
        }
    }

    /// Every metric in the OpenMetrics text format (what Prometheus scrapes), as they are now;
    /// [`crate::metrics::Monitor::scrape`] sets the gauges first.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String does not fail");
        out
    }
}

impl BusObserver for Metrics {
    fn published(&self, events: usize, bytes: u64, elapsed: Duration) {
        self.record_append(events, bytes, elapsed);
    }

    fn handler(&self, name: &str) -> Arc<dyn HandlerObserver> {
        Arc::new(self.handler_metrics(name))
    }
}

/// The metric handles of one handler and event type.
struct TypeMetrics {
    handled: Counter,
    skipped: Counter,
    failed: Counter,
    retries: Counter,
    parked: Counter,
    seconds: Histogram,
}

/// Records the deliveries of one handler ([`Metrics::handler_metrics`]); the handles of each
/// event type are looked up in the registry once, then kept.
pub struct HandlerMetrics {
    handler: String,
    deliveries: Family<ResultLabels, Counter>,
    retries: Family<TypeLabels, Counter>,
    parked: Family<TypeLabels, Counter>,
    seconds: HistogramFamily<TypeLabels>,
    by_type: RwLock<HashMap<Box<str>, TypeMetrics>>,
}

impl HandlerMetrics {
    fn with<R>(&self, event_type: &str, f: impl FnOnce(&TypeMetrics) -> R) -> R {
        if let Some(t) = self.by_type.read().get(event_type) {
            return f(t);
        }
        let labels = [
            ("handler", self.handler.clone()),
            ("event_type", event_type.to_owned()),
        ];
        let result = |r: &str| {
            self.deliveries.get_or_create_owned(&[
                ("handler", self.handler.clone()),
                ("event_type", event_type.to_owned()),
                ("result", r.to_owned()),
            ])
        };
        let t = TypeMetrics {
            handled: result("handled"),
            skipped: result("skipped"),
            failed: result("failed"),
            retries: self.retries.get_or_create_owned(&labels),
            parked: self.parked.get_or_create_owned(&labels),
            seconds: self.seconds.get_or_create_owned(&labels),
        };
        let mut by_type = self.by_type.write();
        let t = by_type.entry(event_type.into()).or_insert(t);
        f(t)
    }
}

impl HandlerObserver for HandlerMetrics {
    fn delivered(&self, event_type: &str, attempt: u32, result: Attempt, elapsed: Duration) {
        self.with(event_type, |t| {
            match result {
                Attempt::Handled => t.handled.inc(),
                Attempt::Skipped => t.skipped.inc(),
                Attempt::Failed => t.failed.inc(),
            };
            if attempt > 1 {
                t.retries.inc();
            }
            t.seconds.observe(elapsed.as_secs_f64());
        })
    }

    fn parked(&self, event_type: &str) {
        self.with(event_type, |t| t.parked.inc());
    }
}
