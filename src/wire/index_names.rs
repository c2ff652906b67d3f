//! The name tables of a sealed segment's index file (index version 2, `format/FORMAT.md`
//! § 8.4): the segment's distinct event types, each with the positions of its events, and its
//! distinct stream ids, so that a read filtered by event type or by stream prefix visits only
//! the frames holding a match, and skips a segment holding none without reading it.
//!
//! ```text
//! types      type_count x (name_at u32 | name_len u32 | first u32)         ascending by name
//! type pos   typed_count x (rel_pos u32 | frame_offset u32)    per type, ascending by rel_pos
//! streams    stream_count x (name_at u32 | name_len u32)                   ascending by name
//! names      names_len bytes: the type names, then the stream ids, in table order
//! ```
//!
//! The tables follow the Bloom filter; the header's flag `INDEX_FLAG_NAMES` says they are
//! there. The index embedded in the checkpoint (the active segment's) has none.

use std::collections::HashMap;
use std::ops::Range;

use super::bytes::{DecodeError, stream_hash, u32_at};
use super::index_file::{IndexHeader, IndexView, partition_point};
use super::limits::{MAX_EVENT_TYPE_BYTES, MAX_STREAM_ID_BYTES};

/// Index header flag (`u16` at 10): the name tables follow the Bloom filter.
pub const INDEX_FLAG_NAMES: u16 = 1;
/// Size of one type table entry.
pub const TYPE_ENTRY_BYTES: usize = 12;
/// Size of one type position table entry.
pub const TYPE_EVENT_ENTRY_BYTES: usize = 8;
/// Size of one stream name table entry.
pub const STREAM_NAME_ENTRY_BYTES: usize = 8;

/// Where an event is: its position relative to the segment and the offset of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventAt {
    /// Position of the event minus the segment's first position.
    pub rel_pos: u32,
    /// Byte offset of the frame holding the event.
    pub frame_offset: u32,
}

/// The sizes of the name tables, from the index header (bytes 44..60).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamesHeader {
    /// Distinct event types (entries in the type table).
    pub type_count: u32,
    /// Entries in the type position table: the events that have a type (all but the
    /// placeholders compaction leaves).
    pub typed_count: u32,
    /// Distinct stream ids (entries in the stream name table).
    pub stream_count: u32,
    /// Bytes of the name area.
    pub names_len: u32,
}

impl NamesHeader {
    /// Bytes of the tables and the name area.
    pub fn tables_len(&self) -> usize {
        self.type_count as usize * TYPE_ENTRY_BYTES
            + self.typed_count as usize * TYPE_EVENT_ENTRY_BYTES
            + self.stream_count as usize * STREAM_NAME_ENTRY_BYTES
            + self.names_len as usize
    }

    /// Reads the sizes from header bytes 44..60.
    pub(crate) fn read(buf: &[u8]) -> NamesHeader {
        NamesHeader {
            type_count: u32_at(buf, 44),
            typed_count: u32_at(buf, 48),
            stream_count: u32_at(buf, 52),
            names_len: u32_at(buf, 56),
        }
    }

    /// Writes the sizes to header bytes 44..60.
    pub(crate) fn write(&self, buf: &mut [u8]) {
        buf[44..48].copy_from_slice(&self.type_count.to_le_bytes());
        buf[48..52].copy_from_slice(&self.typed_count.to_le_bytes());
        buf[52..56].copy_from_slice(&self.stream_count.to_le_bytes());
        buf[56..60].copy_from_slice(&self.names_len.to_le_bytes());
    }

    /// Checks the sizes against the event count and the name limits (before the file length
    /// is computed from them).
    pub(crate) fn check(&self, event_count: u32) -> Result<(), DecodeError> {
        let over = |at: usize, what: &'static str, limit: u64, found: u32| {
            Err(DecodeError::new(at, what, limit, found.into()))
        };
        if self.typed_count > event_count {
            return over(
                48,
                "index typed event count",
                event_count.into(),
                self.typed_count,
            );
        }
        if self.type_count > self.typed_count {
            return over(
                44,
                "index type count",
                self.typed_count.into(),
                self.type_count,
            );
        }
        if self.stream_count > event_count {
            return over(
                52,
                "index stream count",
                event_count.into(),
                self.stream_count,
            );
        }
        let most = u64::from(self.type_count) * MAX_EVENT_TYPE_BYTES as u64
            + u64::from(self.stream_count) * MAX_STREAM_ID_BYTES as u64;
        if u64::from(self.names_len) > most {
            return over(56, "index names length", most, self.names_len);
        }
        Ok(())
    }
}

/// Collects the name tables of a segment's events, given in position order. Built at each
/// seal from every event of the segment, so a lookup per event is kept cheap: the few types
/// of a segment are searched in a short list (a map once there are many), and stream ids are
/// found by their FNV hash (an integer key) and then compared.
#[derive(Debug, Default)]
pub struct NamesBuilder {
    /// Each type met, with its events.
    types: Vec<(Box<str>, Vec<EventAt>)>,
    /// Where each type is in `types`, once there are more than `LINEAR_TYPES`.
    type_at: HashMap<Box<str>, usize>,
    /// Stream ids by their `stream_hash` (ids sharing a hash share the list).
    streams: HashMap<u64, Vec<Box<str>>>,
}

/// Types searched in a list before a map is kept.
const LINEAR_TYPES: usize = 16;

impl NamesBuilder {
    /// A builder holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next event: its stream, its type (empty for a placeholder of a dropped event,
    /// which is in no type's list) and where it is.
    pub fn push(&mut self, stream: &str, event_type: &str, at: EventAt) {
        let ids = self.streams.entry(stream_hash(stream)).or_default();
        if !ids.iter().any(|s| **s == *stream) {
            ids.push(stream.into());
        }
        if event_type.is_empty() {
            return;
        }
        let found = if self.types.len() <= LINEAR_TYPES {
            self.types.iter().position(|(t, _)| **t == *event_type)
        } else {
            self.type_at.get(event_type).copied()
        };
        match found {
            Some(i) => self.types[i].1.push(at),
            None => {
                self.types.push((event_type.into(), vec![at]));
                if self.types.len() > LINEAR_TYPES {
                    if self.type_at.is_empty() {
                        let all = self.types.iter().enumerate();
                        self.type_at = all.map(|(i, (t, _))| (t.clone(), i)).collect();
                    } else {
                        self.type_at.insert(event_type.into(), self.types.len() - 1);
                    }
                }
            }
        }
    }

    /// Appends the tables to `out` and returns their sizes.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> NamesHeader {
        let mut types: Vec<(&str, &Vec<EventAt>)> =
            self.types.iter().map(|(k, v)| (&**k, v)).collect();
        types.sort_unstable_by_key(|(k, _)| *k);
        let mut streams: Vec<&str> = self.streams.values().flatten().map(|s| &**s).collect();
        streams.sort_unstable();
        let mut name_at = 0u32;
        let mut first = 0u32;
        for (name, list) in &types {
            debug_assert!(list.windows(2).all(|w| w[0].rel_pos < w[1].rel_pos));
            for v in [name_at, name.len() as u32, first] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            name_at += name.len() as u32;
            first += list.len() as u32;
        }
        for (_, list) in &types {
            for e in *list {
                out.extend_from_slice(&e.rel_pos.to_le_bytes());
                out.extend_from_slice(&e.frame_offset.to_le_bytes());
            }
        }
        for name in &streams {
            out.extend_from_slice(&name_at.to_le_bytes());
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            name_at += name.len() as u32;
        }
        for name in types.iter().map(|(k, _)| *k).chain(streams.iter().copied()) {
            out.extend_from_slice(name.as_bytes());
        }
        NamesHeader {
            type_count: types.len() as u32,
            typed_count: first,
            stream_count: streams.len() as u32,
            names_len: name_at,
        }
    }
}

/// Where each table starts in an index file with these sizes.
struct Layout {
    types: usize,
    events: usize,
    streams: usize,
    names: usize,
}

impl Layout {
    fn of(h: &IndexHeader) -> Layout {
        let n = h.names;
        let types = h.file_len() - n.tables_len();
        let events = types + n.type_count as usize * TYPE_ENTRY_BYTES;
        let streams = events + n.typed_count as usize * TYPE_EVENT_ENTRY_BYTES;
        let names = streams + n.stream_count as usize * STREAM_NAME_ENTRY_BYTES;
        Layout {
            types,
            events,
            streams,
            names,
        }
    }
}

impl<'a> IndexView<'a> {
    /// True when the index has name tables (every sealed segment's index written by this
    /// version has them; the checkpoint's has none).
    pub fn has_names(&self) -> bool {
        self.header.flags & INDEX_FLAG_NAMES != 0
    }

    /// Bytes `at..at + len` of the name area; empty when they lie outside it (an index whose
    /// tables were not checked).
    fn name(&self, at: u32, len: u32) -> &'a [u8] {
        let l = Layout::of(&self.header);
        let start = l.names.saturating_add(at as usize);
        let end = start.saturating_add(len as usize);
        if end > self.bytes().len() {
            return &[];
        }
        &self.bytes()[start..end]
    }

    /// Distinct event types in the segment.
    pub fn type_count(&self) -> usize {
        self.header.names.type_count as usize
    }

    fn type_field(&self, i: usize, k: usize) -> u32 {
        u32_at(
            self.bytes(),
            Layout::of(&self.header).types + i * TYPE_ENTRY_BYTES + 4 * k,
        )
    }

    /// Name of type `i`.
    pub fn type_name(&self, i: usize) -> &'a [u8] {
        self.name(self.type_field(i, 0), self.type_field(i, 1))
    }

    /// The entries of the type position table that belong to type `i` (clamped to the
    /// table, so an unchecked index cannot make them reach outside it).
    pub fn type_events(&self, i: usize) -> Range<usize> {
        let n = self.header.names.typed_count as usize;
        let start = (self.type_field(i, 2) as usize).min(n);
        let end = if i + 1 < self.type_count() {
            (self.type_field(i + 1, 2) as usize).min(n)
        } else {
            n
        };
        start..end.max(start)
    }

    /// Entry `j` of the type position table.
    pub fn type_event(&self, j: usize) -> EventAt {
        let o = Layout::of(&self.header).events + j * TYPE_EVENT_ENTRY_BYTES;
        EventAt {
            rel_pos: u32_at(self.bytes(), o),
            frame_offset: u32_at(self.bytes(), o + 4),
        }
    }

    /// The type table entry named `name`, if the segment holds events of that type.
    pub fn find_type(&self, name: &[u8]) -> Option<usize> {
        let n = self.type_count();
        let i = partition_point(n, |i| self.type_name(i) < name);
        (i < n && self.type_name(i) == name).then_some(i)
    }

    /// Distinct stream ids in the segment.
    pub fn stream_count(&self) -> usize {
        self.header.names.stream_count as usize
    }

    /// Stream id `i` of the stream name table.
    pub fn stream_name(&self, i: usize) -> &'a [u8] {
        let o = Layout::of(&self.header).streams + i * STREAM_NAME_ENTRY_BYTES;
        self.name(u32_at(self.bytes(), o), u32_at(self.bytes(), o + 4))
    }

    /// The stream ids that start with `prefix`: a range of the stream name table.
    pub fn streams_with_prefix(&self, prefix: &[u8]) -> Range<usize> {
        let n = self.stream_count();
        let start = partition_point(n, |i| self.stream_name(i) < prefix);
        let end = start
            + partition_point(n - start, |k| {
                self.stream_name(start + k).starts_with(prefix)
            });
        start..end
    }
}

/// Checks the name tables of an index whose header decoded (part of
/// [`check_index_tables`](super::index_file::check_index_tables)): names are UTF-8 within their
/// limits, laid out back to back in table order and strictly ascending; the type runs start at
/// 0 and ascend, every type has an event, each run ascends by position; every position and
/// frame offset is in range; a segment with events has a stream.
pub(crate) fn check_names_tables(buf: &[u8], h: &IndexHeader) -> Result<(), DecodeError> {
    let v = IndexView::with_header(buf, *h);
    let n = h.names;
    if !v.has_names() {
        return Ok(());
    }
    let l = Layout::of(h);
    let bad = |at: usize, what: &'static str, expected: u64, found: u64| {
        Err(DecodeError::new(at, what, expected, found))
    };
    let mut name_at = 0u64;
    let mut check_name = |at: usize, name_entry_at: u32, len: u32, limit: usize| {
        if u64::from(name_entry_at) != name_at || len == 0 || len as usize > limit {
            return bad(at, "index name out of place", name_at, name_entry_at.into());
        }
        name_at += u64::from(len);
        Ok(())
    };
    for i in 0..v.type_count() {
        let at = l.types + i * TYPE_ENTRY_BYTES;
        check_name(
            at,
            v.type_field(i, 0),
            v.type_field(i, 1),
            MAX_EVENT_TYPE_BYTES,
        )?;
        let first = v.type_field(i, 2);
        let want_first = if i == 0 {
            0
        } else {
            v.type_field(i - 1, 2).saturating_add(1)
        };
        if (i == 0 && first != 0) || first < want_first || first >= n.typed_count {
            return bad(
                at + 8,
                "index type table out of order",
                want_first.into(),
                first.into(),
            );
        }
        if i > 0 && v.type_name(i - 1) >= v.type_name(i) {
            return bad(at, "index type names out of order", 0, i as u64);
        }
    }
    if v.type_count() == 0 && n.typed_count != 0 {
        return bad(48, "index type table out of order", 0, n.typed_count.into());
    }
    for i in 0..v.stream_count() {
        let at = l.streams + i * STREAM_NAME_ENTRY_BYTES;
        check_name(
            at,
            u32_at(buf, at),
            u32_at(buf, at + 4),
            MAX_STREAM_ID_BYTES,
        )?;
        if i > 0 && v.stream_name(i - 1) >= v.stream_name(i) {
            return bad(at, "index stream names out of order", 0, i as u64);
        }
    }
    if name_at != u64::from(n.names_len) {
        return bad(56, "index names length", name_at, n.names_len.into());
    }
    let names = (0..v.type_count())
        .map(|i| v.type_name(i))
        .chain((0..v.stream_count()).map(|i| v.stream_name(i)));
    if names.clone().any(|s| std::str::from_utf8(s).is_err()) {
        return bad(l.names, "index names are not UTF-8", 0, 0);
    }
    if (h.event_count > 0) != (n.stream_count > 0) {
        return bad(
            52,
            "index stream count",
            h.event_count.into(),
            n.stream_count.into(),
        );
    }
    for i in 0..v.type_count() {
        let run = v.type_events(i);
        let mut prev: Option<u32> = None;
        for j in run {
            let e = v.type_event(j);
            let at = l.events + j * TYPE_EVENT_ENTRY_BYTES;
            if prev.is_some_and(|p| p >= e.rel_pos) || e.rel_pos >= h.event_count {
                return bad(
                    at,
                    "index type positions out of order",
                    h.event_count.into(),
                    e.rel_pos.into(),
                );
            }
            if e.frame_offset < 64 || e.frame_offset >= h.covered_len {
                return bad(
                    at + 4,
                    "index type position offset outside the segment",
                    h.covered_len.into(),
                    e.frame_offset.into(),
                );
            }
            prev = Some(e.rel_pos);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::index_file::{
        FrameEntry, IdEntry, StreamEntry, check_index_tables, encode_index,
    };
    use crate::workload::Rng;

    #[test]
    fn every_type_and_stream_is_found_with_exactly_its_events() {
        let mut r = Rng::new(7);
        for _ in 0..50 {
            let streams: Vec<String> = (0..1 + r.below(40))
                .map(|i| format!("{}-{i}", ["a", "ab", "b", "é"][r.below(4) as usize]))
                .collect();
            // A few types (searched in a list) or many (in a map).
            let many: Vec<String> = (0..40).map(|i| format!("T{i}")).collect();
            let few = ["T", "Tb", "Ta", "U", "ü"].map(String::from).to_vec();
            let types = if r.below(2) == 0 { few } else { many };
            let mut nb = NamesBuilder::new();
            let mut want: Vec<(String, String)> = Vec::new();
            let n = 1 + r.below(300) as u32;
            for rel_pos in 0..n {
                let s = &streams[r.below(streams.len() as u64) as usize];
                // Some placeholders of dropped events: no type.
                let t = if r.below(10) == 0 {
                    ""
                } else {
                    &types[r.below(types.len() as u64) as usize]
                };
                let at = EventAt {
                    rel_pos,
                    frame_offset: 64 + rel_pos,
                };
                nb.push(s, t, at);
                want.push((s.clone(), t.to_string()));
            }
            // One event per frame, at offset 64 + position.
            let frames: Vec<FrameEntry> = (0..n)
                .map(|p| FrameEntry {
                    rel_first: p,
                    offset: 64 + p,
                })
                .collect();
            let mut versions: HashMap<&str, u64> = HashMap::new();
            let mut entries: Vec<StreamEntry> = want
                .iter()
                .zip(0..n)
                .map(|((s, _), p)| {
                    let v = versions.entry(s).or_insert(0);
                    *v += 1;
                    StreamEntry {
                        hash: crate::wire::stream_hash(s),
                        version: *v - 1,
                        rel_pos: p,
                        frame_offset: 64 + p,
                    }
                })
                .collect();
            entries.sort_unstable();
            let ids: Vec<IdEntry> = (0..n)
                .map(|p| IdEntry {
                    id: u128::from(p).to_be_bytes(),
                    rel_pos: p,
                })
                .collect();
            let b = encode_index(0, 64 + n, 0, &frames, &entries, &ids, Some(&nb));
            let h = IndexHeader::decode(&b).unwrap();
            let v = IndexView::with_header(&b, h);
            check_index_tables(&b, &h).unwrap();
            for t in &types {
                let events: Vec<u32> = (0..n).filter(|&p| want[p as usize].1 == *t).collect();
                match v.find_type(t.as_bytes()) {
                    Some(i) => {
                        let got: Vec<u32> =
                            v.type_events(i).map(|j| v.type_event(j).rel_pos).collect();
                        assert_eq!(got, events, "{t}");
                    }
                    None => assert!(events.is_empty(), "{t}"),
                }
            }
            for prefix in ["", "a", "ab", "b-1", "é", "z"] {
                let mut names: Vec<&[u8]> = v
                    .streams_with_prefix(prefix.as_bytes())
                    .map(|i| v.stream_name(i))
                    .collect();
                let mut expect: Vec<&[u8]> = want
                    .iter()
                    .map(|(s, _)| s.as_bytes())
                    .filter(|s| s.starts_with(prefix.as_bytes()))
                    .collect();
                expect.sort_unstable();
                expect.dedup();
                names.dedup();
                assert_eq!(names, expect, "{prefix}");
            }
        }
    }
}
