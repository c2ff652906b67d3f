//! Replays the fuzz inputs committed under `fuzz/` through the same code the fuzz targets run
//! (`fuzz/src/targets.rs`), so that `cargo test` keeps every crash the fuzzer found fixed:
//!
//! - `fuzz/regressions/<target>/*`: inputs that crashed a target. Each is replayed by the
//!   target's test below. An input whose crash is not fixed yet is listed in [`KNOWN_BUGS`],
//!   skipped by that test, and replayed by its own `#[ignore = "bug: ..."]` test.
//! - `fuzz/seeds/<target>/*`: the valid inputs the corpora start from (replayed too: they must
//!   not crash either).
//!
//! The seeds are generated from `format/golden/` and from encoders in `evlog::wire` by
//!
//! ```text
//! cargo test --release --test fuzz_regressions -- --ignored generate_fuzz_seeds
//! ```

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::fs;
use std::path::{Path, PathBuf};

use evlog::wire::archive::encode_archive_marker;
use evlog::wire::checkpoint::decode_checkpoint;
use evlog::wire::frame::{
    FRAME_VERSION_COMPACTED, FRAME_VERSION_MULTI, begin_frame, finish_frame, finish_frame_version,
};
use evlog::wire::index_file::IndexView;
use evlog::wire::record::{Records, encode_dropped_record, encode_record};
use evlog::wire::zseg::{ZSEG_MAGIC, ZSEG_VERSION, compress_image, decompress_image};
use evlog::{
    Direction, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent, StoreOptions, Uuid,
};

/// Committed crash inputs whose bug is not fixed yet: (target, file name). The target's test
/// skips them; each has a test of its own below marked `#[ignore = "bug: ..."]`. When the bug
/// is fixed, take the input off this list and the `#[ignore]` off its test.
const KNOWN_BUGS: &[(&str, &str)] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn target_fn(target: &str) -> targets::Target {
    targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
        .1
}

/// Files of `fuzz/<kind>/<target>/`, sorted (none if the directory does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// How long one input may take before it counts as a hang (debug builds are slow).
const HANG_SECS: u64 = 60;

/// Runs `target` over one input file, naming the file if it panics or hangs. (A hung input's
/// thread is left behind; the test fails.)
fn replay_file(target: &str, path: &Path) {
    let data = fs::read(path).unwrap();
    let f = target_fn(target);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| f(&data)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        let _ = tx.send(r);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(HANG_SECS)) {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => panic!("fuzz target {target} panicked on {}: {msg}", path.display()),
        Err(_) => panic!(
            "fuzz target {target} did not finish {} in {HANG_SECS} s: a hang",
            path.display()
        ),
    }
}

/// Runs `f` on a thread and fails if it does not return within `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not return in {secs} s: a hang"))
}

/// Replays every committed input of `target` except the known bugs; returns how many.
fn replay(target: &str) -> usize {
    let mut n = 0;
    for kind in ["regressions", "seeds"] {
        for p in inputs(kind, target) {
            let name = p.file_name().unwrap().to_str().unwrap();
            if kind == "regressions" && KNOWN_BUGS.contains(&(target, name)) {
                continue;
            }
            replay_file(target, &p);
            n += 1;
        }
    }
    n
}

#[test]
fn frame_inputs_do_not_crash() {
    assert!(replay("frame") > 0, "no seeds for frame");
}

#[test]
fn record_inputs_do_not_crash() {
    assert!(replay("record") > 0, "no seeds for record");
}

#[test]
fn segment_inputs_do_not_crash() {
    assert!(replay("segment") > 0, "no seeds for segment");
}

#[test]
fn index_inputs_do_not_crash() {
    assert!(replay("index") > 0, "no seeds for index");
}

#[test]
fn checkpoint_inputs_do_not_crash() {
    assert!(replay("checkpoint") > 0, "no seeds for checkpoint");
}

#[test]
fn store_inputs_do_not_crash() {
    assert!(replay("store") > 0, "no seeds for store");
}

#[test]
fn snapshot_inputs_do_not_crash() {
    assert!(replay("snapshot") > 0, "no seeds for snapshot");
}

#[test]
fn settings_inputs_do_not_crash() {
    assert!(replay("settings") > 0, "no seeds for settings");
}

#[test]
fn every_target_has_a_replay_test() {
    // The tests above, one per target: a new target needs its own.
    let tested = [
        "frame",
        "record",
        "segment",
        "index",
        "checkpoint",
        "store",
        "snapshot",
        "settings",
    ];
    for (t, _) in targets::TARGETS {
        assert!(tested.contains(&t), "no replay test for fuzz target {t}");
    }
}

#[test]
fn every_known_bug_names_a_committed_input() {
    for (target, name) in KNOWN_BUGS {
        let p = fuzz_dir().join("regressions").join(target).join(name);
        assert!(p.is_file(), "{} is missing", p.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions the fuzzer found: each crash input it committed, replayed as the fuzzer ran it,
// and a smaller test made from the golden store that shows the same bug in release builds too
// (the replays of debug assertions and overflows fail only in builds that check them: the fuzz
// build and `cargo test` without `--release`).
//
// All but the `seq` overflow came from one gap: open checked the checksums of the indexes and
// of the checkpoint it trusts, but not what the checksummed tables say (frame table ascending,
// every entry inside the covered prefix, stream and id tables sorted, stream versions below
// the checkpoint's next position). Such a file cannot come from random damage (its CRCs
// match); it can come from a writer bug or a hand edit. Fixed by `check_index_tables` where the
// body checksum is checked, by the checkpoint's stream-version check, and by readers that
// return `Error::Corrupted` when a located frame does not hold the wanted position instead of
// ending the read (forward) or looping (backward).

/// The golden store `valid/` in a temporary directory, with `edit` applied to the bytes of
/// `file` (whose checksums `fix` then recomputes).
fn golden_with(
    file: &str,
    edit: impl FnOnce(&mut Vec<u8>),
    fix: fn(&mut Vec<u8>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for p in sorted_files(&golden("valid")) {
        fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = dir.path().join(file);
    let mut b = fs::read(&path).unwrap();
    edit(&mut b);
    fix(&mut b);
    fs::write(&path, &b).unwrap();
    dir
}

fn open_golden_copy(dir: &Path) -> evlog::Store {
    StoreOptions::new().segment_bytes(4096).open(dir).unwrap()
}

fn forward(s: &evlog::Store) -> evlog::Result<Vec<RecordedEvent>> {
    s.read_all(0, Direction::Forward, ReadFilter::all())
        .collect()
}

/// The fuzzer's input: a checkpoint with both CRCs right and its frame table out of order.
/// The append and close that follow open panic in `encode_index` (`debug_assert!` that the
/// frame table ascends) in builds with debug assertions (the fuzz build, `cargo test`).
#[test]
fn store_checkpoint_frame_table_out_of_order_replay() {
    replay_file(
        "store",
        &fuzz_dir().join("regressions/store/checkpoint-frame-table-out-of-order"),
    );
}

/// The same in release builds: two entries of the checkpoint's frame table swapped. A backward
/// `read_all` silently skips an event, and close writes the bad table into the next
/// checkpoint, which `verify` reports.
#[test]
fn a_checksum_valid_checkpoint_with_an_out_of_order_frame_table_is_not_trusted() {
    let dir = golden_with(
        "checkpoint.idx",
        |b| {
            let c = decode_checkpoint(b).unwrap();
            let at = c.index.as_ptr() as usize - b.as_ptr() as usize;
            assert!(IndexView::new(c.index).unwrap().header.frame_count >= 3);
            // Swap frame table entries 1 and 2 (8 bytes each, after the 64-byte header).
            let (e1, e2) = (at + 64 + 8, at + 64 + 16);
            let first: Vec<u8> = b[e1..e1 + 8].to_vec();
            b.copy_within(e2..e2 + 8, e1);
            b[e2..e2 + 8].copy_from_slice(&first);
        },
        targets::fix_checkpoint,
    );
    let store = open_golden_copy(dir.path());
    let fwd = forward(&store).unwrap();
    assert_eq!(fwd.len(), 79);
    let (store, mut back) = within(60, "backward read_all", move || {
        let r = store
            .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
            .collect::<evlog::Result<Vec<_>>>()
            .unwrap();
        (store, r)
    });
    back.reverse();
    assert_eq!(
        back.len(),
        fwd.len(),
        "a backward read_all returns every event"
    );
    assert!(back == fwd, "backward read_all differs");
    let e = EventData::new("A", b"x".to_vec());
    store.append("order-1", ExpectedVersion::Any, &[e]).unwrap();
    store.close().unwrap();
    let rep = evlog::verify_dir(dir.path()).unwrap();
    assert!(rep.is_clean(), "verify after close: {:?}", rep.problems);
}

/// The fuzzer's input: `.idx` files with their CRCs right and a frame table whose first entry
/// does not start at relative position 0. A forward `read_all` stops at the end of the segment
/// before it, without an error, and the store target's check that an append lands right after
/// the events read fails ("position of a new append").
#[test]
fn store_idx_frame_table_read_all_ends_early_replay() {
    replay_file(
        "store",
        &fuzz_dir().join("regressions/store/idx-frame-table-read-all-ends-early"),
    );
}

/// The same on the golden store: the first frame entry of `00000000000000000021.idx` says
/// relative position 1 instead of 0. `read_all` returns the 21 events of the first segment and
/// then ends, `Ok`, out of 79. A read must return every event or an error.
#[test]
fn a_forward_read_all_never_ends_early_without_an_error() {
    let dir = golden_with(
        "00000000000000000021.idx",
        |b| b[64..68].copy_from_slice(&1u32.to_le_bytes()),
        targets::fix_index,
    );
    let store = open_golden_copy(dir.path());
    assert_eq!(store.head_position(), Some(78));
    if let Ok(events) = forward(&store) {
        assert_eq!(events.len(), 79, "read_all ended early without an error");
    }
    if let Ok(events) = store
        .read_all(21, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<Vec<_>>>()
    {
        assert_eq!(
            events.len(),
            58,
            "read_all from 21 ended early without an error"
        );
    }
}

/// The fuzzer's input: a backward `read_all` that never returns (a frame table entry leads to a
/// frame after the wanted position, and the reader goes back to it forever).
#[test]
fn store_idx_frame_table_backward_read_all_hangs_replay() {
    replay_file(
        "store",
        &fuzz_dir().join("regressions/store/idx-frame-table-backward-read-all-hangs"),
    );
}

/// The same on the golden store: frame entry 1 of `00000000000000000021.idx` given the offset
/// of frame 2. A backward `read_all` (even `.take(1000)`) never returns.
#[test]
fn a_backward_read_all_ends_on_a_wrong_frame_table() {
    let dir = golden_with(
        "00000000000000000021.idx",
        |b| {
            let off2: [u8; 4] = b[64 + 16 + 4..64 + 16 + 8].try_into().unwrap();
            b[64 + 8 + 4..64 + 8 + 8].copy_from_slice(&off2);
        },
        targets::fix_index,
    );
    let store = open_golden_copy(dir.path());
    let n = within(60, "backward read_all", move || {
        store
            .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
            .take(1000)
            .count()
    });
    assert!(n <= 80);
}

/// The fuzzer's input: a checkpoint whose stream table gives a stream a huge version. Open
/// takes it; `read_stream` from version 0 then steps through the versions 1,024 at a time and
/// never ends.
#[test]
fn store_checkpoint_stream_version_read_stream_hangs_replay() {
    replay_file(
        "store",
        &fuzz_dir().join("regressions/store/checkpoint-stream-version-read-stream-hangs"),
    );
}

/// The version of the last event of `stream` that a forward read of the whole store returns.
fn last_version_read(store: &evlog::Store, stream: &str) -> Option<u64> {
    forward(store)
        .unwrap()
        .iter()
        .filter(|e| *e.stream == *stream)
        .map(|e| e.version)
        .max()
}

/// The same on the golden store: the first stream of the checkpoint's table at version 2^40.
/// `stream_version` reports it (an append with `Exact` of the true version fails), and
/// `read_stream` never returns. A stream cannot have more versions than the log has events.
#[test]
fn a_checkpoint_stream_version_past_the_log_is_not_trusted() {
    let mut name = String::new();
    let dir = golden_with(
        "checkpoint.idx",
        |b| {
            let len = u16::from_le_bytes([b[64], b[65]]) as usize;
            name = String::from_utf8(b[66..66 + len].to_vec()).unwrap();
            b[66 + len..66 + len + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        },
        targets::fix_checkpoint,
    );
    let store = open_golden_copy(dir.path());
    let last = last_version_read(&store, &name);
    assert_eq!(store.stream_version(&name), last, "version of {name}");
    let n = within(60, "read_stream", move || {
        store
            .read_stream(&name, 0, Direction::Forward, usize::MAX)
            .count()
    });
    assert!(n <= 79);
}

/// The same with a version-3 checkpoint (the sorted table, format § 9.2): the golden store's
/// checkpoint rewritten as version 3, one entry's version set to 2^40 (its hash and id kept, so
/// the table stays sorted and decodes). Open does not trust it and rescans the log.
#[test]
fn a_sorted_checkpoint_table_version_past_the_log_is_not_trusted() {
    use evlog::wire::checkpoint::{CHECKPOINT_STREAM_ENTRY_BYTES, encode_checkpoint};
    let mut name = String::new();
    let dir = golden_with(
        "checkpoint.idx",
        |b| {
            let c = decode_checkpoint(b).unwrap();
            let mut v3 = encode_checkpoint(
                c.next_position,
                c.last_frame_header_crc,
                c.streams.iter(),
                c.index,
                c.id_filter,
            );
            let first = decode_checkpoint(&v3)
                .unwrap()
                .streams
                .iter()
                .next()
                .unwrap();
            name = first.0.to_string();
            assert_eq!(&v3[64 + 8..64 + 16], &first.1.to_le_bytes());
            v3[64 + 8..64 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
            assert!(v3.len() > 64 + CHECKPOINT_STREAM_ENTRY_BYTES);
            *b = v3;
        },
        targets::fix_checkpoint,
    );
    assert_eq!(
        &fs::read(dir.path().join("checkpoint.idx")).unwrap()[8..10],
        &3u16.to_le_bytes()
    );
    let store = open_golden_copy(dir.path());
    let last = last_version_read(&store, &name);
    assert!(last.is_some());
    assert_eq!(store.stream_version(&name), last, "version of {name}");
    assert!(store.verify().unwrap().is_clean());
}

/// The fuzzer's input: a segment header (CRC right) with `seq` = `u64::MAX` before another
/// segment. `verify_dir` computes `seq + 1` and panics on the overflow in builds with overflow
/// checks (`cargo test`, the fuzz build); `recover::read_metas` has the same `seq + 1` (and the
/// roll after a sealed last segment another). Release builds wrap and report a sequence gap.
#[test]
fn store_segment_seq_overflow_replay() {
    replay_file(
        "store",
        &fuzz_dir().join("regressions/store/segment-seq-overflow"),
    );
}

/// The same on the golden store: the first segment's `seq` set to `u64::MAX` (header and footer
/// checksums recomputed). Verify must report the sequence gap and open must fail with
/// `Corrupted`, without panicking (this fails only in builds with overflow checks).
#[test]
fn a_segment_seq_of_u64_max_is_reported_not_overflowed() {
    let dir = golden_with(
        "00000000000000000000.seg",
        |b| b[16..24].copy_from_slice(&u64::MAX.to_le_bytes()),
        |b| targets::fix_segment(b),
    );
    let rep = evlog::verify_dir(dir.path()).unwrap();
    assert!(!rep.is_clean(), "verify reports the sequence gap");
    match StoreOptions::new().segment_bytes(4096).open(dir.path()) {
        Err(evlog::Error::Corrupted { .. }) => {}
        other => panic!("open: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds.

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("format/golden")
        .join(name)
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Frames of a segment file's bytes, walked by their lengths from offset 64.
fn frames_of(seg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 64;
    while at + 40 <= seg.len() && &seg[at..at + 4] == b"EVFR" {
        let len = 40 + u32::from_le_bytes(seg[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + len > seg.len() {
            break;
        }
        out.push(&seg[at..at + len]);
        at += len;
    }
    out
}

/// A frame of three records using every record feature, built with the library's encoders.
fn rich_frame() -> Vec<u8> {
    let mut out = Vec::new();
    let start = begin_frame(&mut out);
    let events = [
        EventData::new("OrderPlaced", br#"{"total":12}"#.to_vec())
            .with_id(Uuid::from_u128(1))
            .with_metadata(
                Metadata::new()
                    .with_correlation_id(Uuid::from_u128(2))
                    .with_causation_id(Uuid::from_u128(3))
                    .with("user", "ada")
                    .with("source", "ü"),
            ),
        EventData::new("OrderPaid", Vec::new()).with_id(Uuid::from_u128(4)),
        EventData::new("T", vec![0u8; 300])
            .with_id(Uuid::from_u128(5))
            .with_metadata(Metadata::new().with_causation_id(Uuid::from_u128(6))),
    ];
    for (i, e) in events.iter().enumerate() {
        encode_record(&mut out, "order-ü", 10 + i as u64, 1_700_000_000_000_000, e);
    }
    finish_frame(&mut out, start, 42, 3, 40);
    out
}

/// A version-3 frame (`append_multi`): records of two streams, one with opaque metadata bytes.
fn multi_frame() -> Vec<u8> {
    let mut out = Vec::new();
    let start = begin_frame(&mut out);
    let a = EventData::new("AIResultCreated", br#"{"score":0.9}"#.to_vec())
        .with_id(Uuid::from_u128(7))
        .with_metadata(
            Metadata::new()
                .with_correlation_id(Uuid::from_u128(8))
                .with("meta", r#"{"ts":1}"#)
                .with_bytes(vec![0x08, 0x96, 0x01]),
        );
    let b = EventData::new("$checkpoint", b"42".to_vec()).with_id(Uuid::from_u128(9));
    encode_record(&mut out, "ai-1", 0, 1_700_000_000_000_000, &a);
    encode_record(&mut out, "$checkpoint-h", 3, 1_700_000_000_000_000, &b);
    finish_frame_version(&mut out, start, 50, 2, 50, FRAME_VERSION_MULTI);
    out
}

/// [`rich_frame`] as compaction leaves it when its second event is dropped: a version-2 frame
/// of the first record, the second's placeholder and the third record.
fn compacted_frame() -> Vec<u8> {
    let rich = rich_frame();
    let body = &rich[32..rich.len() - 8];
    let recs: Vec<_> = Records::new(body, 3)
        .collect::<Result<_, _>>()
        .expect("the rich frame's records");
    let mut out = Vec::new();
    let start = begin_frame(&mut out);
    out.extend_from_slice(&body[..recs[1].0]);
    encode_dropped_record(&mut out, &recs[1].1);
    out.extend_from_slice(&body[recs[2].0..]);
    finish_frame_version(&mut out, start, 42, 3, 45, FRAME_VERSION_COMPACTED);
    out
}

/// A compressed segment of `image` cut into blocks of `block_raw` bytes (`compress_image`
/// always uses `ZSEG_BLOCK_RAW_BYTES`, 64 KiB, so golden segments of 4 KB are one block): the
/// layout of `format/FORMAT.md` §22, written out here.
fn zseg_with_block_size(image: &[u8], block_raw: u32) -> Vec<u8> {
    let mut table = Vec::new();
    let mut blocks = Vec::new();
    for chunk in image.chunks(block_raw as usize) {
        let c = zstd::bulk::compress(chunk, 3).unwrap();
        table.extend_from_slice(&(c.len() as u32).to_le_bytes());
        table.extend_from_slice(&crc32fast::hash(&c).to_le_bytes());
        blocks.extend_from_slice(&c);
    }
    let mut out = vec![0u8; 64];
    out[0..8].copy_from_slice(&ZSEG_MAGIC);
    out[8..10].copy_from_slice(&ZSEG_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&block_raw.to_le_bytes());
    out[16..24].copy_from_slice(&(image.len() as u64).to_le_bytes());
    let count = image.len().div_ceil(block_raw as usize) as u32;
    out[24..28].copy_from_slice(&count.to_le_bytes());
    out[28..32].copy_from_slice(&crc32fast::hash(&table).to_le_bytes());
    let crc = crc32fast::hash(&out[0..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&image[..64]);
    out.extend_from_slice(&image[image.len() - 64..]);
    out.extend_from_slice(&table);
    out.extend_from_slice(&blocks);
    assert_eq!(decompress_image(&out).unwrap(), image, "a hand-made .zseg");
    out
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("seeds").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

/// Writes `fuzz/seeds/<target>/*` from the golden stores and the encoders.
#[test]
#[ignore = "generator: run by hand to regenerate fuzz/seeds"]
fn generate_fuzz_seeds() {
    let seeds = fuzz_dir().join("seeds");
    if seeds.exists() {
        fs::remove_dir_all(&seeds).unwrap();
    }
    let rich = rich_frame();
    write_seed("frame", "rich", &with_mode(0, &rich));
    write_seed("record", "rich-3", &with_mode(3, &rich[32..rich.len() - 8]));
    // Compaction: a version-2 frame with a placeholder record, its records, the placeholder.
    let compacted = compacted_frame();
    write_seed("frame", "compacted", &with_mode(0, &compacted));
    let body = &compacted[32..compacted.len() - 8];
    write_seed("record", "compacted-3", &with_mode(3, body));
    let second = Records::new(body, 3).nth(1).unwrap().unwrap();
    let placeholder = &body[second.0..];
    let len = 4 + u32::from_le_bytes(placeholder[..4].try_into().unwrap()) as usize;
    write_seed("record", "dropped", &with_mode(1, &placeholder[..len]));
    // append_multi: a version-3 frame of two streams, one record with opaque metadata bytes.
    let multi = multi_frame();
    write_seed("frame", "multi", &with_mode(0, &multi));
    write_seed(
        "record",
        "multi-2",
        &with_mode(2, &multi[32..multi.len() - 8]),
    );
    let valid = golden("valid");
    let mut n_frames = 0;
    for p in sorted_files(&valid) {
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = fs::read(&p).unwrap();
        if name.ends_with(".seg") {
            write_seed("segment", &format!("valid-{name}"), &with_mode(0, &bytes));
            // Sealed segments (those with an index) as compressed segments: mode bit 1; bits 0
            // and 2 fix the file and its copies (a valid file stays as it is).
            if valid.join(name.replace(".seg", ".idx")).exists() {
                let z = compress_image(&bytes).unwrap();
                write_seed("segment", &format!("zseg-{name}"), &with_mode(2, &z));
                write_seed("segment", &format!("zseg-{name}-fixed"), &with_mode(7, &z));
                // 4 KiB blocks: a segment of 4,149 bytes is two blocks, the footer across both.
                if bytes.len() > 4096 {
                    let z4 = zseg_with_block_size(&bytes, 4096);
                    write_seed("segment", &format!("zseg-4k-{name}"), &with_mode(2, &z4));
                    write_seed(
                        "segment",
                        &format!("zseg-4k-{name}-fixed"),
                        &with_mode(7, &z4),
                    );
                }
            }
            // A few frames of each segment: the first, a batch, the last.
            let frames = frames_of(&bytes);
            for (i, f) in frames.iter().enumerate() {
                let count = u32::from_le_bytes(f[12..16].try_into().unwrap());
                if i == 0 || i + 1 == frames.len() || (count > 1 && n_frames % 3 == 0) {
                    write_seed("frame", &format!("{name}-{i}"), &with_mode(0, f));
                    let body = &f[32..f.len() - 8];
                    write_seed(
                        "record",
                        &format!("{name}-{i}"),
                        &with_mode(count as u8, body),
                    );
                }
                n_frames += 1;
            }
        } else if name == "checkpoint.idx" {
            write_seed("checkpoint", "valid", &with_mode(0, &bytes));
            let c = evlog::wire::checkpoint::decode_checkpoint(&bytes).unwrap();
            write_seed("index", "valid-checkpoint", &with_mode(0, c.index));
        } else {
            write_seed("index", &format!("valid-{name}"), &with_mode(0, &bytes));
        }
    }
    for store in ["valid", "torn-tail", "flipped-bit"] {
        let mut files = Vec::new();
        for p in sorted_files(&golden(store)) {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            let bytes = fs::read(&p).unwrap();
            let (kind, pos) = if name == "checkpoint.idx" {
                (2u8, 0)
            } else {
                let pos: u64 = name[..20].parse().unwrap();
                (if name.ends_with(".seg") { 0 } else { 1 }, pos)
            };
            files.push((kind, pos, bytes));
        }
        write_seed("store", store, &targets::encode_store_input(0, &files));
        write_seed(
            "store",
            &format!("{store}-repair-append"),
            &targets::encode_store_input(6, &files),
        );
        // The last two segments alone (with their index and the checkpoint): a smaller seed.
        let tail: Vec<_> = files
            .iter()
            .filter(|(k, p, _)| *k == 2 || *p >= 45)
            .cloned()
            .collect();
        write_seed(
            "store",
            &format!("{store}-tail"),
            &targets::encode_store_input(4, &tail),
        );
    }
    zseg_store_seeds();
    snapshot_seeds();
    settings_seeds();
    for t in targets::TARGETS {
        println!("{}: {} seeds", t.0, inputs("seeds", t.0).len());
    }
}

/// A store directory's segment, index and checkpoint files as (kind, first position, bytes) of
/// a `store` input; a `.zseg` file with `targets::KIND_FLAG_ZSEG`. Other files are left out.
fn store_input_files(dir: &Path) -> Vec<(u8, u64, Vec<u8>)> {
    let mut files = Vec::new();
    for p in sorted_files(dir) {
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        let kind = if name == "checkpoint.idx" {
            2
        } else if name.ends_with(".seg") {
            0
        } else if name.ends_with(".zseg") {
            targets::KIND_FLAG_ZSEG
        } else if name.ends_with(".idx") {
            1
        } else {
            continue;
        };
        let pos = if kind == 2 {
            0
        } else {
            name[..20].parse().unwrap()
        };
        files.push((kind, pos, fs::read(&p).unwrap()));
    }
    files
}

/// The events a read-only open of the store made of a `store` seed's files reads (after a
/// clean `verify_dir`).
fn seed_store_events(files: &[(u8, u64, Vec<u8>)]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    targets::write_store_files(&targets::encode_store_input(0, files), dir.path());
    let rep = evlog::verify_dir(dir.path()).unwrap();
    assert!(rep.is_clean(), "verify: {:?}", rep.problems);
    let store = StoreOptions::new().open_read_only(dir.path()).unwrap();
    forward(&store).unwrap().len()
}

/// `store` seeds with compressed segments: the golden store with its first sealed segment as a
/// `.zseg` file (as `compress_image` writes it; damaged by the fuzzer from there), with every
/// sealed segment compressed by the target ([`targets::KIND_FLAG_COMPRESS`]: the fuzzer damages
/// the image, which stays a well-formed `.zseg`), and the golden store compacted (version-2
/// frames with placeholders) and compressed by the store itself.
fn zseg_store_seeds() {
    let valid = golden("valid");
    assert!(
        valid.join("00000000000000000000.idx").exists(),
        "the golden store's first segment is sealed"
    );
    let mut first = store_input_files(&valid);
    let seg = first
        .iter_mut()
        .find(|(k, p, _)| *k == 0 && *p == 0)
        .expect("the golden store's first segment");
    seg.0 = targets::KIND_FLAG_ZSEG;
    seg.2 = compress_image(&seg.2).unwrap();
    assert_eq!(seed_store_events(&first), 79, "the store of valid-zseg");
    write_seed(
        "store",
        "valid-zseg",
        &targets::encode_store_input(0, &first),
    );
    write_seed(
        "store",
        "valid-zseg-fixed",
        &targets::encode_store_input(1, &first),
    );
    write_seed(
        "store",
        "valid-zseg-repair-append",
        &targets::encode_store_input(6, &first),
    );
    let mut by_target = store_input_files(&valid);
    for (kind, pos, _) in &mut by_target {
        if *kind == 0 && valid.join(format!("{pos:020}.idx")).exists() {
            *kind = targets::KIND_FLAG_COMPRESS;
        }
    }
    assert_eq!(
        seed_store_events(&by_target),
        79,
        "the store compressed by the target"
    );
    write_seed(
        "store",
        "valid-compressed-by-target",
        &targets::encode_store_input(4, &by_target),
    );
    // Compacted and compressed by the store: order-1 below version 3 and payment-7 dropped.
    let dir = tempfile::tempdir().unwrap();
    targets::write_golden_valid(dir.path());
    let store = StoreOptions::new()
        .segment_bytes(4096)
        .open(dir.path())
        .unwrap();
    store.truncate_before("order-1", 3).unwrap();
    store
        .tombstone_stream("payment-7", ExpectedVersion::Any)
        .unwrap();
    let rep = store.compact().unwrap();
    assert!(rep.events_dropped > 0, "compaction dropped events");
    store.compress_sealed().unwrap();
    store.close().unwrap();
    let files = store_input_files(dir.path());
    assert!(
        files.iter().any(|f| f.0 == targets::KIND_FLAG_ZSEG),
        "compressed segments"
    );
    let left = 79 - rep.events_dropped as usize;
    assert_eq!(seed_store_events(&files), left, "the compacted store");
    write_seed(
        "store",
        "compacted-zseg",
        &targets::encode_store_input(4, &files),
    );
}

/// The events of `stream` in the golden store `valid/`.
fn golden_events(stream: &str) -> Vec<RecordedEvent> {
    let dir = tempfile::tempdir().unwrap();
    targets::write_golden_valid(dir.path());
    let store = StoreOptions::new().open_read_only(dir.path()).unwrap();
    store
        .read_stream(stream, 0, Direction::Forward, usize::MAX)
        .collect::<evlog::Result<Vec<_>>>()
        .unwrap()
}

/// Snapshot seeds: states of the golden streams after some of their events, as
/// `SnapshotStore` saves them. Mode 0 decodes only; 2 also reads the file through
/// `SnapshotStore`; 6 loads its stream from the golden store too.
fn snapshot_seeds() {
    use evlog::snapshot::Aggregate;
    use evlog::snapshot::format::encode_snapshot;
    let created_us = 1_700_000_000_000_000;
    for (i, stream) in targets::GOLDEN_STREAMS.iter().enumerate() {
        let events = golden_events(stream);
        assert!(events.len() >= 2, "{stream} has events");
        let mut state = targets::FuzzState::default();
        let upto = events.len() / 2;
        for e in &events[..=upto] {
            state.apply(e);
        }
        let bytes = evlog::snapshot::encode_state(&state).unwrap();
        let file = encode_snapshot(stream, upto as u64, 1, created_us, &bytes).unwrap();
        let name = format!("golden-{i}");
        write_seed("snapshot", &name, &with_mode(0, &file));
        write_seed("snapshot", &format!("{name}-load"), &with_mode(6, &file));
    }
    let stream = targets::GOLDEN_STREAMS[0];
    let ahead = encode_snapshot(stream, 1_000, 1, created_us, b"\0").unwrap();
    write_seed("snapshot", "version-ahead-load", &with_mode(6, &ahead));
    let other = encode_snapshot(stream, 1, 2, created_us, b"other schema").unwrap();
    write_seed("snapshot", "other-schema-load", &with_mode(6, &other));
    let empty = encode_snapshot("s", 0, 1, 0, b"").unwrap();
    write_seed("snapshot", "empty-state", &with_mode(2, &empty));
    // A state that compresses well: 256 KiB of one byte.
    let big = encode_snapshot("big", 7, 1, created_us, &vec![7u8; 256 << 10]).unwrap();
    write_seed("snapshot", "big-state", &with_mode(0, &big));
}

/// Settings seeds: a rule of every kind on the golden streams, and on streams that do not
/// exist. Mode 0 decodes only; 6 also opens the golden store with the file, reads, appends and
/// reopens.
fn settings_seeds() {
    use evlog::wire::settings::{StreamSettings, encode_settings};
    let none: [(&str, StreamSettings); 0] = [];
    write_seed(
        "settings",
        "empty",
        &with_mode(0, &encode_settings(none.into_iter())),
    );
    let golden = [
        (
            "order-1",
            StreamSettings {
                truncate_before: 3,
                ..StreamSettings::default()
            },
        ),
        (
            "order-2",
            StreamSettings {
                max_count: 2,
                ..StreamSettings::default()
            },
        ),
        (
            "payment-7",
            StreamSettings {
                tombstone: true,
                ..StreamSettings::default()
            },
        ),
        (
            "saga-ai-scoring-ü",
            StreamSettings {
                max_age_us: 1,
                ..StreamSettings::default()
            },
        ),
    ];
    let file = encode_settings(golden.into_iter());
    write_seed("settings", "golden", &with_mode(0, &file));
    write_seed("settings", "golden-store", &with_mode(6, &file));
    let others = [
        (
            "order-1",
            StreamSettings {
                truncate_before: u64::MAX,
                max_count: u64::MAX,
                max_age_us: u64::MAX,
                tombstone: false,
            },
        ),
        (
            "gone",
            StreamSettings {
                tombstone: true,
                truncate_before: 5,
                ..StreamSettings::default()
            },
        ),
        (
            "ünïcode-stream",
            StreamSettings {
                max_count: 1,
                max_age_us: 3_600_000_000,
                ..StreamSettings::default()
            },
        ),
    ];
    let file = encode_settings(others.into_iter());
    write_seed("settings", "extremes", &with_mode(0, &file));
    write_seed("settings", "extremes-store", &with_mode(6, &file));
    // Archive markers (the target decodes its input as one too; bit 0 fixes it).
    let marker = encode_archive_marker("/mnt/usb/evlog-archive");
    write_seed("settings", "archive-marker", &with_mode(0, &marker));
    let marker = encode_archive_marker("../evlog-archive-ü");
    write_seed("settings", "archive-marker-fixed", &with_mode(1, &marker));
}
