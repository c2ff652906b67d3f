//! Archiving: old sealed segments moved to an archive directory stay readable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, ReadFilter, RecordedEvent, Store,
    StoreOptions, Uuid,
};

fn fill(store: &Store, from: u64, n: u64) {
    for i in from..from + n {
        let e = EventData::new(
            "Tick",
            format!(
                r#"{{"i":{i},"pad":"{}"}}"#,
                "z".repeat((i % 13) as usize * 7)
            )
            .into_bytes(),
        )
        .with_id(Uuid::from_u128(u128::from(i) + 1));
        store
            .append(&format!("s-{}", i % 5), ExpectedVersion::Any, &[e])
            .unwrap();
    }
}

fn all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn stream(store: &Store, s: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(s, 0, Direction::Forward, usize::MAX)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(8 << 10)
        .durability(Durability::Never)
}

/// A store in `t`/store with `n` events, whose archive directory is `t`/archive: the store
/// directory, the archive directory and the store.
fn store_with_archive(t: &tempfile::TempDir, n: u64) -> (PathBuf, PathBuf, Store) {
    let dir = t.path().join("store");
    let archive = t.path().join("archive");
    let store = opts().archive_dir(&archive).open(&dir).unwrap();
    fill(&store, 0, n);
    (dir, archive, store)
}

fn count(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn archived_segments_stay_readable_by_the_store_and_after_reopening() {
    let t = tempfile::tempdir().unwrap();
    let (dir, archive, store) = store_with_archive(&t, 1500);
    let before = all(&store);
    let s2 = stream(&store, "s-2");
    // Nothing is old enough yet.
    assert_eq!(
        store
            .archive_sealed(Duration::from_secs(3600))
            .unwrap()
            .segments_moved,
        0
    );
    let sealed = store.sealed_segments().0;
    let rep = store.archive_sealed(Duration::ZERO).unwrap();
    assert_eq!(rep.segments_moved as usize, sealed);
    assert_eq!(rep.segments_archived as usize, sealed);
    assert!(rep.bytes_moved > 0);
    assert_eq!(count(&archive, "seg"), sealed);
    assert_eq!(count(&archive, "idx"), sealed);
    assert_eq!(count(&dir, "seg"), 1, "only the active segment stays");
    assert_eq!(all(&store), before);
    assert_eq!(stream(&store, "s-2"), s2);
    // Appends go on; compression and compaction work on archived segments in place.
    fill(&store, 1500, 300);
    store.compress_sealed().unwrap();
    assert_eq!(count(&archive, "zseg"), sealed);
    store.truncate_before("s-1", 10).unwrap();
    assert!(store.compact().unwrap().events_dropped > 0);
    let now = all(&store);
    assert_eq!(now.len(), 1800 - 10);
    assert!(store.verify().unwrap().is_clean());
    store.close().unwrap();

    // Without the option: the marker names the archive.
    let store = opts().open(&dir).unwrap();
    assert_eq!(store.archive_dir().unwrap(), Some(archive.clone()));
    assert_eq!(all(&store), now);
    drop(store);
    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(all(&ro), now);
    let rep = evlog::verify_dir(&dir).unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
    assert!(rep.segments > sealed);
}

#[test]
fn a_missing_archive_is_a_clear_error_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (dir, archive, store) = store_with_archive(&t, 800);
    let before = all(&store);
    store.archive_sealed(Duration::ZERO).unwrap();
    store.close().unwrap();
    let moved = t.path().join("unplugged");
    std::fs::rename(&archive, &moved).unwrap();
    match opts().open(&dir) {
        Err(Error::Io { path, .. }) => assert_eq!(path, archive),
        other => panic!("expected an I/O error naming the archive, got {other:?}"),
    }
    std::fs::rename(&moved, &archive).unwrap();
    let store = opts().open(&dir).unwrap();
    assert_eq!(all(&store), before);
}

#[test]
fn a_moved_archive_is_found_through_the_option() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let store = opts().archive_dir("old").open(&dir).unwrap();
    fill(&store, 0, 800);
    let before = all(&store);
    store.archive_sealed(Duration::ZERO).unwrap();
    // A relative archive path is relative to the store directory.
    assert!(dir.join("old").is_dir());
    store.close().unwrap();
    let elsewhere = t.path().join("elsewhere");
    std::fs::rename(dir.join("old"), &elsewhere).unwrap();
    let store = opts().archive_dir(&elsewhere).open(&dir).unwrap();
    assert_eq!(all(&store), before);
    drop(store);
    let store = opts().open(&dir).unwrap();
    assert_eq!(all(&store), before, "the marker follows the option");
}

#[test]
fn archiving_without_an_archive_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = opts().open(t.path()).unwrap();
    fill(&store, 0, 300);
    assert!(matches!(
        store.archive_sealed(Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(count(t.path(), "seg"), store.sealed_segments().0 + 1);
}

#[test]
fn when_both_copies_exist_the_store_directory_wins_and_the_archive_copy_goes() {
    let t = tempfile::tempdir().unwrap();
    let (dir, archive, store) = store_with_archive(&t, 600);
    let before = all(&store);
    let first = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .min()
        .unwrap();
    let copy = std::fs::read(&first).unwrap();
    store.archive_sealed(Duration::ZERO).unwrap();
    store.close().unwrap();
    // As after a crash between copying the segment and removing it from the store directory.
    std::fs::write(&first, &copy).unwrap();
    let store = opts().open(&dir).unwrap();
    assert!(!archive.join(first.file_name().unwrap()).exists());
    assert_eq!(all(&store), before);
}

#[test]
fn temporary_files_a_crash_left_in_the_archive_are_removed_at_open_and_nothing_else() {
    let t = tempfile::tempdir().unwrap();
    let (dir, archive, store) = store_with_archive(&t, 600);
    store.archive_sealed(Duration::ZERO).unwrap();
    let before = all(&store);
    store.close().unwrap();
    // As after crashes while a segment or its index was being copied there.
    let ours = [
        "00000000000000099999.seg.tmp",
        "00000000000000099999.zseg.tmp",
        "00000000000000099999.idx.tmp",
    ];
    let not_ours = ["notes.tmp", "00000000000000099999.seg.bak", "1.seg.tmp"];
    for n in ours.iter().chain(&not_ours) {
        std::fs::write(archive.join(n), b"partial").unwrap();
    }
    // A read-only open changes nothing.
    drop(opts().open_read_only(&dir).unwrap());
    for n in ours.iter().chain(&not_ours) {
        assert!(archive.join(n).exists(), "{n}");
    }
    let store = opts().open(&dir).unwrap();
    for n in ours {
        assert!(!archive.join(n).exists(), "{n} was left");
    }
    for n in not_ours {
        assert!(archive.join(n).exists(), "{n} was removed");
    }
    assert_eq!(all(&store), before);
}

#[test]
fn an_archive_directory_that_is_a_store_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let store = opts().open(&dir).unwrap();
    fill(&store, 0, 600);
    let before = all(&store);
    store.close().unwrap();
    let segs = count(&dir, "seg");
    // The store directory itself, under two spellings, and another store's directory.
    let other = t.path().join("other");
    opts().open(&other).unwrap().close().unwrap();
    for bad in [dir.clone(), dir.join("."), other] {
        match opts().archive_dir(&bad).open(&dir) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("store directory"), "{m}"),
            other => panic!("{}: expected InvalidArgument, got {other:?}", bad.display()),
        }
        assert_eq!(count(&dir, "seg"), segs, "{}: files changed", bad.display());
    }
    let store = opts().open(&dir).unwrap();
    assert_eq!(all(&store), before);
}

#[test]
fn a_huge_age_archives_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let store = opts().archive_dir(t.path().join("a")).open(&dir).unwrap();
    fill(&store, 0, 600);
    let rep = store.archive_sealed(Duration::MAX).unwrap();
    assert_eq!(rep.segments_moved, 0);
}

#[test]
fn repair_of_damage_in_an_archived_segment_keeps_the_bytes_beside_it() {
    let t = tempfile::tempdir().unwrap();
    let (dir, archive, store) = store_with_archive(&t, 1200);
    store.archive_sealed(Duration::ZERO).unwrap();
    fill(&store, 1200, 10);
    store.close().unwrap();
    let mut segs: Vec<_> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    // Damage the header of the third archived segment: the log is cut there.
    let victim = segs[2].clone();
    let mut b = std::fs::read(&victim).unwrap();
    b[20] ^= 1;
    std::fs::write(&victim, &b).unwrap();
    assert!(opts().open(&dir).is_err());
    let store = opts().repair(true).open(&dir).unwrap();
    let events = all(&store);
    assert!(!events.is_empty() && events.len() < 1210);
    // Nothing was deleted: the damaged segment and the later ones are .corrupt files beside
    // where they were.
    let corrupt_in = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .ends_with(".corrupt")
            })
            .count()
    };
    assert_eq!(corrupt_in(&archive), segs.len() - 2);
    assert!(
        corrupt_in(&dir) >= 1,
        "the store directory's segments after the cut"
    );
    assert!(store.verify().unwrap().is_clean());
}

/// Found in review: two stores sharing one archive directory overwrote each other's archived
/// segments, and the first then read the second's events.
#[test]
fn two_stores_cannot_share_an_archive() {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("card");
    let a = opts()
        .archive_dir(&archive)
        .open(t.path().join("a"))
        .unwrap();
    let b = opts()
        .archive_dir(&archive)
        .open(t.path().join("b"))
        .unwrap();
    fill(&a, 0, 300);
    fill(&b, 10_000, 300);
    let before = all(&a);
    a.archive_sealed(Duration::ZERO).unwrap();
    match b.archive_sealed(Duration::ZERO) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("another store"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(all(&a), before);
    // Reopening `b` is refused too, and removes none of the temp files of a copy that `a`
    // may be making there (found in review: they were removed before the refusal).
    drop(b);
    let in_flight = archive.join("00000000000000999999.seg.tmp");
    std::fs::write(&in_flight, b"a copy in progress").unwrap();
    assert!(opts().open(t.path().join("b")).is_err());
    assert!(in_flight.exists());
    drop(a);
    let a = opts().open(t.path().join("a")).unwrap();
    assert_eq!(all(&a), before);
}

/// Found in review: closing a store released its lock while the background compressor could
/// still remove a `.seg` file it had replaced; a writer opening in that moment took the
/// replacement for a leftover and removed it, losing the segment.
#[test]
fn closing_waits_for_the_compressor_before_another_writer_opens() {
    for round in 0..5 {
        let t = tempfile::tempdir().unwrap();
        let store = opts().compress_sealed(true).open(t.path()).unwrap();
        fill(&store, 0, 1500);
        let before = all(&store);
        store.close().unwrap();
        let store = opts().open(t.path()).unwrap();
        assert_eq!(all(&store), before, "round {round}");
        assert!(store.verify().unwrap().is_clean(), "round {round}");
    }
}
