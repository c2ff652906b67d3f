//! Compressed sealed segments (`.zseg`): reads, verify, damage, concurrency and power loss at
//! every step of replacing a segment.

use std::path::Path;
use std::sync::Arc;

use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent,
    Store, StoreOptions, Uuid,
};

fn event(i: u64) -> EventData {
    let payload = format!(
        r#"{{"n":{i},"price":"{}.{:04}","pair":"BTC/USD","pad":"{}"}}"#,
        i * 37 % 1000,
        i * 7919 % 10_000,
        "abc".repeat((i % 9) as usize)
    );
    EventData::new(
        [
            "PriceFeedUpdatedEvent",
            "AuditLogCreatedEvent",
            "AIResultCreatedEvent",
        ][(i % 3) as usize],
        payload.into_bytes(),
    )
    .with_id(Uuid::from_u128(u128::from(i) + 1))
    .with_metadata(Metadata::new().with("i", i.to_string()))
}

fn fill(store: &Store, from: u64, n: u64) {
    for i in from..from + n {
        store
            .append(
                &format!("agg-{}", i % 13),
                ExpectedVersion::Any,
                &[event(i)],
            )
            .unwrap();
    }
}

fn all(store: &Store, dir: Direction) -> Vec<RecordedEvent> {
    let from = match dir {
        Direction::Forward => 0,
        Direction::Backward => u64::MAX,
    };
    store
        .read_all(from, dir, ReadFilter::all())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn streams(store: &Store) -> Vec<Vec<RecordedEvent>> {
    (0..13)
        .map(|s| {
            store
                .read_stream(&format!("agg-{s}"), 0, Direction::Forward, usize::MAX)
                .collect::<Result<_, _>>()
                .unwrap()
        })
        .collect()
}

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(16 << 10)
        .durability(Durability::Never)
}

fn files_with(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == ext)
        })
        .count()
}

#[test]
fn reads_return_the_same_events_before_and_after_compression() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 2000);
    let (fwd, bwd, per_stream) = (
        all(&store, Direction::Forward),
        all(&store, Direction::Backward),
        streams(&store),
    );
    let typed: Vec<RecordedEvent> = store
        .read_all(
            0,
            Direction::Forward,
            ReadFilter::all().event_types(["AuditLogCreatedEvent"]),
        )
        .collect::<Result<_, _>>()
        .unwrap();
    let (sealed, _) = store.sealed_segments();
    assert!(sealed >= 10, "the workload must seal segments ({sealed})");
    let rep = store.compress_sealed().unwrap();
    assert_eq!(rep.segments as usize, sealed);
    assert!(
        rep.bytes_after < rep.bytes_before / 2,
        "compressed {} -> {}",
        rep.bytes_before,
        rep.bytes_after
    );
    assert_eq!(store.sealed_segments(), (sealed, sealed));
    assert_eq!(files_with(dir.path(), "zseg"), sealed);
    assert_eq!(
        files_with(dir.path(), "seg"),
        1,
        "only the active segment stays a .seg"
    );
    assert_eq!(all(&store, Direction::Forward), fwd);
    assert_eq!(all(&store, Direction::Backward), bwd);
    assert_eq!(streams(&store), per_stream);
    let typed_after: Vec<RecordedEvent> = store
        .read_all(
            0,
            Direction::Forward,
            ReadFilter::all().event_types(["AuditLogCreatedEvent"]),
        )
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(typed_after, typed);
    // Nothing left to do the second time.
    assert_eq!(store.compress_sealed().unwrap().segments, 0);
    // Appends go on, and a re-sent append is still recognized.
    let again = store
        .append(
            &format!("agg-{}", 1999 % 13),
            ExpectedVersion::Any,
            &[event(1999)],
        )
        .unwrap();
    assert_eq!(again.first_position, fwd[1999].position);
    fill(&store, 2000, 10);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.compressed_segments, sealed);
    store.close().unwrap();

    // The same after reopening, writable and read-only.
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(all(&ro, Direction::Forward)[..2000], fwd[..]);
    drop(ro);
    let store = opts().open(dir.path()).unwrap();
    assert_eq!(all(&store, Direction::Forward)[..2000], fwd[..]);
    let agg0 = fwd.iter().filter(|e| &*e.stream == "agg-0").count() as u64;
    // One more agg-0 event (2002) was appended after `fwd` was read.
    assert_eq!(store.stream_version("agg-0"), Some(agg0));
}

#[test]
fn a_store_without_checkpoint_or_indexes_reopens_from_compressed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 1000);
    store.compress_sealed().unwrap();
    let before = all(&store, Direction::Forward);
    let versions: Vec<_> = (0..13)
        .map(|s| store.stream_version(&format!("agg-{s}")))
        .collect();
    store.close().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".idx") {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let store = opts().open(dir.path()).unwrap();
    assert_eq!(all(&store, Direction::Forward), before);
    let after: Vec<_> = (0..13)
        .map(|s| store.stream_version(&format!("agg-{s}")))
        .collect();
    assert_eq!(after, versions);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn a_flipped_bit_in_a_compressed_block_is_an_error_never_wrong_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 600);
    store.compress_sealed().unwrap();
    store.close().unwrap();
    let mut z: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zseg"))
        .collect();
    z.sort();
    let victim = &z[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x04;
    std::fs::write(victim, &bytes).unwrap();

    let report = evlog::verify_dir(dir.path()).unwrap();
    assert!(!report.is_clean());
    assert!(
        report.problems.iter().any(|p| p.file == *victim),
        "{:?}",
        report.problems
    );
    // Open reads only the header copies; the damage shows when the block is read, and not
    // before: the events of the segments before it come first (later segments are read ahead
    // in other threads, whose errors wait until the read gets there).
    let victim_first: u64 = victim
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(victim_first > 0);
    let store = opts().open(dir.path()).unwrap();
    let mut delivered = 0;
    // Both reads must deliver every event before the damaged segment, then its error.
    let stops_at_the_victim = |delivered: u64, err: Option<Error>| {
        assert_eq!(
            delivered, victim_first,
            "every event before the damaged segment"
        );
        match err {
            Some(Error::Corrupted { file, .. }) => assert_eq!(&file, victim),
            other => panic!("expected Corrupted naming {victim:?}, got {other:?}"),
        }
    };
    let mut err = None;
    for e in store.read_all(0, Direction::Forward, ReadFilter::all()) {
        match e {
            Ok(e) => {
                assert_eq!(e.position, delivered);
                delivered += 1;
            }
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    stops_at_the_victim(delivered, err);
    let mut replayed = 0;
    let r = store.replay(0, u64::MAX, &ReadFilter::all(), |e| {
        assert_eq!(e.position, replayed);
        replayed += 1;
        std::ops::ControlFlow::Continue(())
    });
    stops_at_the_victim(replayed, r.err());
}

#[test]
fn a_compressed_segment_of_an_unknown_version_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 300);
    store.compress_sealed().unwrap();
    store.close().unwrap();
    let z = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "zseg"))
        .unwrap();
    let mut b = std::fs::read(&z).unwrap();
    b[8] = 9;
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&z, &b).unwrap();
    match opts().repair(true).open(dir.path()) {
        Err(Error::UnsupportedFormat { .. }) => {}
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    assert_eq!(std::fs::read(&z).unwrap(), b, "the file is left as it was");
}

#[test]
fn when_both_forms_exist_the_segment_file_is_used_and_the_compressed_one_redone() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 400);
    let before = all(&store, Direction::Forward);
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .min()
        .unwrap();
    let copy = std::fs::read(&seg).unwrap();
    store.compress_sealed().unwrap();
    store.close().unwrap();
    // As after a crash between the rename of the .zseg file and the removal of the .seg file;
    // the .zseg is also damaged, which must not matter.
    std::fs::write(&seg, &copy).unwrap();
    let z = seg.with_extension("zseg");
    let mut zb = std::fs::read(&z).unwrap();
    let n = zb.len();
    zb[n - 5] ^= 0xff;
    std::fs::write(&z, &zb).unwrap();
    let store = opts().open(dir.path()).unwrap();
    assert!(!z.exists(), "open removes the .zseg that a .seg overrides");
    assert_eq!(all(&store, Direction::Forward), before);
    store.compress_sealed().unwrap();
    assert!(z.exists() && !seg.exists());
    assert_eq!(all(&store, Direction::Forward), before);
}

#[test]
fn reads_and_appends_go_on_while_segments_are_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(opts().open(dir.path()).unwrap());
    fill(&store, 0, 3000);
    let before = all(&store, Direction::Forward);
    std::thread::scope(|s| {
        let st = store.clone();
        let compressor = s.spawn(move || st.compress_sealed().unwrap());
        let st = store.clone();
        let appender = s.spawn(move || fill(&st, 3000, 500));
        for _ in 0..5 {
            let now = all(&store, Direction::Forward);
            assert_eq!(now[..before.len()], before[..]);
        }
        appender.join().unwrap();
        assert!(compressor.join().unwrap().segments > 0);
    });
    let now = all(&store, Direction::Forward);
    assert_eq!(now.len(), 3500);
    assert_eq!(now[..3000], before[..]);
}

#[test]
fn the_background_compressor_compresses_all_but_the_newest_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().compress_sealed(true).open(dir.path()).unwrap();
    fill(&store, 0, 2000);
    let before = all(&store, Direction::Forward);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (sealed, compressed) = store.sealed_segments();
        if compressed + 1 == sealed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "background compression did not finish: {compressed} of {sealed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(all(&store, Direction::Forward), before);
    store.close().unwrap();
    assert!(evlog::verify_dir(dir.path()).unwrap().is_clean());
}

#[test]
fn a_read_only_store_keeps_reading_after_the_writer_compresses_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = opts().open(dir.path()).unwrap();
    fill(&store, 0, 1000);
    let ro = Store::open_read_only(dir.path()).unwrap();
    store.compress_sealed().unwrap();
    // The reader listed .seg files that are gone now: it reads their .zseg files.
    assert_eq!(
        all(&ro, Direction::Forward),
        all(&store, Direction::Forward)
    );
}

#[test]
fn sealing_the_active_segment_lets_everything_be_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .durability(Durability::Always)
        .open(dir.path())
        .unwrap();
    // Nothing to seal in an empty store.
    assert!(!store.seal_active().unwrap());
    fill(&store, 0, 300);
    let before = all(&store, Direction::Forward);
    assert!(store.seal_active().unwrap());
    assert!(
        !store.seal_active().unwrap(),
        "the new active segment is empty"
    );
    assert_eq!(store.sealed_segments(), (1, 0));
    store.compress_sealed().unwrap();
    assert_eq!(store.sealed_segments(), (1, 1));
    assert_eq!(all(&store, Direction::Forward), before);
    fill(&store, 300, 10);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(all(&store, Direction::Forward)[..300], before[..]);
    assert_eq!(store.head_position(), Some(309));
    assert!(store.verify().unwrap().is_clean());
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert!(matches!(ro.seal_active(), Err(Error::ReadOnly)));
}

#[test]
fn read_only_opens_beside_a_writer_that_compresses_see_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        StoreOptions::new()
            .segment_bytes(4 << 10)
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap(),
    );
    fill(&store, 0, 1500);
    let before = all(&store, Direction::Forward);
    std::thread::scope(|s| {
        let st = store.clone();
        let compressor = s.spawn(move || st.compress_sealed().unwrap());
        let mut opens = 0;
        while !compressor.is_finished() || opens < 3 {
            // The writer may remove a listed .seg file before this open reads it.
            let ro = Store::open_read_only(dir.path()).unwrap();
            assert_eq!(all(&ro, Direction::Forward), before);
            opens += 1;
        }
        assert!(compressor.join().unwrap().segments > 0);
    });
}
