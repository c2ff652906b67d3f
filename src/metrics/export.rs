//! [`export_metrics_every`]: a metrics snapshot written periodically to a file or the log
//! (`EVENT_METRICS_EXPORT_INTERVAL` of the replaced design).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::monitor::Monitor;

/// Where [`export_metrics_every`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// Replaces this file with each snapshot (written to a temporary file, then renamed).
    File(PathBuf),
    /// An `info` event of the `tracing` log, target `evlog::metrics`, field `metrics`.
    Log,
}

/// Every `every` (the first after one interval), scrapes `monitor` and writes the OpenMetrics
/// text to `target`, until `stop` turns true. A write that fails is logged and tried again at
/// the next interval. Returns how many snapshots were written.
pub async fn export_metrics_every(
    monitor: Arc<Monitor>,
    every: Duration,
    target: ExportTarget,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return written,
        }
        let text = monitor.scrape();
        match &target {
            ExportTarget::Log => {
                tracing::info!(target: "evlog::metrics", metrics = %text, "metrics snapshot");
                written += 1;
            }
            ExportTarget::File(path) => match write_replacing(path, &text) {
                Ok(()) => written += 1,
                Err(e) => tracing::warn!(
                    target: "evlog::metrics",
                    path = %path.display(),
                    error = %e,
                    "writing the metrics snapshot failed"
                ),
            },
        }
    }
}

fn write_replacing(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
