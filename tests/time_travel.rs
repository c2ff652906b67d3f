//! Time travel: `SnapshotStore::load_at` rebuilds an aggregate as it was at a version or a
//! time, from the newest snapshot at or before that point (never a later one) plus the events up
//! to it, and equals a fold of the events from zero.

use evlog::snapshot::{Aggregate, At, IgnoredReason, SnapshotStore};
use evlog::{EventData, ExpectedVersion, RecordedEvent, Store};

/// The versions and payload bytes seen, in order: any difference in what was applied shows.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Seen {
    versions: Vec<u64>,
    bytes: u64,
}

impl Aggregate for Seen {
    const SCHEMA_VERSION: u32 = 3;
    fn apply(&mut self, e: &RecordedEvent) {
        self.versions.push(e.version);
        self.bytes += e.payload.len() as u64;
    }
}

const T0: u64 = 1_767_225_600_000_000;

fn fold(events: &[RecordedEvent], to: Option<u64>) -> Seen {
    let mut s = Seen::default();
    for e in events.iter().filter(|e| to.is_some_and(|t| e.version <= t)) {
        s.apply(e);
    }
    s
}

#[test]
fn load_at_a_version_or_a_time_equals_a_fold_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..100u64 {
        store
            .append_at(
                "ai-1",
                ExpectedVersion::Any,
                &[EventData::new("Scored", vec![1; (i % 7) as usize])],
                T0 + i * 1_000,
            )
            .unwrap();
    }
    let events: Vec<RecordedEvent> = store
        .read_stream("ai-1", 0, evlog::Direction::Forward, usize::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    let snaps = SnapshotStore::open(&store);
    for v in [19, 49, 79] {
        snaps
            .save_state("ai-1", v, &fold(&events, Some(v)))
            .unwrap();
    }
    // A snapshot of another schema at 59: skipped (and reported) by loads at or after it.
    snaps.save("ai-1", 59, 99, b"not this schema").unwrap();

    for v in [0u64, 5, 19, 20, 48, 49, 50, 59, 60, 79, 80, 99, 150] {
        let got = snaps
            .load_at::<Seen>(&store, "ai-1", At::Version(v))
            .unwrap();
        let to = v.min(99);
        assert_eq!(got.state, fold(&events, Some(to)), "at version {v}");
        assert_eq!(got.version, Some(to));
        let want_snap = [79, 49, 19].into_iter().find(|s| *s <= to);
        assert_eq!(got.snapshot_version, want_snap, "at version {v}");
        assert_eq!(
            got.events_applied,
            to + 1 - want_snap.map_or(0, |s| s + 1),
            "at version {v}"
        );
        // Only the snapshot of the other schema is reported, and only when it was a candidate.
        let reported: Vec<_> = got.ignored.iter().map(|i| (i.version, i.reason)).collect();
        let want: Vec<_> = if to >= 59 && want_snap < Some(59) {
            vec![(59, IgnoredReason::SchemaMismatch)]
        } else {
            vec![]
        };
        assert_eq!(reported, want, "at version {v}");
    }
    // By time: up to the last event stamped at or before it.
    for (t, want) in [
        (T0 - 1, None),
        (T0, Some(0)),
        (T0 + 999, Some(0)),
        (T0 + 50_000, Some(50)),
        (T0 + 50_500, Some(50)),
        (u64::MAX, Some(99)),
    ] {
        let got = snaps
            .load_at::<Seen>(&store, "ai-1", At::TimeUs(t))
            .unwrap();
        assert_eq!(got.version, want, "at time {t}");
        assert_eq!(got.state, fold(&events, want), "at time {t}");
    }
    // The whole-stream load is unchanged, and a stream without events is the default state.
    let now = snaps.load::<Seen>(&store, "ai-1").unwrap();
    assert_eq!(now.state, fold(&events, Some(99)));
    let none = snaps
        .load_at::<Seen>(&store, "none", At::Version(3))
        .unwrap();
    assert_eq!((none.state, none.version), (Seen::default(), None));
}
