//! Snapshots (`evlog::snapshot`): a load from a snapshot equals a full replay; damaged,
//! truncated, undecodable and mismatched snapshots fall back to the events with the reason
//! reported; retention; automatic snapshots; crash safety; and the format section of
//! `format/FORMAT.md` (§ 20) pinned to the code. Every assertion is on outcomes, never on time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evlog::snapshot::format::{self, decode_snapshot, encode_snapshot, offsets};
use evlog::snapshot::{
    Aggregate, IgnoredReason, Loaded, SnapshotPolicy, SnapshotStore, parse_snapshot_file_name,
    snapshot_file_name,
};
use evlog::wire::stream_hash;
use evlog::workload::Rng;
use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, RecordedEvent, Store, StoreOptions,
};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// An aggregate whose state depends on every event, its order, and each being applied once.

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    balance: i64,
    applied: u64,
    last_version: Option<u64>,
    digest: u64,
    by_type: BTreeMap<String, u32>,
    notes: Vec<String>,
}

impl Aggregate for Ledger {
    const SCHEMA_VERSION: u32 = 7;

    fn apply(&mut self, e: &RecordedEvent) {
        assert_eq!(
            e.version,
            self.last_version.map_or(0, |v| v + 1),
            "events out of order or applied twice"
        );
        let amount = i64::from_le_bytes(e.payload[..8].try_into().unwrap());
        match &*e.event_type {
            "Deposit" => self.balance += amount,
            "Withdraw" => self.balance -= amount,
            _ => self.balance = self.balance.wrapping_mul(3) ^ amount,
        }
        if e.payload.len() > 8 {
            self.notes
                .push(String::from_utf8_lossy(&e.payload[8..]).into_owned());
        }
        self.applied += 1;
        self.last_version = Some(e.version);
        *self.by_type.entry(e.event_type.to_string()).or_default() += 1;
        self.digest = self.digest.rotate_left(7) ^ stream_hash(&format!("{}:{amount}", e.version));
    }
}

/// The same events, another (incompatible) shape of state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct LedgerV8 {
    total: u64,
}

impl Aggregate for LedgerV8 {
    const SCHEMA_VERSION: u32 = 8;
    fn apply(&mut self, _e: &RecordedEvent) {
        self.total += 1;
    }
}

fn random_event(rng: &mut Rng) -> EventData {
    let ty = ["Deposit", "Withdraw", "Rebase"][rng.below(3) as usize];
    let mut payload = (rng.below(1_000) as i64).to_le_bytes().to_vec();
    if rng.below(4) == 0 {
        payload.extend_from_slice(format!("note-{}", rng.below(100)).as_bytes());
    }
    EventData::new(ty, payload)
}

fn append_random(store: &Store, stream: &str, n: u64, rng: &mut Rng) {
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let events: Vec<_> = (0..k).map(|_| random_event(rng)).collect();
        store
            .append(stream, ExpectedVersion::Any, &events)
            .expect("append");
        left -= k;
    }
}

/// The aggregate folded from every event, without snapshots.
fn full_replay<A: Aggregate>(store: &Store, stream: &str) -> (A, Option<u64>) {
    let mut state = A::default();
    let mut version = None;
    for e in store.read_stream(stream, 0, Direction::Forward, usize::MAX) {
        let e = e.expect("read");
        state.apply(&e);
        version = Some(e.version);
    }
    (state, version)
}

fn open_store(dir: &Path) -> Store {
    StoreOptions::new()
        .durability(Durability::Never)
        .open(dir)
        .expect("open store")
}

struct Fixture {
    _dir: TempDir,
    store: Store,
    snaps: SnapshotStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let snaps = SnapshotStore::open(&store);
    Fixture {
        _dir: dir,
        store,
        snaps,
    }
}

/// A stream of `n` random events with one snapshot of its state after version `at`; returns
/// the snapshot file's path.
fn stream_with_snapshot(f: &Fixture, stream: &str, n: u64, at: u64, seed: u64) -> PathBuf {
    let mut rng = Rng::new(seed);
    append_random(&f.store, stream, at + 1, &mut rng);
    let loaded = f.snaps.load::<Ledger>(&f.store, stream).unwrap();
    assert_eq!(loaded.version, Some(at));
    let info = f.snaps.save_state(stream, at, &loaded.state).unwrap();
    append_random(&f.store, stream, n - at - 1, &mut rng);
    info.path
}

/// Asserts that `loaded` was rebuilt from every event (no snapshot used), equals a full replay,
/// and that the newest snapshot was ignored for `reason`.
fn assert_fell_back(f: &Fixture, stream: &str, loaded: &Loaded<Ledger>, reason: IgnoredReason) {
    let (want, version) = full_replay::<Ledger>(&f.store, stream);
    assert_eq!(loaded.state, want);
    assert_eq!(loaded.version, version);
    assert!(!loaded.used_snapshot(), "a snapshot was used: {loaded:?}");
    assert_eq!(loaded.events_applied, version.map_or(0, |v| v + 1));
    assert_eq!(
        loaded.snapshot_ignored(),
        Some(reason),
        "{:?}",
        loaded.ignored
    );
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn write(p: &Path, b: &[u8]) {
    std::fs::write(p, b).unwrap()
}

/// Recomputes the header checksum after a test edited header fields on purpose.
fn reseal(file: &mut [u8]) {
    let crc = crc32fast::hash(&file[..offsets::HEADER_CRC]);
    file[offsets::HEADER_CRC..offsets::HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
}

fn put_u32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn at_days(days: u64) -> SystemTime {
    // A fixed origin (2026-01-01) so that nothing depends on the clock.
    UNIX_EPOCH + Duration::from_secs(1_767_225_600 + days * 86_400)
}

// ---------------------------------------------------------------------------------------------
// Snapshot + later events = full replay.

#[test]
fn snapshot_plus_later_events_equals_full_replay_for_random_aggregates() {
    for seed in 0..12u64 {
        let f = fixture();
        let mut rng = Rng::new(seed);
        let policy = SnapshotPolicy {
            interval_versions: 1 + rng.below(40),
            ..SnapshotPolicy::default()
        };
        let snaps = SnapshotStore::open(&f.store).with_policy(policy);
        let streams = ["acct-1", "acct-2", "saga/ai-score"];
        let mut last_snapshot: BTreeMap<&str, Option<u64>> = BTreeMap::new();
        for round in 0..15 {
            let stream = streams[rng.below(streams.len() as u64) as usize];
            append_random(&f.store, stream, 1 + rng.below(30), &mut rng);
            let loaded = snaps.load_and_snapshot::<Ledger>(&f.store, stream).unwrap();
            let (want, version) = full_replay::<Ledger>(&f.store, stream);
            let ctx = format!("seed {seed} round {round} stream {stream}");
            assert_eq!(loaded.state, want, "{ctx}");
            assert_eq!(loaded.version, version, "{ctx}");
            assert!(loaded.ignored.is_empty(), "{ctx}: {:?}", loaded.ignored);
            let prev = *last_snapshot.entry(stream).or_default();
            assert_eq!(loaded.snapshot_version, prev, "{ctx}");
            let start = prev.map_or(0, |v| v + 1);
            assert_eq!(loaded.events_applied, version.unwrap() + 1 - start, "{ctx}");
            let due = loaded.events_applied >= policy.interval_versions;
            assert_eq!(
                loaded.snapshot_saved,
                due.then_some(version.unwrap()),
                "{ctx}"
            );
            assert!(loaded.snapshot_error.is_none(), "{ctx}");
            if due {
                last_snapshot.insert(stream, version);
            }
        }
    }
}

#[test]
fn snapshots_at_random_versions_all_load_to_the_full_replay() {
    let f = fixture();
    let mut rng = Rng::new(99);
    append_random(&f.store, "acct", 300, &mut rng);
    let (want, _) = full_replay::<Ledger>(&f.store, "acct");
    for _ in 0..20 {
        // A snapshot at a random version, taken from a replay stopped there.
        let at = rng.below(300);
        let mut state = Ledger::default();
        for e in f
            .store
            .read_stream("acct", 0, Direction::Forward, at as usize + 1)
        {
            state.apply(&e.unwrap());
        }
        f.snaps.save_state("acct", at, &state).unwrap();
        let newest = f
            .snaps
            .list()
            .unwrap()
            .iter()
            .map(|e| e.name_version)
            .max()
            .unwrap();
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_eq!(loaded.state, want);
        assert_eq!(loaded.snapshot_version, Some(newest));
        assert_eq!(loaded.events_applied, 299 - newest);
    }
}

#[test]
fn ten_thousand_events_with_a_snapshot_after_9900_apply_only_100() {
    let f = fixture();
    let mut rng = Rng::new(10_000);
    // Versions 0..=9_899 are the first 9,900 events; the snapshot holds their state.
    let path = stream_with_snapshot(&f, "big", 10_000, 9_899, 7);
    assert!(path.ends_with(snapshot_file_name(stream_hash("big"), 9_899)));
    let loaded = f.snaps.load::<Ledger>(&f.store, "big").unwrap();
    assert_eq!(loaded.snapshot_version, Some(9_899));
    assert_eq!(loaded.events_applied, 100);
    assert_eq!(loaded.version, Some(9_999));
    let (want, _) = full_replay::<Ledger>(&f.store, "big");
    assert_eq!(loaded.state, want);
    assert_eq!(loaded.state.applied, 10_000);
    // And after 50 more events, 150.
    append_random(&f.store, "big", 50, &mut rng);
    let loaded = f.snaps.load::<Ledger>(&f.store, "big").unwrap();
    assert_eq!(loaded.events_applied, 150);
}

#[test]
fn a_stream_without_events_or_snapshots_loads_the_default_state() {
    let f = fixture();
    let loaded = f
        .snaps
        .load_and_snapshot::<Ledger>(&f.store, "nobody")
        .unwrap();
    assert_eq!(loaded.state, Ledger::default());
    assert_eq!((loaded.version, loaded.events_applied), (None, 0));
    assert!(loaded.ignored.is_empty() && loaded.snapshot_saved.is_none());
    assert!(
        !f.snaps.dir().exists(),
        "a load without a save created the directory"
    );
}

#[test]
fn snapshots_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path());
        append_random(&store, "acct", 120, &mut Rng::new(1));
        let loaded = SnapshotStore::open(&store)
            .load_and_snapshot::<Ledger>(&store, "acct")
            .unwrap();
        assert_eq!(loaded.snapshot_saved, Some(119));
        store.close().unwrap();
    }
    let store = open_store(dir.path());
    let loaded = SnapshotStore::open(&store)
        .load::<Ledger>(&store, "acct")
        .unwrap();
    assert_eq!(
        (loaded.snapshot_version, loaded.events_applied),
        (Some(119), 0)
    );
    assert_eq!(loaded.state, full_replay::<Ledger>(&store, "acct").0);
    assert!(store.verify().unwrap().problems.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Damaged and mismatched snapshots fall back to the events.

#[test]
fn a_bit_flip_anywhere_in_the_header_is_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 1);
    let good = read(&path);
    for byte in 0..format::SNAPSHOT_HEADER_BYTES {
        for bit in [0, 3, 7] {
            let mut bad = good.clone();
            bad[byte] ^= 1 << bit;
            write(&path, &bad);
            let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
            let want = if byte < 8 {
                IgnoredReason::BadMagic
            } else {
                IgnoredReason::HeaderChecksum
            };
            assert_fell_back(&f, "acct", &loaded, want);
        }
    }
    write(&path, &good);
    assert_eq!(
        f.snaps
            .load::<Ledger>(&f.store, "acct")
            .unwrap()
            .snapshot_version,
        Some(39)
    );
}

#[test]
fn a_bit_flip_in_the_stream_id_or_the_body_is_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct-with-a-longer-id", 60, 39, 2);
    let good = read(&path);
    let body_at = format::SNAPSHOT_HEADER_BYTES + "acct-with-a-longer-id".len();
    let mut rng = Rng::new(5);
    for _ in 0..40 {
        let mut bad = good.clone();
        let at = format::SNAPSHOT_HEADER_BYTES
            + rng.below((good.len() - format::SNAPSHOT_HEADER_BYTES) as u64) as usize;
        bad[at] ^= 1 << rng.below(8);
        write(&path, &bad);
        let loaded = f
            .snaps
            .load::<Ledger>(&f.store, "acct-with-a-longer-id")
            .unwrap();
        let want = if at < body_at {
            IgnoredReason::StreamIdDamaged
        } else {
            IgnoredReason::BodyChecksum
        };
        assert_fell_back(&f, "acct-with-a-longer-id", &loaded, want);
    }
}

#[test]
fn a_wrong_stored_checksum_is_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 3);
    let good = read(&path);
    // The header checksum itself.
    let mut bad = good.clone();
    bad[offsets::HEADER_CRC + 2] ^= 0x10;
    write(&path, &bad);
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::HeaderChecksum);
    // The body and stream checksums, with the header resealed so only they are wrong.
    for (field, reason) in [
        (offsets::BODY_CRC, IgnoredReason::BodyChecksum),
        (offsets::STREAM_CRC, IgnoredReason::StreamIdDamaged),
    ] {
        let mut bad = good.clone();
        bad[field] ^= 0x01;
        reseal(&mut bad);
        write(&path, &bad);
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_fell_back(&f, "acct", &loaded, reason);
    }
}

#[test]
fn truncated_and_extended_files_are_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 4);
    let good = read(&path);
    for len in (0..good.len()).step_by(3).chain([good.len() - 1]) {
        write(&path, &good[..len]);
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_fell_back(&f, "acct", &loaded, IgnoredReason::Truncated);
    }
    let mut longer = good.clone();
    longer.push(0);
    write(&path, &longer);
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::TrailingBytes);
}

#[test]
fn an_all_zero_file_is_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 4);
    let len = read(&path).len();
    write(&path, &vec![0; len]);
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::BadMagic);
}

#[test]
fn a_body_that_does_not_decompress_is_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 5);
    let good = read(&path);
    let body_at = format::SNAPSHOT_HEADER_BYTES + "acct".len();
    // Not zstd at all, with every checksum right.
    let garbage = b"this is not a zstd frame".to_vec();
    let mut bad = good[..body_at].to_vec();
    bad.extend_from_slice(&garbage);
    put_u32(&mut bad, offsets::COMPRESSED_LEN, garbage.len() as u32);
    put_u32(&mut bad, offsets::BODY_CRC, crc32fast::hash(&garbage));
    reseal(&mut bad);
    write(&path, &bad);
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::Decompress);
    // Valid zstd, but not the length the header records (longer and shorter).
    let state_len = u32::from_le_bytes(good[44..48].try_into().unwrap());
    for wrong in [state_len - 1, state_len + 1, 0] {
        let mut bad = good.clone();
        put_u32(&mut bad, offsets::STATE_LEN, wrong);
        reseal(&mut bad);
        write(&path, &bad);
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_fell_back(&f, "acct", &loaded, IgnoredReason::Decompress);
    }
}

#[test]
fn a_state_that_does_not_deserialize_is_ignored() {
    let f = fixture();
    let mut rng = Rng::new(6);
    append_random(&f.store, "acct", 50, &mut rng);
    // Right schema version, bytes that are not a Ledger.
    f.snaps
        .save("acct", 40, Ledger::SCHEMA_VERSION, &[0xff; 3])
        .unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::Deserialize);
    // A valid Ledger followed by a stray byte.
    let (state, _) = full_replay::<Ledger>(&f.store, "acct");
    let mut bytes = evlog::snapshot::encode_state(&state).unwrap();
    bytes.push(0);
    f.snaps
        .save("acct", 49, Ledger::SCHEMA_VERSION, &bytes)
        .unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::Deserialize);
}

#[test]
fn a_snapshot_of_another_schema_version_is_ignored() {
    let f = fixture();
    let mut rng = Rng::new(7);
    append_random(&f.store, "acct", 80, &mut rng);
    let other = LedgerV8 { total: 1234 };
    f.snaps.save_state("acct", 70, &other).unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::SchemaMismatch);
    // The other aggregate does use it.
    let v8 = f.snaps.load::<LedgerV8>(&f.store, "acct").unwrap();
    assert_eq!((v8.state.total, v8.events_applied), (1234 + 9, 9));
}

#[test]
fn a_snapshot_past_the_end_of_the_stream_is_ignored() {
    let f = fixture();
    let mut rng = Rng::new(8);
    append_random(&f.store, "acct", 10, &mut rng);
    f.snaps.save_state("acct", 25, &Ledger::default()).unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::VersionAhead);
    // And for a stream with no events at all.
    f.snaps.save_state("ghost", 0, &Ledger::default()).unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "ghost").unwrap();
    assert_eq!(loaded.version, None);
    assert_eq!(loaded.snapshot_ignored(), Some(IgnoredReason::VersionAhead));
}

/// A named change to a snapshot file, and the reason a load must give for ignoring it.
type Damage = (&'static str, fn(&mut Vec<u8>), IgnoredReason);

#[test]
fn other_format_versions_limits_and_names_are_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 9);
    let good = read(&path);
    let cases: [Damage; 5] = [
        (
            "format version 2",
            |b| b[offsets::VERSION] = 2,
            IgnoredReason::UnsupportedVersion,
        ),
        (
            "state over MAX_SNAPSHOT_BYTES",
            |b| put_u32(b, offsets::STATE_LEN, format::MAX_SNAPSHOT_BYTES as u32 + 1),
            IgnoredReason::LengthOverLimit,
        ),
        (
            "empty stream id",
            |b| b[offsets::STREAM_LEN..offsets::STREAM_LEN + 2].copy_from_slice(&[0, 0]),
            IgnoredReason::LengthOverLimit,
        ),
        (
            "body over its limit",
            |b| put_u32(b, offsets::COMPRESSED_LEN, u32::MAX),
            IgnoredReason::LengthOverLimit,
        ),
        (
            "header names another version",
            |b| b[offsets::STREAM_VERSION] ^= 1,
            IgnoredReason::NameMismatch,
        ),
    ];
    for (what, damage, reason) in cases {
        let mut bad = good.clone();
        damage(&mut bad);
        reseal(&mut bad);
        write(&path, &bad);
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_eq!(loaded.snapshot_ignored(), Some(reason), "{what}");
        assert_fell_back(&f, "acct", &loaded, reason);
    }
}

#[test]
fn a_file_larger_than_the_limit_is_ignored_without_being_read() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 39, 10);
    // Sparse: the length is what is checked, before anything is read.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(format::MAX_SNAPSHOT_FILE_BYTES as u64 + 1)
        .unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_fell_back(&f, "acct", &loaded, IgnoredReason::LengthOverLimit);
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_next_older_one() {
    let f = fixture();
    let mut rng = Rng::new(11);
    append_random(&f.store, "acct", 100, &mut rng);
    let snaps = SnapshotStore::open(&f.store).with_policy(SnapshotPolicy {
        interval_versions: 30,
        ..SnapshotPolicy::default()
    });
    assert_eq!(
        snaps
            .load_and_snapshot::<Ledger>(&f.store, "acct")
            .unwrap()
            .snapshot_saved,
        Some(99)
    );
    append_random(&f.store, "acct", 40, &mut rng);
    assert_eq!(
        snaps
            .load_and_snapshot::<Ledger>(&f.store, "acct")
            .unwrap()
            .snapshot_saved,
        Some(139)
    );
    append_random(&f.store, "acct", 10, &mut rng);
    let newest = snaps
        .dir()
        .join(snapshot_file_name(stream_hash("acct"), 139));
    let mut bad = read(&newest);
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    write(&newest, &bad);
    let loaded = snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_eq!(loaded.snapshot_version, Some(99));
    assert_eq!(loaded.events_applied, 50);
    assert_eq!(loaded.ignored.len(), 1);
    assert_eq!(loaded.ignored[0].version, 139);
    assert_eq!(loaded.ignored[0].file, newest);
    assert_eq!(loaded.ignored[0].reason, IgnoredReason::BodyChecksum);
    assert_eq!(loaded.state, full_replay::<Ledger>(&f.store, "acct").0);
}

#[test]
fn a_file_renamed_to_another_streams_name_is_ignored() {
    let f = fixture();
    let mut rng = Rng::new(12);
    append_random(&f.store, "a", 20, &mut rng);
    append_random(&f.store, "b", 20, &mut rng);
    let b = f.snaps.save_state("b", 10, &Ledger::default()).unwrap();
    let as_a = f.snaps.dir().join(snapshot_file_name(stream_hash("a"), 10));
    std::fs::rename(&b.path, &as_a).unwrap();
    let loaded = f.snaps.load::<Ledger>(&f.store, "a").unwrap();
    assert_fell_back(&f, "a", &loaded, IgnoredReason::NameMismatch);
}

#[test]
fn decoders_never_panic_on_mutated_files() {
    let state: Vec<u8> = (0..2_000u32).map(|i| (i % 251) as u8).collect();
    let good = encode_snapshot("order-1", 41, 3, 1, &state).unwrap();
    let (h, stream, got) = decode_snapshot(&good).unwrap();
    assert_eq!(
        (stream, h.stream_version, h.schema_version),
        ("order-1", 41, 3)
    );
    assert_eq!(got, state);
    let mut rng = Rng::new(13);
    for _ in 0..3_000 {
        let mut bad = good.clone();
        match rng.below(4) {
            0 => {
                let at = rng.below(bad.len() as u64) as usize;
                bad[at] ^= 1 << rng.below(8);
            }
            1 => bad.truncate(rng.below(bad.len() as u64) as usize),
            2 => {
                let at = rng.below(64) as usize;
                bad[at] = rng.next_u64() as u8;
                reseal(&mut bad);
            }
            _ => {
                for b in bad.iter_mut().skip(rng.below(good.len() as u64) as usize) {
                    *b = rng.next_u64() as u8;
                }
            }
        }
        if let Ok((_, _, got)) = decode_snapshot(&bad) {
            // Only a change the checksums cannot see (a resealed header field the reader does
            // not interpret) may still decode, and then to the same state.
            assert_eq!(got, state);
        }
        let _ = evlog::snapshot::decode_state::<Ledger>(&bad);
    }
}

// ---------------------------------------------------------------------------------------------
// Retention.

fn retention_store(f: &Fixture, days: u64) -> SnapshotStore {
    SnapshotStore::open(&f.store).with_policy(SnapshotPolicy {
        retention: Duration::from_secs(days * 86_400),
        ..SnapshotPolicy::default()
    })
}

fn versions_on_disk(s: &SnapshotStore, stream: &str) -> Vec<u64> {
    let mut v: Vec<u64> = s
        .list()
        .unwrap()
        .into_iter()
        .filter(|e| e.info.as_ref().is_ok_and(|i| i.stream == stream))
        .map(|e| e.name_version)
        .collect();
    v.sort();
    v
}

#[test]
fn prune_deletes_snapshots_older_than_the_retention() {
    let f = fixture();
    let s = retention_store(&f, 30);
    for (version, day) in [(10, 0), (20, 5), (30, 20), (40, 44)] {
        s.save_at("acct", version, 1, b"x", at_days(day)).unwrap();
    }
    // At day 45: 10 (45 days old) and 20 (40) go; 30 (25) and 40 (1) stay.
    let report = s.prune(at_days(45)).unwrap();
    assert_eq!(report.deleted.len(), 2);
    assert_eq!(report.kept, 2);
    assert_eq!(versions_on_disk(&s, "acct"), [30, 40]);
    // Exactly the retention old is not older than it.
    let report = s.prune(at_days(50)).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    let report = s.prune(at_days(50) + Duration::from_secs(1)).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(versions_on_disk(&s, "acct"), [40]);
}

#[test]
fn prune_always_keeps_the_latest_snapshot_of_a_stream() {
    let f = fixture();
    let s = retention_store(&f, 30);
    for version in [5, 6, 7] {
        s.save_at("acct", version, 1, b"x", at_days(version))
            .unwrap();
    }
    let report = s.prune(at_days(10_000)).unwrap();
    assert_eq!(report.deleted.len(), 2);
    assert_eq!(versions_on_disk(&s, "acct"), [7]);
    // Again: nothing more goes.
    assert!(s.prune(at_days(20_000)).unwrap().deleted.is_empty());
    assert_eq!(versions_on_disk(&s, "acct"), [7]);
    // The latest is the highest version, not the newest file.
    s.save_at("acct", 3, 1, b"x", at_days(20_000)).unwrap();
    s.prune(at_days(20_000)).unwrap();
    assert_eq!(versions_on_disk(&s, "acct"), [3, 7]);
    s.prune(at_days(20_031)).unwrap();
    assert_eq!(versions_on_disk(&s, "acct"), [7]);
}

#[test]
fn prune_treats_each_stream_on_its_own() {
    let f = fixture();
    let s = retention_store(&f, 7);
    // a: all old; b: old and new; c: one old snapshot only; d: all young.
    for (stream, version, day) in [
        ("a", 1, 0),
        ("a", 2, 1),
        ("b", 1, 0),
        ("b", 2, 90),
        ("b", 3, 99),
        ("c", 9, 0),
        ("d", 1, 97),
        ("d", 2, 98),
    ] {
        s.save_at(stream, version, 1, stream.as_bytes(), at_days(day))
            .unwrap();
    }
    let report = s.prune(at_days(100)).unwrap();
    assert_eq!(versions_on_disk(&s, "a"), [2]);
    assert_eq!(versions_on_disk(&s, "b"), [3]);
    assert_eq!(versions_on_disk(&s, "c"), [9]);
    assert_eq!(versions_on_disk(&s, "d"), [1, 2]);
    assert_eq!((report.deleted.len(), report.kept), (3, 5));
    for stream in ["a", "b", "c", "d"] {
        let latest = s.latest(stream, 1, Some(100)).unwrap().snapshot.unwrap();
        assert_eq!(latest.state, stream.as_bytes());
    }
}

#[test]
fn prune_deletes_damaged_and_temp_files_and_leaves_others_alone() {
    let f = fixture();
    let s = retention_store(&f, 30);
    let good = s.save_at("acct", 5, 1, b"x", at_days(0)).unwrap();
    let damaged = s.save_at("acct", 9, 1, b"y", at_days(0)).unwrap();
    let mut bytes = read(&damaged.path);
    bytes[20] ^= 1;
    write(&damaged.path, &bytes);
    let newer = s.save_at("acct", 12, 1, b"z", at_days(0)).unwrap();
    let mut bytes = read(&newer.path);
    bytes[offsets::VERSION] = 2;
    reseal(&mut bytes);
    write(&newer.path, &bytes);
    let temp = s.dir().join(format!("{}.tmp", snapshot_file_name(1, 1)));
    write(&temp, b"partial");
    let unknown = s.dir().join("README.txt");
    write(&unknown, b"not ours");
    let report = s.prune(at_days(1)).unwrap();
    assert_eq!(report.deleted_damaged, std::slice::from_ref(&damaged.path));
    assert_eq!(report.deleted_temp, std::slice::from_ref(&temp));
    assert!(report.deleted.is_empty());
    assert_eq!(report.kept, 2);
    assert!(good.path.exists() && newer.path.exists() && unknown.exists());
    assert!(!damaged.path.exists() && !temp.exists());
}

#[test]
fn pruned_stores_still_load_correctly() {
    let f = fixture();
    let mut rng = Rng::new(14);
    let s = SnapshotStore::open(&f.store).with_policy(SnapshotPolicy {
        interval_versions: 10,
        retention: Duration::ZERO,
    });
    for _ in 0..6 {
        append_random(&f.store, "acct", 12, &mut rng);
        s.load_and_snapshot::<Ledger>(&f.store, "acct").unwrap();
    }
    assert_eq!(versions_on_disk(&s, "acct").len(), 6);
    s.prune(SystemTime::now() + Duration::from_secs(1)).unwrap();
    assert_eq!(versions_on_disk(&s, "acct"), [71]);
    let loaded = s.load::<Ledger>(&f.store, "acct").unwrap();
    assert_eq!(
        (loaded.snapshot_version, loaded.events_applied),
        (Some(71), 0)
    );
    assert_eq!(loaded.state, full_replay::<Ledger>(&f.store, "acct").0);
}

// ---------------------------------------------------------------------------------------------
// Automatic snapshots and the policy.

#[test]
fn load_and_snapshot_saves_every_interval_versions() {
    let f = fixture();
    let mut rng = Rng::new(15);
    let s = SnapshotStore::open(&f.store).with_policy(SnapshotPolicy {
        interval_versions: 10,
        ..SnapshotPolicy::default()
    });
    let mut step = |n: u64| {
        append_random(&f.store, "acct", n, &mut rng);
        s.load_and_snapshot::<Ledger>(&f.store, "acct").unwrap()
    };
    // 9 events: not yet. 10: a snapshot at version 9.
    assert_eq!(step(9).snapshot_saved, None);
    let l = step(1);
    assert_eq!((l.snapshot_saved, l.events_applied), (Some(9), 10));
    // 5 past it: not yet; 10 past it: at version 19.
    assert_eq!(step(5).snapshot_saved, None);
    let l = step(5);
    assert_eq!(
        (l.snapshot_version, l.snapshot_saved, l.events_applied),
        (Some(9), Some(19), 10)
    );
    // A big jump: one snapshot at the end, not one per interval.
    let l = step(35);
    assert_eq!(l.snapshot_saved, Some(54));
    assert_eq!(versions_on_disk(&s, "acct"), [9, 19, 54]);
    // Loading with nothing new saves nothing.
    assert_eq!(step(0).snapshot_saved, None);
    // A plain load never writes.
    append_random(&f.store, "acct", 20, &mut Rng::new(1));
    assert_eq!(
        s.load::<Ledger>(&f.store, "acct").unwrap().snapshot_saved,
        None
    );
    assert_eq!(versions_on_disk(&s, "acct"), [9, 19, 54]);
}

#[test]
fn an_interval_of_zero_turns_automatic_snapshots_off() {
    let f = fixture();
    append_random(&f.store, "acct", 500, &mut Rng::new(16));
    let s = SnapshotStore::open(&f.store).with_policy(SnapshotPolicy {
        interval_versions: 0,
        ..SnapshotPolicy::default()
    });
    assert_eq!(
        s.load_and_snapshot::<Ledger>(&f.store, "acct")
            .unwrap()
            .snapshot_saved,
        None
    );
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn the_default_policy_snapshots_every_100_versions() {
    let f = fixture();
    append_random(&f.store, "acct", 99, &mut Rng::new(17));
    assert_eq!(
        f.snaps
            .load_and_snapshot::<Ledger>(&f.store, "acct")
            .unwrap()
            .snapshot_saved,
        None
    );
    append_random(&f.store, "acct", 1, &mut Rng::new(18));
    assert_eq!(
        f.snaps
            .load_and_snapshot::<Ledger>(&f.store, "acct")
            .unwrap()
            .snapshot_saved,
        Some(99)
    );
}

#[test]
fn a_schema_change_snapshots_again_under_the_new_schema() {
    let f = fixture();
    append_random(&f.store, "acct", 150, &mut Rng::new(19));
    let l = f
        .snaps
        .load_and_snapshot::<Ledger>(&f.store, "acct")
        .unwrap();
    assert_eq!(l.snapshot_saved, Some(149));
    // The V8 aggregate cannot use it; it rebuilds and replaces it (same version).
    let l8 = f
        .snaps
        .load_and_snapshot::<LedgerV8>(&f.store, "acct")
        .unwrap();
    assert_eq!(l8.snapshot_ignored(), Some(IgnoredReason::SchemaMismatch));
    assert_eq!((l8.events_applied, l8.snapshot_saved), (150, Some(149)));
    let again = f.snaps.load::<LedgerV8>(&f.store, "acct").unwrap();
    assert_eq!((again.state.total, again.events_applied), (150, 0));
}

#[test]
fn policy_from_environment_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let d = SnapshotPolicy::from_lookup(vars(&[])).unwrap();
    assert_eq!(d, SnapshotPolicy::default());
    assert_eq!(d.interval_versions, 100);
    assert_eq!(d.retention, Duration::from_secs(30 * 86_400));
    let p = SnapshotPolicy::from_lookup(vars(&[
        ("SNAPSHOT_INTERVAL_VERSIONS", "250"),
        ("SNAPSHOT_RETENTION_DAYS", " 7 "),
    ]))
    .unwrap();
    assert_eq!(p.interval_versions, 250);
    assert_eq!(p.retention, Duration::from_secs(7 * 86_400));
    let blank = SnapshotPolicy::from_lookup(vars(&[("SNAPSHOT_INTERVAL_VERSIONS", "")])).unwrap();
    assert_eq!(blank, SnapshotPolicy::default());
    for bad in [
        &[("SNAPSHOT_INTERVAL_VERSIONS", "ten")][..],
        &[("SNAPSHOT_RETENTION_DAYS", "-1")][..],
        &[("SNAPSHOT_RETENTION_DAYS", "1.5")][..],
        &[("SNAPSHOT_RETENTION_DAYS", "18446744073709551615")][..],
    ] {
        match SnapshotPolicy::from_lookup(vars(bad)) {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains(bad[0].0), "{msg}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // from_env reads the process environment; with the variables unset or valid it works.
    if std::env::var_os("SNAPSHOT_INTERVAL_VERSIONS").is_none()
        && std::env::var_os("SNAPSHOT_RETENTION_DAYS").is_none()
    {
        assert_eq!(
            SnapshotPolicy::from_env().unwrap(),
            SnapshotPolicy::default()
        );
    }
}

#[test]
fn save_refuses_bad_arguments_and_writes_nothing() {
    let f = fixture();
    let too_long = "s".repeat(evlog::wire::limits::MAX_STREAM_ID_BYTES + 1);
    for stream in ["", too_long.as_str()] {
        assert!(matches!(
            f.snaps.save(stream, 0, 1, b"x"),
            Err(Error::InvalidArgument(_))
        ));
    }
    let huge = vec![0u8; format::MAX_SNAPSHOT_BYTES + 1];
    assert!(matches!(
        f.snaps.save("acct", 0, 1, &huge),
        Err(Error::InvalidArgument(_))
    ));
    assert!(f.snaps.list().unwrap().is_empty());
    // The longest stream id and an empty state are fine.
    let longest = "s".repeat(evlog::wire::limits::MAX_STREAM_ID_BYTES);
    f.snaps.save(&longest, 0, 1, b"").unwrap();
    let found = f.snaps.latest(&longest, 1, Some(0)).unwrap();
    assert_eq!(found.snapshot.unwrap().state, b"");
}

// ---------------------------------------------------------------------------------------------
// Crash safety.

#[test]
fn a_leftover_temp_file_is_ignored() {
    let f = fixture();
    let path = stream_with_snapshot(&f, "acct", 60, 29, 20);
    // A complete, valid snapshot at a newer version, but only under its temp name (the crash
    // came before the rename), and a partial one.
    let newer = f.snaps.save_state("acct", 49, &Ledger::default()).unwrap();
    let tmp = PathBuf::from(format!("{}.tmp", newer.path.display()));
    std::fs::rename(&newer.path, &tmp).unwrap();
    let partial = f.snaps.dir().join(format!(
        "{}.tmp",
        snapshot_file_name(stream_hash("acct"), 59)
    ));
    write(&partial, &read(&path)[..50]);
    let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
    assert_eq!(loaded.snapshot_version, Some(29));
    assert!(loaded.ignored.is_empty());
    assert_eq!(loaded.state, full_replay::<Ledger>(&f.store, "acct").0);
    assert_eq!(f.snaps.list().unwrap().len(), 1);
    assert_eq!(parse_snapshot_file_name("x.snap.tmp"), None);
}

#[test]
fn a_half_written_snapshot_is_ignored() {
    let f = fixture();
    stream_with_snapshot(&f, "acct", 60, 19, 21);
    // A file system that did not keep its promise: the name of a snapshot at 39 is there, but
    // only part of its data, the rest zeros.
    let mut at_39 = Ledger::default();
    for e in f.store.read_stream("acct", 0, Direction::Forward, 40) {
        at_39.apply(&e.unwrap());
    }
    let full = f.snaps.save_state("acct", 39, &at_39).unwrap();
    let bytes = read(&full.path);
    for keep in [0, 10, 64, bytes.len() / 2, bytes.len() - 1] {
        let mut torn = bytes[..keep].to_vec();
        torn.resize(bytes.len(), 0);
        if torn == bytes {
            continue; // the lost byte was a zero: nothing was lost
        }
        write(&full.path, &torn);
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_eq!(loaded.snapshot_version, Some(19), "keep {keep}");
        assert_eq!(loaded.ignored.len(), 1, "keep {keep}");
        assert!(loaded.ignored[0].reason.is_damage());
        assert_eq!(loaded.state, full_replay::<Ledger>(&f.store, "acct").0);
        // Cut short instead of zero-filled.
        write(&full.path, &bytes[..keep]);
        let loaded = f.snaps.load::<Ledger>(&f.store, "acct").unwrap();
        assert_eq!(loaded.snapshot_version, Some(19), "keep {keep}");
    }
}

/// Power fails after every operation of a save that replaces nothing and one that overwrites:
/// afterwards the snapshot is either the old one, or the new one, complete; never damaged.
#[cfg(feature = "fault-injection")]
#[test]
fn a_crash_at_any_point_of_a_save_leaves_the_old_or_the_new_snapshot() {
    use evlog::io::Vfs;
    use evlog::io::fault::{ALL_POWER_LOSSES, FaultFs};
    use std::sync::Arc;

    let dir = Path::new("/store");
    let base = FaultFs::new();
    base.create_dir_all(dir).unwrap();
    let old = SnapshotStore::with_vfs(Arc::new(base.clone()), dir);
    old.save("acct", 10, 1, b"old state").unwrap();
    let new_state = vec![7u8; 3_000];
    for overwrite in [false, true] {
        let version = if overwrite { 10 } else { 20 };
        // Count the operations of the save.
        let probe = base.snapshot();
        let start = probe.ops();
        SnapshotStore::with_vfs(Arc::new(probe.clone()), dir)
            .save("acct", version, 1, &new_state)
            .unwrap();
        let total = probe.ops() - start;
        assert!(
            total >= 4,
            "create, write, fsync, rename, fsync dir: {total}"
        );
        for cut in 0..=total {
            for mode in ALL_POWER_LOSSES {
                let fs = base.snapshot();
                fs.power_off_after(fs.ops() + cut);
                let _ = SnapshotStore::with_vfs(Arc::new(fs.clone()), dir)
                    .save("acct", version, 1, &new_state);
                let after = Arc::new(fs.after_power_loss(mode, cut));
                let s = SnapshotStore::with_vfs(after, dir);
                let found = s.latest("acct", 1, Some(100)).unwrap();
                let ctx = format!("overwrite {overwrite} cut {cut} {mode:?}");
                assert!(found.ignored.is_empty(), "{ctx}: {:?}", found.ignored);
                let snap = found.snapshot.expect("a snapshot survives");
                let is_new = snap.info.version == version && snap.state == new_state;
                let is_old = snap.info.version == 10 && snap.state == b"old state";
                assert!(is_new || is_old, "{ctx}: {:?}", snap.info);
                if cut == total {
                    assert!(is_new, "{ctx}: the save completed");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The format section of FORMAT.md, pinned to the code.

fn spec_table(name: &str) -> Vec<Vec<String>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("format/FORMAT.md");
    let s = std::fs::read_to_string(p).unwrap();
    let open = format!("<!-- spec:{name} -->");
    let close = format!("<!-- /spec:{name} -->");
    let a = s.find(&open).expect("table start") + open.len();
    let b = a + s[a..].find(&close).expect("table end");
    s[a..b]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))))
        .skip(1)
        .collect()
}

#[test]
fn format_spec_constants_match_the_code() {
    use evlog::snapshot::*;
    let code: BTreeMap<&str, String> = [
        (
            "SNAPSHOT_MAGIC",
            format!("\"{}\"", std::str::from_utf8(SNAPSHOT_MAGIC).unwrap()),
        ),
        ("SNAPSHOT_VERSION", SNAPSHOT_VERSION.to_string()),
        ("SNAPSHOT_HEADER_BYTES", SNAPSHOT_HEADER_BYTES.to_string()),
        ("SNAPSHOT_DIR_NAME", format!("\"{SNAPSHOT_DIR_NAME}\"")),
        (
            "SNAPSHOT_FILE_SUFFIX",
            format!("\"{SNAPSHOT_FILE_SUFFIX}\""),
        ),
        ("SNAPSHOT_ZSTD_LEVEL", SNAPSHOT_ZSTD_LEVEL.to_string()),
        ("MAX_SNAPSHOT_BYTES", MAX_SNAPSHOT_BYTES.to_string()),
        (
            "MAX_SNAPSHOT_COMPRESSED_BYTES",
            MAX_SNAPSHOT_COMPRESSED_BYTES.to_string(),
        ),
        (
            "MAX_SNAPSHOT_FILE_BYTES",
            MAX_SNAPSHOT_FILE_BYTES.to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let rows = spec_table("snapshot-constants");
    assert_eq!(rows.len(), code.len());
    for r in rows {
        assert_eq!(Some(&r[1]), code.get(r[0].as_str()), "{}", r[0]);
    }
    // The compressed limit holds zstd's worst case for the largest state.
    assert!(zstd::zstd_safe::compress_bound(MAX_SNAPSHOT_BYTES) <= MAX_SNAPSHOT_COMPRESSED_BYTES);
}

#[test]
fn format_spec_header_layout_matches_encoded_bytes() {
    let rows = spec_table("snapshot-header");
    let offsets_in_code: BTreeMap<&str, usize> = [
        ("magic", 0),
        ("version", offsets::VERSION),
        ("stream_len", offsets::STREAM_LEN),
        ("schema_version", offsets::SCHEMA_VERSION),
        ("stream_version", offsets::STREAM_VERSION),
        ("created_us", offsets::CREATED_US),
        ("stream_hash", offsets::STREAM_HASH),
        ("compressed_len", offsets::COMPRESSED_LEN),
        ("state_len", offsets::STATE_LEN),
        ("stream_crc", offsets::STREAM_CRC),
        ("body_crc", offsets::BODY_CRC),
        ("reserved", offsets::RESERVED),
        ("header_crc", offsets::HEADER_CRC),
    ]
    .into_iter()
    .collect();
    let mut next = 0;
    let mut fields = BTreeMap::new();
    for r in &rows {
        let (off, size): (usize, usize) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        assert_eq!(off, next, "{} does not follow the previous field", r[2]);
        assert_eq!(Some(&off), offsets_in_code.get(r[2].as_str()), "{}", r[2]);
        fields.insert(r[2].clone(), (off, size));
        next = off + size;
    }
    assert_eq!(next, format::SNAPSHOT_HEADER_BYTES);
    assert_eq!(fields.len(), offsets_in_code.len());

    // Every field holds what the spec says, little-endian, in an encoded file.
    let state = b"the state of order-1".repeat(10);
    let f = encode_snapshot("order-1", 9_899, 0xA1B2_C3D4, 0x0102_0304_0506_0708, &state).unwrap();
    let field = |name: &str| {
        let (off, size) = fields[name];
        let mut le = [0u8; 8];
        le[..size].copy_from_slice(&f[off..off + size]);
        u64::from_le_bytes(le)
    };
    assert_eq!(&f[..8], b"EVLOGSNP");
    assert_eq!(field("version"), 1);
    assert_eq!(field("stream_len"), 7);
    assert_eq!(field("schema_version"), 0xA1B2_C3D4);
    assert_eq!(field("stream_version"), 9_899);
    assert_eq!(field("created_us"), 0x0102_0304_0506_0708);
    assert_eq!(field("stream_hash"), 0xdee4_809f_34be_e86d);
    let compressed_len = field("compressed_len") as usize;
    assert_eq!(f.len(), 64 + 7 + compressed_len);
    assert_eq!(field("state_len"), state.len() as u64);
    assert_eq!(field("stream_crc"), u64::from(crc32fast::hash(b"order-1")));
    assert_eq!(&f[64..71], b"order-1");
    assert_eq!(field("body_crc"), u64::from(crc32fast::hash(&f[71..])));
    assert_eq!(field("reserved"), 0);
    assert_eq!(field("header_crc"), u64::from(crc32fast::hash(&f[..60])));
    // The body is a plain zstd frame of the state.
    assert_eq!(zstd::decode_all(&f[71..]).unwrap(), state);
    // The name of such a file.
    assert_eq!(
        snapshot_file_name(stream_hash("order-1"), 9_899),
        "dee4809f34bee86d-00000000000000009899.snap"
    );
    // CRC-32 of 60 zero bytes, as § 20.2 says.
    assert_eq!(crc32fast::hash(&[0u8; 60]), 0x0412_8908);
}
