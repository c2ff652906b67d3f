//! Retention and deletion: per-stream rules kept in the stream settings file
//! (`wire::settings`), honoured by every read as soon as they are set.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::event::ExpectedVersion;
use crate::io::write_file_atomic;
use crate::store::{Inner, Store};
use crate::wire::settings::{SETTINGS_FILE_NAME, StreamSettings, encode_settings};

impl Inner {
    /// Changes the settings of `stream` with `f`, after checking `expected` against its version,
    /// makes the new settings durable, then lets readers see them.
    ///
    /// Every append before it is made durable first: the settings file is not part of the log,
    /// so a version it records (a deletion's `truncate_before`, the version a tombstone was
    /// checked against) must not be one a crash could take back. Otherwise the next append
    /// after the crash would reuse that version, be acknowledged, and stay hidden for good.
    /// On a poisoned store (an append failed, its events maybe counted in the stream
    /// versions) nothing is changed: [`Error::Poisoned`].
    fn change_settings(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        f: impl FnOnce(&mut StreamSettings, Option<u64>),
    ) -> Result<()> {
        crate::store::writer::validate_stream_id(stream)?;
        let mut guard = self.writer.lock();
        let Some(w) = guard.as_mut() else {
            return Err(if self.read_only {
                Error::ReadOnly
            } else {
                Error::Closed
            });
        };
        if self.poisoned.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        self.sync_locked(w)?;
        let (mut map, actual) = {
            let st = self.state.read();
            ((*st.settings).clone(), st.streams.get(stream))
        };
        if !expected.matches(actual) {
            return Err(Error::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected,
                actual,
            });
        }
        let key: Arc<str> = Arc::from(stream);
        let mut s = map.get(stream).copied().unwrap_or_default();
        if s.tombstone {
            return Err(Error::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        f(&mut s, actual);
        if s.is_default() {
            map.remove(stream);
        } else {
            map.insert(key, s);
        }
        let mut entries: Vec<(&str, StreamSettings)> =
            map.iter().map(|(k, v)| (&**k, *v)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let bytes = encode_settings(entries.into_iter());
        write_file_atomic(&*self.vfs, &self.dir, SETTINGS_FILE_NAME, &bytes)?;
        self.state.write().settings = Arc::new(map);
        drop(guard);
        Ok(())
    }
}

impl Store {
    /// Keeps only the last `max_count` events of `stream` visible and only those younger than
    /// `max_age` (`None`: no limit). Hidden events stay on disk until compaction removes them.
    pub fn set_retention(
        &self,
        stream: &str,
        max_age: Option<Duration>,
        max_count: Option<u64>,
    ) -> Result<()> {
        if max_count == Some(0) || max_age.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidArgument(
                "retention limits must be above zero (None for no limit)".into(),
            ));
        }
        self.inner
            .change_settings(stream, ExpectedVersion::Any, |s, _| {
                s.max_count = max_count.unwrap_or(0);
                s.max_age_us = max_age.map_or(0, |d| (d.as_micros() as u64).max(1));
            })
    }

    /// Hides every event of `stream` with a version below `version`. Never lowers an earlier
    /// truncation.
    pub fn truncate_before(&self, stream: &str, version: u64) -> Result<()> {
        self.inner
            .change_settings(stream, ExpectedVersion::Any, |s, _| {
                s.truncate_before = s.truncate_before.max(version);
            })
    }

    /// Soft-deletes `stream` if it is at `expected`: its events are hidden at once, and the
    /// stream can be written again, continuing its versions.
    pub fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        self.inner.change_settings(stream, expected, |s, actual| {
            if let Some(v) = actual {
                s.truncate_before = s.truncate_before.max(v + 1);
            }
        })
    }

    /// Hard-deletes `stream` if it is at `expected`: its events are hidden, and every later
    /// append to it fails with [`Error::StreamDeleted`], for good.
    pub fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        self.inner
            .change_settings(stream, expected, |s, _| s.tombstone = true)
    }

    /// The retention rules and deletion state of `stream`, if it has any.
    pub fn stream_settings(&self, stream: &str) -> Option<StreamSettings> {
        self.inner.state.read().settings.get(stream).copied()
    }
}
