//! The first durable append after an open does not read the last sealed segment's index: the
//! checkpoint's copy of its id filter rules the new ids out. A re-send of an append stored in
//! that segment is still recognised after the open (the filter lets its id through, and the
//! index is read). Its own test binary: it counts index checks, a process-wide counter.

use evlog::segment::index_checks;
use evlog::{Durability, EventData, ExpectedVersion, StoreOptions, Uuid};

#[test]
fn the_first_append_after_an_open_reads_no_sealed_index_and_resends_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new()
        .segment_bytes(64 << 10)
        .durability(Durability::Always);
    let store = opts.open(dir.path()).unwrap();
    let mut last = None;
    for i in 0..2_000u128 {
        let e = EventData::new("T", vec![7; 40]).with_id(Uuid::from_u128(i + 1));
        let r = store
            .append(
                &format!("s-{}", i % 50),
                ExpectedVersion::Any,
                std::slice::from_ref(&e),
            )
            .unwrap();
        last = Some((format!("s-{}", i % 50), e, r));
    }
    store.seal_active().unwrap();
    let (stream, resend, original) = last.unwrap();
    store.close().unwrap();

    for round in 0..3 {
        let store = opts.open(dir.path()).unwrap();
        let before = index_checks();
        store
            .append(
                &format!("new-{round}"),
                ExpectedVersion::NoStream,
                &[EventData::new("N", b"{}".to_vec())],
            )
            .unwrap();
        assert_eq!(
            index_checks(),
            before,
            "round {round}: the first append after the open checked a sealed segment's index"
        );
        // The last event of the sealed segment, sent again: the original result, nothing new.
        let again = store
            .append(&stream, ExpectedVersion::Any, std::slice::from_ref(&resend))
            .unwrap();
        assert_eq!(again, original, "round {round}");
        assert!(
            index_checks() > before,
            "round {round}: the re-send read the index"
        );
        store.close().unwrap();
    }
    let store = opts.open(dir.path()).unwrap();
    assert!(store.verify().unwrap().is_clean());
}
