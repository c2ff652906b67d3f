//! A fault-injecting, in-memory file system for tests (feature `fault-injection`).
//!
//! It keeps what each file holds as written apart from what is durable (fsynced), and the
//! directory as changed apart from the directory as made durable (by a directory fsync), so a
//! test can cut the power after any operation and look at what a disk could hold then:
//! unsynced writes dropped, torn at 512-byte sectors, or replaced by zeros or garbage, and
//! unsynced creations, renames and removals lost (a prefix of them kept). It also fails the Nth
//! operation with EIO (once or from then on) and refuses writes past a space limit (ENOSPC).
//!
//! Operations that change state or make it durable (create, write, set_len, sync, rename,
//! remove, directory sync) are counted; reads are not.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileBytes, Vfs, VfsFile, VfsLock};
use crate::workload::Rng;

/// Size of the unit a torn write is torn at.
pub const SECTOR_BYTES: usize = 512;

/// What becomes of the writes and directory changes that were not durable when power failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// Unsynced data and directory changes are all lost.
    DropUnsynced,
    /// Unsynced data and directory changes all reached the disk.
    KeepUnsynced,
    /// Each unsynced 512-byte sector is kept, lost, zeroed or filled with garbage, at random;
    /// a random prefix of the unsynced directory changes is kept.
    TornSectors,
    /// Unsynced data reads back as zeros (the file grew, its data did not arrive).
    Zeros,
    /// Unsynced data reads back as garbage.
    Garbage,
}

/// All the variants, for tests that try each.
pub const ALL_POWER_LOSSES: [PowerLoss; 5] = [
    PowerLoss::DropUnsynced,
    PowerLoss::KeepUnsynced,
    PowerLoss::TornSectors,
    PowerLoss::Zeros,
    PowerLoss::Garbage,
];

/// Which operations an injected error hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation with this index (counted from 0) fails with EIO, later ones work.
    TransientEio(u64),
    /// The operation with this index and every later one fail with EIO.
    PersistentEio(u64),
}

#[derive(Default, Clone)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Clone)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

#[derive(Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    /// Directory changes since the last directory fsync, in order.
    dir_log: Vec<DirOp>,
    dirs: Vec<PathBuf>,
    locks: Vec<PathBuf>,
    ops: u64,
    power_off_after: Option<u64>,
    fault: Option<Fault>,
    space_limit: Option<u64>,
}

impl State {
    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.data.len() as u64).sum()
    }
}

/// The fault-injecting file system. Cheap to clone (clones share the same state).
#[derive(Clone, Default)]
pub struct FaultFs {
    st: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.st.lock();
        f.debug_struct("FaultFs")
            .field("files", &st.names.len())
            .field("ops", &st.ops)
            .finish()
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected I/O error ({what})"))
}

impl FaultFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Operations counted so far.
    pub fn ops(&self) -> u64 {
        self.st.lock().ops
    }

    /// Cuts the power after `ops` operations in total: every later operation fails and changes
    /// nothing. [`FaultFs::after_power_loss`] then gives what a disk could hold.
    pub fn power_off_after(&self, ops: u64) {
        self.st.lock().power_off_after = Some(ops);
    }

    /// Injects an I/O error (replacing any earlier one); `None` removes it.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.st.lock().fault = fault;
    }

    /// Limits the bytes all files may hold together (ENOSPC past it); `None` lifts the limit.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.st.lock().space_limit = bytes;
    }

    /// Counts one operation and says whether it may proceed.
    fn op(&self, st: &mut State, what: &str) -> io::Result<()> {
        let n = st.ops;
        if st.power_off_after.is_some_and(|p| n >= p) {
            return Err(io::Error::other("simulated power loss"));
        }
        st.ops += 1;
        match st.fault {
            Some(Fault::TransientEio(k)) if k == n => Err(eio(what)),
            Some(Fault::PersistentEio(k)) if n >= k => Err(eio(what)),
            _ => Ok(()),
        }
    }

    /// A new file system holding what the disk could hold after the power failed now, under
    /// `mode` (random choices drawn from `seed`). The current file system is left as it is.
    pub fn after_power_loss(&self, mode: PowerLoss, seed: u64) -> FaultFs {
        let st = self.st.lock();
        let mut rng = Rng::new(seed);
        let mut names = st.durable_names.clone();
        let keep_ops = match mode {
            PowerLoss::DropUnsynced => 0,
            PowerLoss::KeepUnsynced => st.dir_log.len(),
            _ => rng.below(st.dir_log.len() as u64 + 1) as usize,
        };
        for op in &st.dir_log[..keep_ops] {
            match op {
                DirOp::Link(p, i) => {
                    names.insert(p.clone(), *i);
                }
                DirOp::Unlink(p) => {
                    names.remove(p);
                }
            }
        }
        let mut inodes = HashMap::new();
        for i in names.values() {
            let Some(node) = st.inodes.get(i) else {
                continue;
            };
            let data = crashed_data(node, mode, &mut rng);
            inodes.insert(
                *i,
                Inode {
                    synced: data.clone(),
                    data,
                },
            );
        }
        let fresh = State {
            inodes,
            next_inode: st.next_inode,
            durable_names: names.clone(),
            names,
            dir_log: Vec::new(),
            dirs: st.dirs.clone(),
            ..State::default()
        };
        FaultFs {
            st: Arc::new(Mutex::new(fresh)),
        }
    }

    /// A copy of the file system as it is (written state, all of it treated as durable).
    pub fn snapshot(&self) -> FaultFs {
        self.after_power_loss(PowerLoss::KeepUnsynced, 0)
    }

    /// The written content of a file, if it exists.
    pub fn file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.st.lock();
        st.names
            .get(path)
            .and_then(|i| st.inodes.get(i))
            .map(|n| n.data.clone())
    }

    /// Replaces a file's content (written and durable), creating it if needed; for tests that
    /// damage a store on purpose.
    pub fn put_file(&self, path: &Path, data: Vec<u8>) {
        let mut st = self.st.lock();
        let i = match st.names.get(path) {
            Some(i) => *i,
            None => {
                let i = st.next_inode;
                st.next_inode += 1;
                st.names.insert(path.to_path_buf(), i);
                st.durable_names.insert(path.to_path_buf(), i);
                i
            }
        };
        st.inodes.insert(
            i,
            Inode {
                synced: data.clone(),
                data,
            },
        );
    }
}

/// What one file holds after a power loss under `mode`.
fn crashed_data(node: &Inode, mode: PowerLoss, rng: &mut Rng) -> Vec<u8> {
    let (old, new) = (&node.synced, &node.data);
    match mode {
        PowerLoss::DropUnsynced => old.clone(),
        PowerLoss::KeepUnsynced => new.clone(),
        PowerLoss::Zeros | PowerLoss::Garbage => {
            let mut out = new.clone();
            for (k, b) in out.iter_mut().enumerate() {
                if old.get(k) != Some(b) {
                    *b = if mode == PowerLoss::Zeros {
                        0
                    } else {
                        rng.next_u64() as u8
                    };
                }
            }
            out
        }
        PowerLoss::TornSectors => {
            // Each 512-byte sector with unsynced bytes is, at random: fully written, not
            // written, zeroed or garbage. Bytes already durable are never damaged (the disk
            // overwrites power-safely, as SQLite calls it): only unsynced bytes change.
            let len = new.len().max(old.len());
            let mut out = vec![0u8; len];
            let mut end = old.len();
            for s in (0..len).step_by(SECTOR_BYTES) {
                let e = (s + SECTOR_BYTES).min(len);
                let choice = rng.below(4);
                let mut arrived = false;
                for (k, o) in out.iter_mut().enumerate().take(e).skip(s) {
                    let durable = old.get(k);
                    if durable.is_some() && durable == new.get(k) {
                        *o = old[k];
                        continue;
                    }
                    *o = match choice {
                        0 => *new.get(k).or(durable).unwrap_or(&0),
                        1 => *durable.unwrap_or(&0),
                        2 => 0,
                        _ => rng.next_u64() as u8,
                    };
                    arrived |= choice != 1 && k < new.len();
                }
                if arrived {
                    end = end.max(e.min(new.len()));
                }
            }
            out.truncate(end);
            out
        }
    }
}

struct FaultFile {
    fs: FaultFs,
    inode: u64,
    write: bool,
}

impl VfsFile for FaultFile {
    fn map(&self, len: u64) -> io::Result<FileBytes> {
        let st = self.fs.st.lock();
        let data = &st.inodes[&self.inode].data;
        match data.get(..len as usize) {
            Some(b) => Ok(FileBytes::Owned(b.to_vec())),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than the bytes to map",
            )),
        }
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.fs.st.lock();
        let data = &st.inodes[&self.inode].data;
        let at = offset.min(data.len() as u64) as usize;
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.write {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only handle",
            ));
        }
        let mut st = self.fs.st.lock();
        self.fs.op(&mut st, "write")?;
        let end = offset as usize + buf.len();
        let cur = st.inodes[&self.inode].data.len();
        if let Some(limit) = st.space_limit
            && end > cur
            && st.used_bytes() + (end - cur) as u64 > limit
        {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        let data = &mut st.inodes.get_mut(&self.inode).expect("inode").data;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.fs.st.lock();
        self.fs.op(&mut st, "fsync")?;
        let node = st.inodes.get_mut(&self.inode).expect("inode");
        node.synced = node.data.clone();
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.fs.st.lock();
        self.fs.op(&mut st, "truncate")?;
        st.inodes
            .get_mut(&self.inode)
            .expect("inode")
            .data
            .resize(len as usize, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.fs.st.lock().inodes[&self.inode].data.len() as u64)
    }
}

struct FaultLock {
    fs: FaultFs,
    path: PathBuf,
}

impl VfsLock for FaultLock {}

impl Drop for FaultLock {
    fn drop(&mut self) {
        self.fs.st.lock().locks.retain(|p| p != &self.path);
    }
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

impl Vfs for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        if !st.dirs.iter().any(|d| d == dir) {
            st.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.st.lock().dirs.iter().any(|d| d == path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.st.lock();
        Ok(st
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn VfsFile>> {
        let st = self.st.lock();
        let inode = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(FaultFile {
            fs: self.clone(),
            inode,
            write,
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut st = self.st.lock();
        self.op(&mut st, "create")?;
        let inode = match st.names.get(path) {
            Some(i) => {
                let i = *i;
                st.inodes.get_mut(&i).expect("inode").data.clear();
                i
            }
            None => {
                let i = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(i, Inode::default());
                st.names.insert(path.to_path_buf(), i);
                st.dir_log.push(DirOp::Link(path.to_path_buf(), i));
                i
            }
        };
        Ok(Arc::new(FaultFile {
            fs: self.clone(),
            inode,
            write: true,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        self.op(&mut st, "rename")?;
        let i = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), i);
        st.dir_log.push(DirOp::Link(to.to_path_buf(), i));
        st.dir_log.push(DirOp::Unlink(from.to_path_buf()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        if !st.names.contains_key(path) {
            return Err(not_found(path));
        }
        self.op(&mut st, "remove")?;
        st.names.remove(path);
        st.dir_log.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        self.op(&mut st, "fsync directory")?;
        st.durable_names = st.names.clone();
        st.dir_log.clear();
        Ok(())
    }

    fn map(&self, path: &Path) -> io::Result<FileBytes> {
        let st = self.st.lock();
        let i = st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(FileBytes::Owned(st.inodes[i].data.clone()))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn VfsLock>>> {
        let mut st = self.st.lock();
        if st.locks.iter().any(|p| p == path) {
            return Ok(None);
        }
        st.locks.push(path.to_path_buf());
        Ok(Some(Box::new(FaultLock {
            fs: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}
