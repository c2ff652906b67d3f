//! `Store::append_multi` (one frame over several streams, all or nothing, every expected version
//! checked, idempotent) and opaque metadata bytes, read back owned and borrowed.

use std::ops::ControlFlow;
use std::path::Path;

use evlog::wire::frame::{FRAME_VERSION, FRAME_VERSION_MULTI, FrameHeader};
use evlog::wire::segment::SEGMENT_HEADER_BYTES;
use evlog::{
    AppendResult, Direction, Error, EventData, ExpectedVersion, Metadata, ReadFilter,
    RecordedEvent, Store, StoreOptions, Uuid,
};

/// One entry of an `append_multi` batch.
type Entry = (&'static str, ExpectedVersion, Vec<EventData>);

fn ev(ty: &str, n: u128) -> EventData {
    EventData::new(ty, format!(r#"{{"n":{n}}}"#).into_bytes()).with_id(Uuid::from_u128(n))
}

fn all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The version byte of every frame of the first segment file.
fn frame_versions(dir: &Path) -> Vec<u8> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let bytes = std::fs::read(&segs[0]).unwrap();
    let mut at = SEGMENT_HEADER_BYTES;
    let mut out = Vec::new();
    while let Ok(h) = FrameHeader::decode(&bytes[at..]) {
        out.push(h.version);
        at += h.frame_len();
    }
    out
}

#[test]
fn a_batch_over_streams_is_one_frame_with_dense_positions_and_per_stream_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append("b", ExpectedVersion::NoStream, &[ev("X", 1)])
        .unwrap();
    let rs = store
        .append_multi(&[
            (
                "a",
                ExpectedVersion::NoStream,
                vec![ev("A", 10), ev("A", 11)],
            ),
            ("b", ExpectedVersion::Exact(0), vec![ev("B", 12)]),
            ("c", ExpectedVersion::Any, vec![ev("C", 13)]),
        ])
        .unwrap();
    assert_eq!(
        rs,
        [
            AppendResult {
                first_position: 1,
                last_position: 2,
                next_expected_version: 1
            },
            AppendResult {
                first_position: 3,
                last_position: 3,
                next_expected_version: 1
            },
            AppendResult {
                first_position: 4,
                last_position: 4,
                next_expected_version: 0
            },
        ]
    );
    let got: Vec<(String, u64, u64)> = all(&store)
        .iter()
        .map(|e| (e.stream.to_string(), e.version, e.position))
        .collect();
    let want = [
        ("b", 0, 0),
        ("a", 0, 1),
        ("a", 1, 2),
        ("b", 1, 3),
        ("c", 0, 4),
    ];
    assert_eq!(
        got,
        want.map(|(s, v, p)| (s.to_string(), v, p)).to_vec(),
        "read_all"
    );
    assert_eq!(store.stream_version("a"), Some(1));
    assert_eq!(store.stream_version("b"), Some(1));
    let b: Vec<u64> = store
        .read_stream("b", 0, Direction::Forward, usize::MAX)
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(b, [0, 3]);
    store.close().unwrap();
    // The single append is a version-1 frame, the batch one version-3 frame.
    assert_eq!(
        frame_versions(dir.path()),
        [FRAME_VERSION, FRAME_VERSION_MULTI]
    );
    // Reopened (from the checkpoint and by a scan without it): the same.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(all(&store).len(), 5);
    assert_eq!(store.stream_version("a"), Some(1));
    drop(store);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "idx") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(all(&store).len(), 5);
    assert_eq!(store.stream_version("b"), Some(1));
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn one_wrong_expected_version_writes_nothing_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append("b", ExpectedVersion::NoStream, &[ev("X", 1), ev("X", 2)])
        .unwrap();
    for (expected_b, expected_c) in [
        (ExpectedVersion::Exact(0), ExpectedVersion::Any),
        (ExpectedVersion::NoStream, ExpectedVersion::Any),
        (ExpectedVersion::Exact(1), ExpectedVersion::StreamExists),
        (ExpectedVersion::Exact(1), ExpectedVersion::Exact(0)),
    ] {
        let e = store
            .append_multi(&[
                ("a", ExpectedVersion::NoStream, vec![ev("A", 10)]),
                ("b", expected_b, vec![ev("B", 11)]),
                ("c", expected_c, vec![ev("C", 12)]),
            ])
            .unwrap_err();
        match e {
            Error::WrongExpectedVersion { stream, .. } => {
                assert!(stream == "b" || stream == "c", "{stream}")
            }
            e => panic!("{e}"),
        }
        assert_eq!(store.head_position(), Some(1));
        assert_eq!(store.stream_version("a"), None);
        assert_eq!(store.stream_version("c"), None);
    }
    // The same batch with the right versions goes through.
    store
        .append_multi(&[
            ("a", ExpectedVersion::NoStream, vec![ev("A", 10)]),
            ("b", ExpectedVersion::Exact(1), vec![ev("B", 11)]),
        ])
        .unwrap();
    assert_eq!(store.head_position(), Some(3));
}

#[test]
fn bad_batches_are_refused_with_a_clear_error_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let none: [(&str, ExpectedVersion, Vec<EventData>); 0] = [];
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (vec![], "at least one stream"),
        (
            vec![
                ("a", ExpectedVersion::Any, vec![ev("A", 1)]),
                ("b", ExpectedVersion::Any, vec![]),
            ],
            "at least one event",
        ),
        (
            vec![
                ("a", ExpectedVersion::Any, vec![ev("A", 1)]),
                ("a", ExpectedVersion::Any, vec![ev("A", 2)]),
            ],
            "appears twice",
        ),
        (
            vec![
                ("a", ExpectedVersion::Any, vec![ev("A", 1)]),
                ("b", ExpectedVersion::Any, vec![ev("B", 1)]),
            ],
            "event id",
        ),
        (
            vec![
                ("a", ExpectedVersion::Any, vec![ev("A", 1)]),
                ("", ExpectedVersion::Any, vec![ev("B", 2)]),
            ],
            "stream id is empty",
        ),
        (
            vec![
                ("a", ExpectedVersion::Any, vec![ev("A", 1)]),
                (
                    "b",
                    ExpectedVersion::Any,
                    (2..10_002).map(|n| ev("B", n)).collect(),
                ),
            ],
            "MAX_BATCH_EVENTS",
        ),
    ];
    assert!(matches!(
        store.append_multi(&none),
        Err(Error::InvalidArgument(_))
    ));
    for (batch, what) in cases {
        match store.append_multi(&batch) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(what), "{m} / {what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(store.head_position(), None);
    // A deleted stream in the batch refuses the batch.
    store
        .append("gone", ExpectedVersion::Any, &[ev("G", 50)])
        .unwrap();
    store
        .tombstone_stream("gone", ExpectedVersion::Any)
        .unwrap();
    let head = store.head_position();
    let e = store
        .append_multi(&[
            ("a", ExpectedVersion::Any, vec![ev("A", 60)]),
            ("gone", ExpectedVersion::Any, vec![ev("G", 61)]),
        ])
        .unwrap_err();
    assert!(matches!(e, Error::StreamDeleted { .. }), "{e}");
    assert_eq!(store.head_position(), head);
}

#[test]
fn a_resent_batch_returns_the_original_results_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let batch = vec![
        ("a", ExpectedVersion::NoStream, vec![ev("A", 1), ev("A", 2)]),
        ("b", ExpectedVersion::NoStream, vec![ev("B", 3)]),
    ];
    let first = store.append_multi(&batch).unwrap();
    store
        .append("c", ExpectedVersion::Any, &[ev("C", 9)])
        .unwrap();
    // The expected versions are stale now, but a re-send is recognised before they are checked.
    assert_eq!(store.append_multi(&batch).unwrap(), first);
    assert_eq!(store.head_position(), Some(3));
    // The same ids with other content, or split otherwise, are refused.
    let mut changed = batch.clone();
    changed[1].2[0].payload = b"{}".to_vec();
    assert!(matches!(
        store.append_multi(&changed),
        Err(Error::DuplicateEventId { .. })
    ));
    let regrouped = vec![
        ("a", ExpectedVersion::Any, vec![ev("A", 1)]),
        ("b", ExpectedVersion::Any, vec![ev("A", 2), ev("B", 3)]),
    ];
    assert!(matches!(
        store.append_multi(&regrouped),
        Err(Error::DuplicateEventId { .. })
    ));
    // A part of the batch alone is not the batch.
    assert!(matches!(
        store.append("a", ExpectedVersion::Any, &[ev("A", 1), ev("A", 2)]),
        Err(Error::DuplicateEventId { .. })
    ));
    assert_eq!(store.head_position(), Some(3));
    // After a reopen the re-send is still recognised.
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.append_multi(&batch).unwrap(), first);
    assert_eq!(store.head_position(), Some(3));
}

fn meta_event(n: u128) -> EventData {
    let mut m = Metadata::new();
    if n.is_multiple_of(2) {
        m = m.with_correlation_id(Uuid::from_u128(n + 1000));
    }
    if n.is_multiple_of(3) {
        m = m.with_causation_id(Uuid::from_u128(n + 2000));
    }
    if n % 4 != 1 {
        m = m.with("meta", format!(r#"{{"n":{n}}}"#)).with("z", "last");
    }
    if n % 5 < 2 {
        m = m.with_bytes((0..(n % 7 + 1) as u8).collect::<Vec<u8>>());
    }
    ev("M", n).with_metadata(m)
}

/// The borrowed metadata of every event equals the owned decode, on uncompressed and
/// compressed, sealed and active segments.
#[test]
fn borrowed_metadata_equals_the_owned_decode() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .segment_bytes(4096)
        .open(dir.path())
        .unwrap();
    let mut want = Vec::new();
    for n in 0..200u128 {
        let e = meta_event(n);
        want.push(e.metadata.clone());
        if n % 10 == 9 {
            store
                .append_multi(&[
                    ("m-a", ExpectedVersion::Any, vec![e]),
                    ("m-b", ExpectedVersion::Any, vec![ev("N", 10_000 + n)]),
                ])
                .unwrap();
            want.push(Metadata::new());
        } else {
            store.append("m-a", ExpectedVersion::Any, &[e]).unwrap();
        }
    }
    let check = |store: &Store| {
        let mut seen = 0;
        store
            .replay(0, u64::MAX, &ReadFilter::all(), |e| {
                let owned = e.metadata();
                assert_eq!(owned, want[e.position as usize], "position {}", e.position);
                assert_eq!(e.correlation_id(), owned.correlation_id);
                assert_eq!(e.causation_id(), owned.causation_id);
                assert!(e.metadata_entries().eq(owned.extra.iter()));
                for (k, v) in owned.extra.iter() {
                    assert_eq!(e.metadata_value(k), Some(v));
                }
                assert_eq!(e.metadata_value("absent"), None);
                assert_eq!(e.metadata_bytes(), owned.bytes.as_slice());
                seen += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, want.len());
        let owned: Vec<Metadata> = all(store).into_iter().map(|e| e.metadata).collect();
        assert_eq!(owned, want);
        // And through one stream's borrowed replay.
        store
            .replay_stream("m-a", 0, |e| {
                assert_eq!(
                    e.metadata_bytes(),
                    want[e.position as usize].bytes.as_slice()
                );
                ControlFlow::Continue(())
            })
            .unwrap();
    };
    check(&store);
    store.seal_active().unwrap();
    store.compress_sealed().unwrap();
    check(&store);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    check(&store);
    assert!(store.verify().unwrap().is_clean());
}

/// Frames of version 3 survive compaction with their version (and their placeholders), and
/// the events compaction keeps read back the same.
#[test]
fn compaction_keeps_multi_stream_frames_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .segment_bytes(4096)
        .open(dir.path())
        .unwrap();
    for n in 0..60u128 {
        store
            .append_multi(&[
                ("keep", ExpectedVersion::Any, vec![meta_event(n)]),
                ("drop", ExpectedVersion::Any, vec![ev("D", 1000 + n)]),
            ])
            .unwrap();
    }
    store.delete_stream("drop", ExpectedVersion::Any).unwrap();
    store.seal_active().unwrap();
    let before: Vec<RecordedEvent> = all(&store);
    assert!(before.iter().all(|e| &*e.stream == "keep"));
    let report = store.compact().unwrap();
    assert!(report.events_dropped > 0, "{report:?}");
    assert_eq!(all(&store), before);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(all(&store), before);
    assert!(store.verify().unwrap().is_clean());
}

/// Opaque metadata bytes go through export and import (as `metadata.bytes_base64`).
#[test]
fn metadata_bytes_survive_export_and_import() {
    use evlog::export::{ImportOptions, export_events, import_events};
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    for n in 0..10u128 {
        store
            .append("m", ExpectedVersion::Any, &[meta_event(n)])
            .unwrap();
    }
    let mut lines = Vec::new();
    export_events(&store, None, &mut lines, &mut |_| {}).unwrap();
    assert!(String::from_utf8_lossy(&lines).contains("\"bytes_base64\":\""));
    let b = tempfile::tempdir().unwrap();
    let copy = Store::open(b.path()).unwrap();
    let report = import_events(&copy, &lines[..], &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.appended, 10);
    let meta = |s: &Store| all(s).into_iter().map(|e| e.metadata).collect::<Vec<_>>();
    assert_eq!(meta(&copy), meta(&store));
    assert!(meta(&copy).iter().any(|m| !m.bytes.is_empty()));
}

/// Import appends lines in batches (one `append_multi` per 100 lines): a whole-store export
/// imports with the same positions, versions and timestamps; lines the store refuses in the
/// middle of a batch are rejected alone, the others of the batch are appended.
#[test]
fn batched_import_keeps_order_and_times_and_rejects_only_bad_lines() {
    use evlog::export::{ImportOptions, export_events, import_events};
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    for n in 0..350u128 {
        let stream = format!("s-{}", (n * 7919) % 13);
        store
            .append_at(
                &stream,
                ExpectedVersion::Any,
                &[meta_event(n)],
                1_700_000_000_000_000 + n as u64,
            )
            .unwrap();
    }
    let mut lines = Vec::new();
    export_events(&store, None, &mut lines, &mut |_| {}).unwrap();
    let b = tempfile::tempdir().unwrap();
    let copy = Store::open(b.path()).unwrap();
    let report = import_events(&copy, &lines[..], &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!((report.appended, report.rejected), (350, 0));
    let key = |s: &Store| {
        all(s)
            .into_iter()
            .map(|e| {
                (
                    e.position,
                    e.stream.to_string(),
                    e.version,
                    e.timestamp_us,
                    e.id,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&copy), key(&store));

    // Bad lines inside a batch: a version gap (line 41), an id used twice (line 77 reuses line
    // 5's id), and text that is not JSON (line 120).
    let text = String::from_utf8(lines).unwrap();
    let mut out: Vec<String> = text.lines().map(str::to_owned).collect();
    let id5 = all(&store)[4].id.to_string();
    let id77 = all(&store)[76].id.to_string();
    out[40] = out[40].replacen("\"version\":", "\"version\":9", 1);
    out[76] = out[76].replace(&id77, &id5);
    out[119] = "{not json".to_owned();
    let c = tempfile::tempdir().unwrap();
    let third = Store::open(c.path()).unwrap();
    let input = out.join("\n");
    let report = import_events(
        &third,
        input.as_bytes(),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let rejected: Vec<u64> = report.rejections.iter().map(|r| r.line).collect();
    assert!(
        rejected.contains(&41) && rejected.contains(&77) && rejected.contains(&120),
        "{rejected:?}"
    );
    // Whatever else was rejected is a later line of a stream whose earlier line was rejected
    // (its version no longer follows), as when lines are appended one by one; everything
    // appended is in the original order.
    assert_eq!(report.appended + report.rejected, 350);
    let got: Vec<Uuid> = all(&third).into_iter().map(|e| e.id).collect();
    let want: Vec<Uuid> = all(&store)
        .into_iter()
        .map(|e| e.id)
        .filter(|id| got.contains(id))
        .collect();
    assert_eq!(got, want);
    for r in &report.rejections {
        if ![41, 77, 120].contains(&r.line) {
            assert!(r.reason.contains("does not follow"), "{r:?}");
        }
    }
}
