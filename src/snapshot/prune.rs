//! Retention: [`SnapshotStore::prune`] deletes snapshots past the policy's retention, keeping
//! the latest of every stream, and clears out damaged and leftover temp files.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::io::fsync_dir;

use super::name::TEMP_FILE_SUFFIX;
use super::store::{SnapshotInfo, SnapshotStore, micros_since_epoch};

/// What [`SnapshotStore::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Snapshots deleted because they were older than the retention and not their stream's
    /// latest.
    pub deleted: Vec<PathBuf>,
    /// Snapshot files deleted because their header or stream id failed a check (no load can
    /// use them).
    pub deleted_damaged: Vec<PathBuf>,
    /// Leftover temp files of interrupted saves, deleted.
    pub deleted_temp: Vec<PathBuf>,
    /// Snapshot files left in place.
    pub kept: usize,
}

impl SnapshotStore {
    /// Applies the retention of the policy at time `now`: of each stream's snapshots, the one
    /// with the highest version is always kept, and every other one created more than
    /// `retention` before `now` is deleted. Files whose header or stream id is damaged and
    /// leftover `*.tmp` files are deleted too; files of a newer format version are left alone.
    /// The deletions are made durable with one directory fsync; a crash before it leaves some
    /// of them undone, and the next prune redoes them.
    ///
    /// `now` is a parameter so that callers (and tests) choose the clock. Do not prune while
    /// another process saves snapshots into the same directory: its temp file could be
    /// deleted, and its save would then fail.
    ///
    /// Errors: [`Error::Io`].
    pub fn prune(&self, now: SystemTime) -> Result<PruneReport> {
        let _write = self.write_lock();
        let now_us = micros_since_epoch(now);
        let retention_us = u64::try_from(self.policy().retention.as_micros()).unwrap_or(u64::MAX);
        let mut report = PruneReport::default();
        for name in self.names()? {
            if name.ends_with(TEMP_FILE_SUFFIX) {
                report.deleted_temp.push(self.dir().join(name));
            }
        }
        let mut by_stream: HashMap<String, Vec<SnapshotInfo>> = HashMap::new();
        for entry in self.list()? {
            match entry.info {
                Ok(info) => by_stream.entry(info.stream.clone()).or_default().push(info),
                Err(reason) if reason.is_damage() => report.deleted_damaged.push(entry.path),
                Err(_) => report.kept += 1,
            }
        }
        for mut snapshots in by_stream.into_values() {
            snapshots.sort_by_key(|s| s.version);
            let latest = snapshots.pop();
            report.kept += usize::from(latest.is_some());
            for s in snapshots {
                if now_us.saturating_sub(s.created_us) > retention_us {
                    report.deleted.push(s.path);
                } else {
                    report.kept += 1;
                }
            }
        }
        report.deleted.sort();
        report.deleted_damaged.sort();
        report.deleted_temp.sort();
        let doomed = report
            .deleted
            .iter()
            .chain(&report.deleted_damaged)
            .chain(&report.deleted_temp);
        let mut removed_any = false;
        for path in doomed {
            match self.vfs().remove(path) {
                Ok(()) => removed_any = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", path)(e)),
            }
        }
        if removed_any {
            fsync_dir(self.vfs(), self.dir())?;
        }
        Ok(report)
    }
}
