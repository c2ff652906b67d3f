//! The data an application appends and reads back.

use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Metadata carried with every event: correlation and causation ids (for tracing a chain of
/// events through sagas and handlers) and free user key/values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Id shared by every event of one business operation.
    pub correlation_id: Option<Uuid>,
    /// Id of the event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// User key/values ("user_id", "source", ...).
    pub extra: Extra,
    /// Opaque metadata bytes, stored and read back as they are (JSON text, protobuf, ...), for
    /// users who keep their metadata in one encoded value; empty when there are none. A reader
    /// gets them borrowed from [`crate::EventRef::metadata_bytes`].
    pub bytes: Vec<u8>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the opaque metadata bytes.
    pub fn with_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.bytes = bytes.into();
        self
    }

    /// Adds a user key/value.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// The user key/values of an event's metadata: a map from strings to strings, sorted by key,
/// held in one allocation (an event read back costs one allocation for all of them, not three
/// per entry as in a `BTreeMap<String, String>`).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Extra {
    /// The entries in key order, each as key length, key, value length, value (lengths as
    /// native `usize` bytes).
    buf: Vec<u8>,
    len: usize,
}

const LEN_BYTES: usize = std::mem::size_of::<usize>();

impl Extra {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in key order.
    pub fn iter(&self) -> ExtraIter<'_> {
        ExtraIter {
            buf: &self.buf,
            left: self.len,
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(_, v)| v)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// True when `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Option<String> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let (start, end, found) = self.locate(key);
        let old = found.then(|| self.entry_at(start).1.to_owned());
        let mut entry = Vec::with_capacity(2 * LEN_BYTES + key.len() + value.len());
        push_str(&mut entry, key);
        push_str(&mut entry, value);
        self.buf.splice(start..end, entry);
        if !found {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let (start, end, found) = self.locate(key);
        if !found {
            return None;
        }
        let old = self.entry_at(start).1.to_owned();
        self.buf.drain(start..end);
        self.len -= 1;
        Some(old)
    }

    /// Where `key` is or would go: the byte range of its entry (empty when absent) and
    /// whether it is there.
    fn locate(&self, key: &str) -> (usize, usize, bool) {
        let mut at = 0;
        for _ in 0..self.len {
            let (k, _, next) = self.entry_at(at);
            match k.cmp(key) {
                std::cmp::Ordering::Less => at = next,
                std::cmp::Ordering::Equal => return (at, next, true),
                std::cmp::Ordering::Greater => break,
            }
        }
        (at, at, false)
    }

    /// The entry starting at byte `at`, and where the next one starts.
    fn entry_at(&self, at: usize) -> (&str, &str, usize) {
        let (k, at) = str_at(&self.buf, at);
        let (v, at) = str_at(&self.buf, at);
        (k, v, at)
    }

    /// The map held by an encoded record's metadata entries (`raw`: `count` times key length as
    /// a little-endian `u16`, key, value length as a little-endian `u32`, value), laid out in
    /// one pass without decoding the strings again, when the keys are in strictly increasing
    /// order as the encoder writes them. `None` when they are not, or when `raw` does not hold
    /// `count` whole entries. The record decoder has checked that every key and value is
    /// UTF-8; bytes that are not would make the map's accessors panic, never misread.
    pub(crate) fn from_record_entries(raw: &[u8], count: usize) -> Option<Self> {
        let mut buf = Vec::with_capacity(raw.len() + (2 * LEN_BYTES).saturating_sub(6) * count);
        let mut at = 0;
        let mut last: Option<&[u8]> = None;
        for _ in 0..count {
            let kl = usize::from(u16::from_le_bytes(raw.get(at..at + 2)?.try_into().ok()?));
            let key = raw.get(at + 2..at + 2 + kl)?;
            at += 2 + kl;
            let vl = u32::from_le_bytes(raw.get(at..at + 4)?.try_into().ok()?) as usize;
            let value = raw.get(at + 4..at + 4 + vl)?;
            at += 4 + vl;
            // Byte order is the order of the strings.
            if last.is_some_and(|l| l >= key) {
                return None;
            }
            last = Some(key);
            buf.extend_from_slice(&kl.to_ne_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(&vl.to_ne_bytes());
            buf.extend_from_slice(value);
        }
        Some(Extra { buf, len: count })
    }

    /// A map of `entries` already in strictly increasing key order, as a decoded record holds
    /// them (anything else is sorted in one entry at a time). `bytes` is their total length,
    /// for the one allocation.
    pub(crate) fn from_sorted<'a>(
        entries: impl Iterator<Item = (&'a str, &'a str)>,
        bytes: usize,
        count: usize,
    ) -> Self {
        let mut m = Extra {
            buf: Vec::with_capacity(bytes + 2 * LEN_BYTES * count),
            len: 0,
        };
        let mut entries = entries.peekable();
        let mut last: Option<&str> = None;
        while let Some((k, v)) = entries.next_if(|(k, _)| last.is_none_or(|l| l < *k)) {
            push_str(&mut m.buf, k);
            push_str(&mut m.buf, v);
            m.len += 1;
            last = Some(k);
        }
        if entries.peek().is_none() {
            return m;
        }
        // Out of order from here: sort the whole set once (a stable sort, so the last value of
        // a key stays last), keep each key's last value, and lay the buffer out again.
        let mut all: Vec<(&str, &str)> = m.iter().collect();
        for (k, v) in entries {
            all.push((k, v));
        }
        all.sort_by_key(|(k, _)| *k);
        let mut out = Extra {
            buf: Vec::with_capacity(m.buf.capacity()),
            len: 0,
        };
        for (i, (k, v)) in all.iter().enumerate() {
            if all.get(i + 1).is_some_and(|(next, _)| next == k) {
                continue;
            }
            push_str(&mut out.buf, k);
            push_str(&mut out.buf, v);
            out.len += 1;
        }
        out
    }
}

fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&s.len().to_ne_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The string at byte `at` of an [`Extra`]'s buffer, and where the next one starts. Only
/// `push_str` writes the buffer, so the length is there and the bytes are UTF-8.
fn str_at(buf: &[u8], at: usize) -> (&str, usize) {
    let n = usize::from_ne_bytes(buf[at..at + LEN_BYTES].try_into().expect("length bytes"));
    let start = at + LEN_BYTES;
    let s = std::str::from_utf8(&buf[start..start + n]).expect("written from a str");
    (s, start + n)
}

/// The entries of an [`Extra`] in key order.
#[derive(Clone)]
pub struct ExtraIter<'a> {
    buf: &'a [u8],
    left: usize,
}

impl<'a> Iterator for ExtraIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (k, at) = str_at(self.buf, 0);
        let (v, at) = str_at(self.buf, at);
        self.buf = &self.buf[at..];
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ExtraIter<'_> {}

impl std::fmt::Debug for ExtraIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.clone()).finish()
    }
}

impl<'a> IntoIterator for &'a Extra {
    type Item = (&'a str, &'a str);
    type IntoIter = ExtraIter<'a>;

    fn into_iter(self) -> ExtraIter<'a> {
        self.iter()
    }
}

impl IntoIterator for Extra {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    /// The entries in key order, as owned strings.
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl std::ops::Index<&str> for Extra {
    type Output = str;

    /// The value of `key`; panics when there is none (as a `BTreeMap` does).
    fn index(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no metadata entry {key:?}"))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Extra {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Extra {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        // Sorted once, then laid out in one pass.
        let map: BTreeMap<String, String> = iter
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        map.into()
    }
}

impl From<BTreeMap<String, String>> for Extra {
    fn from(map: BTreeMap<String, String>) -> Self {
        let bytes = map.iter().map(|(k, v)| k.len() + v.len()).sum();
        Extra::from_sorted(
            map.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            bytes,
            map.len(),
        )
    }
}

impl std::fmt::Debug for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// An event to append. Every event has an id; [`EventData::new`] generates a random one, and
/// [`EventData::with_id`] sets the caller's (re-sending the same ids makes an append idempotent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    /// Unique id of the event.
    pub id: Uuid,
    /// Type name, e.g. `"AIResultCompletedEvent"`. Must not be empty.
    pub event_type: String,
    /// Opaque payload bytes (JSON, bincode, ...). May be empty.
    pub payload: Vec<u8>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
}

impl EventData {
    /// An event with a fresh random id and empty metadata.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        EventData {
            id: Uuid::new_v4(),
            event_type: event_type.into(),
            payload: payload.into(),
            metadata: Metadata::default(),
        }
    }

    /// Replaces the id.
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// An event as stored: the appended data plus where and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The stream (aggregate) it belongs to.
    pub stream: Arc<str>,
    /// Its version in the stream: 0 for the stream's first event, then dense.
    pub version: u64,
    /// Its global position: 0 for the store's first event, then dense across all streams.
    pub position: u64,
    /// Time of the append, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Unique id.
    pub id: Uuid,
    /// Type name. An `Arc`, so that a read's events of one type can share it (compare it as
    /// `&*e.event_type == "OrderPlaced"`).
    pub event_type: Arc<str>,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Metadata.
    pub metadata: Metadata,
}

#[cfg(test)]
impl RecordedEvent {
    /// `data` as if stored first in `stream` at position 0: for tests of record decoders.
    pub(crate) fn stored_as(stream: &str, data: EventData) -> RecordedEvent {
        RecordedEvent {
            stream: Arc::from(stream),
            version: 0,
            position: 0,
            timestamp_us: 0,
            id: data.id,
            event_type: Arc::from(data.event_type.as_str()),
            payload: data.payload,
            metadata: data.metadata,
        }
    }
}

/// The optimistic-concurrency condition of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// True when a stream whose last version is `actual` (None: no events) satisfies this.
    pub fn matches(&self, actual: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(*v),
        }
    }
}

/// What an append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Global position of the first appended event.
    pub first_position: u64,
    /// Global position of the last appended event.
    pub last_position: u64,
    /// Version of the stream's last event now: pass it as `ExpectedVersion::Exact` next time.
    pub next_expected_version: u64,
}

/// Direction of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// Which events `read_all` returns. The default lets every event through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// Only events whose type is one of these (all types when `None`).
    pub event_types: Option<Vec<String>>,
    /// Only events whose stream id starts with this.
    pub stream_prefix: Option<String>,
}

impl ReadFilter {
    /// A filter that lets every event through.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these event types.
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Only streams whose id starts with `prefix`.
    pub fn stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.stream_prefix = Some(prefix.into());
        self
    }

    /// True when an event whose stream id and type have these bytes passes.
    pub fn matches_bytes(&self, stream: &[u8], event_type: &[u8]) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t.as_bytes() == event_type))
            && self
                .stream_prefix
                .as_ref()
                .is_none_or(|p| stream.starts_with(p.as_bytes()))
    }

    /// True when every event passes.
    pub fn is_all(&self) -> bool {
        self.event_types.is_none() && self.stream_prefix.is_none()
    }

    /// True when an event of `event_type` in `stream` passes.
    pub fn matches(&self, stream: &str, event_type: &str) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t == event_type))
            && self
                .stream_prefix
                .as_ref()
                .is_none_or(|p| stream.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, String),
        Remove(String),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few short keys, so that inserts replace and removes hit.
        let key = "[a-d]{0,2}|ключ";
        prop_oneof![
            3 => (key, ".{0,8}").prop_map(|(k, v)| Op::Insert(k, v)),
            1 => key.prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// `Extra` behaves as a `BTreeMap<String, String>` under any inserts and removes.
        #[test]
        fn extra_is_a_sorted_map(ops in proptest::collection::vec(op(), 0..40)) {
            let mut m = Extra::new();
            let mut want = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(m.insert(&k, &v), want.insert(k, v));
                    }
                    Op::Remove(k) => prop_assert_eq!(m.remove(&k), want.remove(&k)),
                }
                prop_assert_eq!(m.len(), want.len());
                prop_assert!(m.iter().eq(want.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
            }
            for (k, v) in &want {
                prop_assert_eq!(m.get(k), Some(v.as_str()));
            }
            prop_assert_eq!(m.get("zz"), None);
            prop_assert_eq!(Extra::from(want.clone()), m.clone());
            prop_assert_eq!(want.iter().collect::<Extra>(), m);
        }

        /// A record's metadata entries are laid out as they are when their keys are in
        /// order, and refused (for `from_sorted` to sort them) when not.
        #[test]
        fn from_record_entries_copies_entries_in_order_only(
            pairs in proptest::collection::vec(("[a-c]{0,2}|ключ", ".{0,4}"), 0..8)
        ) {
            let mut raw = Vec::new();
            for (k, v) in &pairs {
                raw.extend_from_slice(&(k.len() as u16).to_le_bytes());
                raw.extend_from_slice(k.as_bytes());
                raw.extend_from_slice(&(v.len() as u32).to_le_bytes());
                raw.extend_from_slice(v.as_bytes());
            }
            let in_order = pairs.windows(2).all(|w| w[0].0 < w[1].0);
            match Extra::from_record_entries(&raw, pairs.len()) {
                Some(m) => {
                    prop_assert!(in_order);
                    prop_assert!(m.iter().eq(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
                    prop_assert_eq!(m.len(), pairs.len());
                }
                None => prop_assert!(!in_order),
            }
            // Entries cut short are refused, never read past.
            if let Some(cut) = raw.len().checked_sub(1) {
                prop_assert!(Extra::from_record_entries(&raw[..cut], pairs.len()).is_none());
            }
        }

        /// Entries in any order (as a damaged or foreign record could hold them) come out
        /// sorted, the last value of a key winning, as inserting them one by one would give.
        #[test]
        fn from_sorted_sorts_what_is_not(pairs in proptest::collection::vec(("[a-c]{0,2}", "[x-z]{0,3}"), 0..12)) {
            let bytes = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
            let m = Extra::from_sorted(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), bytes, pairs.len());
            let mut want = BTreeMap::new();
            for (k, v) in &pairs {
                want.insert(k.clone(), v.clone());
            }
            prop_assert!(m.iter().eq(want.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
            prop_assert_eq!(m.len(), want.len());
        }
    }

    #[test]
    fn extra_index_and_debug_read_like_a_map() {
        let m = Metadata::new().with("b", "2").with("a", "1").extra;
        assert_eq!(&m["a"], "1");
        assert_eq!(m.values().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(
            m.clone().into_iter().collect::<Vec<_>>(),
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(format!("{m:?}"), r#"{"a": "1", "b": "2"}"#);
        assert!(std::panic::catch_unwind(|| m["c"].len()).is_err());
    }
}
