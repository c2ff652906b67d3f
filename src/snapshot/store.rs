//! [`SnapshotStore`]: the `snapshots/` directory of a store. Saves snapshot files crash-safely
//! and finds the newest usable one of a stream.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::io::{Vfs, VfsFile, fsync_dir, read_at, write_file_atomic};
use crate::store::Store;
use crate::wire::limits::MAX_STREAM_ID_BYTES;
use crate::wire::stream_hash;

use super::format::{
    MAX_SNAPSHOT_FILE_BYTES, SNAPSHOT_HEADER_BYTES, SnapshotHeader, decode_body, decode_header,
    decode_stream, encode_snapshot,
};
use super::name::{SNAPSHOT_DIR_NAME, parse_snapshot_file_name, snapshot_file_name};
use super::policy::SnapshotPolicy;
use super::reason::{IgnoredReason, IgnoredSnapshot};

/// What a snapshot file's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file.
    pub path: PathBuf,
    /// The stream.
    pub stream: String,
    /// Version of the stream's last event the state includes.
    pub version: u64,
    /// Schema version of the state.
    pub schema_version: u32,
    /// When it was written, microseconds since the Unix epoch.
    pub created_us: u64,
    /// Length of the state, decompressed.
    pub state_len: u32,
    /// Length of the file.
    pub file_len: u64,
}

/// A snapshot read back: its header and its (decompressed, checked) state bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What the header says.
    pub info: SnapshotInfo,
    /// The state bytes as saved.
    pub state: Vec<u8>,
}

/// What [`SnapshotStore::latest`] found: the newest usable snapshot, and the newer ones it
/// skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// The newest usable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshot files that were skipped, newest first.
    pub ignored: Vec<IgnoredSnapshot>,
}

/// What [`SnapshotStore::find`] found: the snapshot's header and decoded state, and the newer
/// files it skipped.
pub(super) struct Found<T> {
    pub found: Option<(SnapshotInfo, T)>,
    pub ignored: Vec<IgnoredSnapshot>,
}

/// One file of the snapshot directory, as [`SnapshotStore::list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The file.
    pub path: PathBuf,
    /// The stream hash its name gives.
    pub name_hash: u64,
    /// The version its name gives.
    pub name_version: u64,
    /// Its header (the state is not read), or why the header or stream id failed a check.
    pub info: std::result::Result<SnapshotInfo, IgnoredReason>,
}

/// The snapshots of one store, kept in the `snapshots/` subdirectory of the store directory.
///
/// Snapshots are a cache of what the events say: a snapshot that is damaged, of another schema
/// version, or past the stream's end is ignored and the state rebuilt from the events. Snapshot
/// files are keyed by stream, so a stream has one kind of aggregate snapshotted (give each
/// aggregate type its own streams, or its own `SCHEMA_VERSION` values).
///
/// Saves through one `SnapshotStore` are serialized; share one (in an `Arc`) per store rather
/// than opening several on the same directory.
///
/// ```
/// use evlog::{EventData, ExpectedVersion, Store};
/// use evlog::snapshot::SnapshotStore;
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.append("order-1", ExpectedVersion::NoStream, &[EventData::new("OrderPlaced", b"{}".to_vec())])?;
/// let snapshots = SnapshotStore::open(&store);
/// snapshots.save("order-1", 0, 1, b"state after event 0")?;
/// let found = snapshots.latest("order-1", 1, store.stream_version("order-1"))?;
/// assert_eq!(found.snapshot.unwrap().state, b"state after event 0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SnapshotStore {
    vfs: Arc<dyn Vfs>,
    store_dir: PathBuf,
    dir: PathBuf,
    policy: SnapshotPolicy,
    /// Held while saving or pruning; true once the directory is known to exist durably.
    write: Mutex<bool>,
}

impl SnapshotStore {
    /// The snapshots of `store`, on the operating system's file system, with the default
    /// [`SnapshotPolicy`]. Nothing is read or created until it is used.
    pub fn open(store: &Store) -> SnapshotStore {
        Self::with_vfs(store.vfs(), store.dir())
    }

    /// The snapshots of the store in `store_dir`, through `vfs` (e.g. the fault-injecting file
    /// system of tests).
    pub fn with_vfs(vfs: Arc<dyn Vfs>, store_dir: impl AsRef<Path>) -> SnapshotStore {
        let store_dir = store_dir.as_ref().to_path_buf();
        SnapshotStore {
            vfs,
            dir: store_dir.join(SNAPSHOT_DIR_NAME),
            store_dir,
            policy: SnapshotPolicy::default(),
            write: Mutex::new(false),
        }
    }

    /// Replaces the policy.
    pub fn with_policy(mut self, policy: SnapshotPolicy) -> SnapshotStore {
        self.policy = policy;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &SnapshotPolicy {
        &self.policy
    }

    /// The snapshot directory (`<store dir>/snapshots`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn vfs(&self) -> &dyn Vfs {
        &*self.vfs
    }

    /// The lock saves and prunes hold.
    pub(super) fn write_lock(&self) -> MutexGuard<'_, bool> {
        self.write.lock()
    }

    /// Saves `state`, the state of `stream` after its event `version`, written under
    /// `schema_version`, stamped with the current time. Replaces an existing snapshot of the
    /// same stream and version. Crash-safe: after a crash the file is absent, or complete.
    ///
    /// Errors: [`Error::InvalidArgument`] (empty or oversize stream id, state over
    /// [`MAX_SNAPSHOT_BYTES`](super::MAX_SNAPSHOT_BYTES)), [`Error::Io`].
    pub fn save(
        &self,
        stream: &str,
        version: u64,
        schema_version: u32,
        state: &[u8],
    ) -> Result<SnapshotInfo> {
        self.save_at(stream, version, schema_version, state, SystemTime::now())
    }

    /// Like [`SnapshotStore::save`], stamped with `created` instead of the current time.
    pub fn save_at(
        &self,
        stream: &str,
        version: u64,
        schema_version: u32,
        state: &[u8],
        created: SystemTime,
    ) -> Result<SnapshotInfo> {
        let created_us = micros_since_epoch(created);
        let bytes = encode_snapshot(stream, version, schema_version, created_us, state)?;
        debug_assert!(decode_header(&bytes, bytes.len() as u64).is_ok());
        let name = snapshot_file_name(stream_hash(stream), version);
        let mut ready = self.write_lock();
        if !*ready {
            self.vfs
                .create_dir_all(&self.dir)
                .map_err(Error::io("create directory", &self.dir))?;
            // The directory's own entry must be durable before files in it are worth anything.
            fsync_dir(&*self.vfs, &self.store_dir)?;
            *ready = true;
        }
        write_file_atomic(&*self.vfs, &self.dir, &name, &bytes)?;
        drop(ready);
        Ok(SnapshotInfo {
            path: self.dir.join(name),
            stream: stream.to_owned(),
            version,
            schema_version,
            created_us,
            state_len: state.len() as u32,
            file_len: bytes.len() as u64,
        })
    }

    /// The newest usable snapshot of `stream` written under `schema_version`, given the
    /// stream's current version `stream_version` ([`Store::stream_version`]; snapshots past it
    /// are ignored). Files that fail a check are skipped (listed in [`Lookup::ignored`]), and
    /// the next older one is tried.
    ///
    /// Errors: [`Error::Io`] when the directory or a file cannot be read (a missing directory
    /// is no snapshots).
    pub fn latest(
        &self,
        stream: &str,
        schema_version: u32,
        stream_version: Option<u64>,
    ) -> Result<Lookup> {
        let f = self.find(stream, schema_version, stream_version, |_, state| Ok(state))?;
        Ok(Lookup {
            snapshot: f.found.map(|(info, state)| Snapshot { info, state }),
            ignored: f.ignored,
        })
    }

    /// The newest snapshot of `stream` that passes every check and that `decode` accepts,
    /// with the newer ones skipped.
    pub(super) fn find<T>(
        &self,
        stream: &str,
        schema_version: u32,
        stream_version: Option<u64>,
        mut decode: impl FnMut(&SnapshotInfo, Vec<u8>) -> std::result::Result<T, IgnoredReason>,
    ) -> Result<Found<T>> {
        let hash = stream_hash(stream);
        let mut candidates: Vec<(u64, String)> = self
            .names()?
            .into_iter()
            .filter_map(|n| match parse_snapshot_file_name(&n) {
                Some((h, v)) if h == hash => Some((v, n)),
                _ => None,
            })
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let mut ignored = Vec::new();
        for (version, name) in candidates {
            let path = self.dir.join(&name);
            let Some(file) = self.open_file(&path)? else {
                continue; // removed by a concurrent prune
            };
            let checked = self.read_checked(&*file, &path, (hash, version), |info| {
                if info.stream != stream {
                    Err(IgnoredReason::OtherStream)
                } else if stream_version.is_none_or(|current| info.version > current) {
                    Err(IgnoredReason::VersionAhead)
                } else if info.schema_version != schema_version {
                    Err(IgnoredReason::SchemaMismatch)
                } else {
                    Ok(())
                }
            })?;
            match checked.and_then(|(info, state)| Ok((decode(&info, state)?, info))) {
                Ok((value, info)) => {
                    return Ok(Found {
                        found: Some((info, value)),
                        ignored,
                    });
                }
                Err(reason) => ignored.push(IgnoredSnapshot {
                    file: path,
                    version,
                    reason,
                }),
            }
        }
        Ok(Found {
            found: None,
            ignored,
        })
    }

    /// Every snapshot file of the directory, with its header (the states are not read).
    /// Temp files and other names are left out.
    ///
    /// Errors: [`Error::Io`].
    pub fn list(&self) -> Result<Vec<SnapshotEntry>> {
        let mut out = Vec::new();
        for name in self.names()? {
            let Some((name_hash, name_version)) = parse_snapshot_file_name(&name) else {
                continue;
            };
            let path = self.dir.join(&name);
            let Some(file) = self.open_file(&path)? else {
                continue;
            };
            let info = self
                .read_head(&*file, &path, (name_hash, name_version))?
                .map(|(info, _)| info);
            out.push(SnapshotEntry {
                path,
                name_hash,
                name_version,
                info,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Names in the snapshot directory (none when it does not exist).
    pub(super) fn names(&self) -> Result<Vec<String>> {
        match self.vfs.list(&self.dir) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("read directory", &self.dir)(e)),
        }
    }

    fn open_file(&self, path: &Path) -> Result<Option<Arc<dyn VfsFile>>> {
        match self.vfs.open(path, false) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open", path)(e)),
        }
    }

    /// Reads and checks the header and stream id of a file named `(hash, version)`.
    pub(super) fn read_head(
        &self,
        file: &dyn VfsFile,
        path: &Path,
        named: (u64, u64),
    ) -> Result<std::result::Result<(SnapshotInfo, SnapshotHeader), IgnoredReason>> {
        let file_len = file.len().map_err(Error::io("stat", path))?;
        if file_len > MAX_SNAPSHOT_FILE_BYTES as u64 {
            return Ok(Err(IgnoredReason::LengthOverLimit));
        }
        let want = (SNAPSHOT_HEADER_BYTES + MAX_STREAM_ID_BYTES).min(file_len as usize);
        let head = read_at(file, path, 0, want)?;
        let checked = decode_header(&head, file_len).and_then(|h| {
            let stream = decode_stream(&h, &head)?;
            if (h.stream_hash, h.stream_version) != named {
                return Err(IgnoredReason::NameMismatch);
            }
            Ok((
                SnapshotInfo {
                    path: path.to_path_buf(),
                    stream: stream.to_owned(),
                    version: h.stream_version,
                    schema_version: h.schema_version,
                    created_us: h.created_us,
                    state_len: h.state_len,
                    file_len,
                },
                h,
            ))
        });
        Ok(checked)
    }

    /// Reads a whole snapshot file: header and stream id, `accept` (which may refuse it before
    /// the state is read), then the state, checksummed and decompressed.
    fn read_checked(
        &self,
        file: &dyn VfsFile,
        path: &Path,
        named: (u64, u64),
        accept: impl FnOnce(&SnapshotInfo) -> std::result::Result<(), IgnoredReason>,
    ) -> Result<std::result::Result<(SnapshotInfo, Vec<u8>), IgnoredReason>> {
        let (info, h) = match self.read_head(file, path, named)? {
            Ok(v) => v,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Err(reason) = accept(&info) {
            return Ok(Err(reason));
        }
        let body = read_at(
            file,
            path,
            h.body_offset() as u64,
            h.compressed_len as usize,
        )?;
        Ok(decode_body(&h, &body).map(|state| (info, state)))
    }
}

/// Microseconds since the Unix epoch (0 before it).
pub(super) fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
