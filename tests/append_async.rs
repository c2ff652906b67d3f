//! `Store::append_async`: the append happens when it is called, the future resolves once the
//! events are durable (the syncer thread's fsync), and failures reach the future. Its crash
//! points are in `crash_points.rs` (every seventh append of that workload is asynchronous).

use std::sync::Arc;
use std::time::Duration;

use evlog::{
    Direction, Durability, Error, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions,
};

fn event(i: u64) -> EventData {
    EventData::new("Tick", format!(r#"{{"n":{i}}}"#).into_bytes())
}

fn durable(dir: &std::path::Path) -> Store {
    StoreOptions::new()
        .durability(Durability::Always)
        .segment_bytes(64 << 10)
        .open(dir)
        .unwrap()
}

fn payloads(store: &Store, stream: &str) -> Vec<Vec<u8>> {
    store
        .read_stream(stream, 0, Direction::Forward, usize::MAX)
        .map(|e| e.unwrap().payload.to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_appends_are_all_durable_dense_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(durable(dir.path()));
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                for i in 0..60u64 {
                    let stream = format!("s-{t}");
                    let expected = match i {
                        0 => ExpectedVersion::NoStream,
                        _ => ExpectedVersion::Exact(i - 1),
                    };
                    let r = store
                        .append_async(&stream, expected, &[event(t * 1000 + i)])
                        .unwrap()
                        .await
                        .unwrap();
                    // Durable means visible too.
                    assert!(store.head_position() >= Some(r.last_position));
                    results.push(r);
                }
                results
            })
        })
        .collect();
    let mut positions = Vec::new();
    for (t, task) in tasks.into_iter().enumerate() {
        let results = task.await.unwrap();
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.next_expected_version, i as u64);
            positions.push(r.first_position);
        }
        let want: Vec<Vec<u8>> = (0..60u64)
            .map(|i| event(t as u64 * 1000 + i).payload.to_vec())
            .collect();
        assert_eq!(payloads(&store, &format!("s-{t}")), want);
    }
    positions.sort_unstable();
    assert_eq!(positions, (0..480).collect::<Vec<u64>>());

    // All of it after a reopen.
    let store = Arc::into_inner(store).unwrap();
    store.close().unwrap();
    let store = durable(dir.path());
    assert_eq!(store.head_position(), Some(479));
    assert_eq!(payloads(&store, "s-3").len(), 60);
}

#[test]
fn a_wrong_expected_version_fails_at_once_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = durable(dir.path());
    store
        .append("a", ExpectedVersion::NoStream, &[event(0)])
        .unwrap();
    let err = store
        .append_async("a", ExpectedVersion::NoStream, &[event(1)])
        .unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion { .. }), "{err}");
    let err = store
        .append_async("a", ExpectedVersion::Any, &[])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(store.head_position(), Some(0));
}

#[test]
fn a_future_dropped_unpolled_still_gets_its_events_made_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = durable(dir.path());
    let pending = store
        .append_async("a", ExpectedVersion::NoStream, &[event(7)])
        .unwrap();
    drop(pending);
    // With `Durability::Always` events become visible only once durable: the syncer thread
    // makes them so although nobody waits for them.
    assert_eq!(
        store.wait_for_head_after(None, Duration::from_secs(60)),
        Some(0)
    );
    drop(store);
    let store = durable(dir.path());
    assert_eq!(payloads(&store, "a"), vec![event(7).payload.to_vec()]);
}

#[test]
fn closing_the_store_resolves_a_pending_append_as_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = durable(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pending = store
        .append_async("a", ExpectedVersion::NoStream, &[event(1)])
        .unwrap();
    store.close().unwrap();
    // Either the syncer or the close made it durable; both tell the future so.
    let r = rt.block_on(pending).unwrap();
    assert_eq!(r.first_position, 0);
    let store = durable(dir.path());
    assert_eq!(store.head_position(), Some(0));
    // A store opened again starts its own syncer.
    let r = rt
        .block_on(
            store
                .append_async("a", ExpectedVersion::Exact(0), &[event(2)])
                .unwrap(),
        )
        .unwrap();
    assert_eq!(r.first_position, 1);
}

#[test]
fn without_fsyncs_to_wait_for_the_future_is_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for durability in [
        Durability::Never,
        Durability::Interval(Duration::from_secs(3600)),
    ] {
        let store = StoreOptions::new()
            .durability(durability)
            .open(dir.path())
            .unwrap();
        let pending = store
            .append_async("a", ExpectedVersion::Any, &[event(1)])
            .unwrap();
        assert!(pending.is_durable(), "{durability:?}");
        let head = store.head_position();
        assert!(head.is_some());
        let all: Vec<_> = store
            .read_all(0, Direction::Forward, ReadFilter::all())
            .collect();
        assert_eq!(all.len() as u64, head.unwrap() + 1);
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_failed_write_or_fsync_fails_the_future_and_refuses_later_appends() {
    use evlog::io::fault::{Fault, FaultFs};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for transient in [false, true] {
        let fs = FaultFs::new();
        let store = StoreOptions::new()
            .durability(Durability::Always)
            .vfs(Arc::new(fs.clone()))
            .open("/store")
            .unwrap();
        rt.block_on(
            store
                .append_async("a", ExpectedVersion::NoStream, &[event(0)])
                .unwrap(),
        )
        .unwrap();
        // The next operation (the syncer's write of the frame) fails.
        let at = fs.ops();
        fs.set_fault(Some(if transient {
            Fault::TransientEio(at)
        } else {
            Fault::PersistentEio(at)
        }));
        let pending = store
            .append_async("a", ExpectedVersion::Exact(0), &[event(1)])
            .unwrap();
        let err = rt.block_on(pending).unwrap_err();
        assert!(matches!(err, Error::Poisoned), "{err}");
        // Poisoned until reopened, whether or not the disk works again.
        let err = store
            .append_async("a", ExpectedVersion::Any, &[event(2)])
            .unwrap_err();
        assert!(matches!(err, Error::Poisoned), "{err}");
    }
}
