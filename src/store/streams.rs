//! The stream table: the version of every stream's last event.
//!
//! After an open from a checkpoint, the table is the checkpoint's sorted table, searched where
//! it lies in the file's bytes (no map of every stream is built at open), plus a map of the
//! streams changed or added since. Checkpoints are written from the merge of the two, in the
//! checkpoint's order.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use crate::index::FastMap;
use crate::io::FileBytes;
use crate::wire::bytes::stream_hash;
use crate::wire::checkpoint::{CheckpointStreams, StreamTableView, entry_order};

/// A checkpoint's stream table, kept as the checkpoint's bytes.
#[derive(Clone)]
struct Base {
    bytes: Arc<FileBytes>,
    entries: Range<usize>,
    names: Range<usize>,
}

impl Base {
    fn view(&self) -> StreamTableView<'_> {
        StreamTableView::checked(
            &self.bytes[self.entries.clone()],
            &self.bytes[self.names.clone()],
        )
    }
}

/// Every stream's last version.
#[derive(Default, Clone)]
pub(crate) struct StreamTable {
    base: Option<Base>,
    /// Streams set since the base was read: (hash, last version).
    changed: FastMap<Arc<str>, (u64, u64)>,
    /// Streams in `changed` that the base does not hold.
    added: usize,
}

impl StreamTable {
    /// The table of a decoded checkpoint whose bytes are `bytes`.
    pub fn from_checkpoint(bytes: &Arc<FileBytes>, streams: &CheckpointStreams<'_>) -> Self {
        match streams {
            CheckpointStreams::Table(t) => {
                let (entries, names) = t.parts();
                let range = |s: &[u8]| {
                    let at = s.as_ptr() as usize - bytes.as_ptr() as usize;
                    at..at + s.len()
                };
                StreamTable {
                    base: Some(Base {
                        bytes: bytes.clone(),
                        entries: range(entries),
                        names: range(names),
                    }),
                    changed: FastMap::default(),
                    added: 0,
                }
            }
            CheckpointStreams::List(list) => {
                let mut t = StreamTable::default();
                for &(s, v) in list {
                    t.set(s, v);
                }
                t
            }
        }
    }

    /// The last version of `stream`.
    pub fn get(&self, stream: &str) -> Option<u64> {
        match self.changed.get(stream) {
            Some(&(_, v)) => Some(v),
            None => self.base.as_ref().and_then(|b| b.view().get(stream)),
        }
    }

    /// Sets the last version of `stream`.
    pub fn set(&mut self, stream: &str, version: u64) {
        self.set_hashed(stream, stream_hash(stream), version);
    }

    /// Sets the last version of `stream`, whose [`stream_hash`] the caller has.
    pub fn set_hashed(&mut self, stream: &str, hash: u64, version: u64) {
        debug_assert_eq!(hash, stream_hash(stream));
        if let Some(x) = self.changed.get_mut(stream) {
            x.1 = version;
            return;
        }
        if self
            .base
            .as_ref()
            .is_none_or(|b| b.view().get(stream).is_none())
        {
            self.added += 1;
        }
        self.changed.insert(Arc::from(stream), (hash, version));
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.base.as_ref().map_or(0, |b| b.view().len()) + self.added
    }

    /// Every stream and its last version, sorted by (hash, stream id): the order a checkpoint
    /// stores them in.
    pub fn sorted(&self) -> Vec<(u64, &str, u64)> {
        let mut changed: Vec<(u64, &str, u64)> = self
            .changed
            .iter()
            .map(|(s, &(h, v))| (h, &**s, v))
            .collect();
        changed.sort_unstable_by(entry_order);
        let Some(base) = &self.base else {
            return changed;
        };
        let view = base.view();
        let mut out = Vec::with_capacity(self.len());
        let mut c = changed.into_iter().peekable();
        for e in view.iter() {
            while let Some(n) = c.next_if(|n| entry_order(n, &e) == Ordering::Less) {
                out.push(n);
            }
            match c.next_if(|n| n.0 == e.0 && n.1 == e.1) {
                Some(n) => out.push(n),
                None => out.push(e),
            }
        }
        out.extend(c);
        out
    }

    /// Every stream and its last version (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let base = self.base.iter().flat_map(|b| {
            b.view()
                .iter()
                .filter(|(_, s, _)| !self.changed.contains_key(*s))
                .map(|(_, s, v)| (s, v))
        });
        base.chain(self.changed.iter().map(|(s, &(_, v))| (&**s, v)))
    }

    /// Every stream id (in no particular order).
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter().map(|(s, _)| s)
    }
}
