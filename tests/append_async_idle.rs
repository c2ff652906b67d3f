//! The syncer thread of `Store::append_async` ends after a while without work, and the next
//! asynchronous append starts another. Its own test binary: it counts the process's threads
//! by name (Linux).

use std::time::{Duration, Instant};

use evlog::{Durability, EventData, ExpectedVersion, StoreOptions};

/// Threads of this process named `evlog-sync`.
fn syncers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "evlog-sync")
        .count()
}

#[test]
fn the_syncer_ends_when_idle_and_the_next_async_append_starts_another() {
    if !std::path::Path::new("/proc/self/task").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = StoreOptions::new()
        .durability(Durability::Always)
        .open(dir.path())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(
        syncers(),
        0,
        "no syncer before the first asynchronous append"
    );
    for round in 0..3u64 {
        let r = rt
            .block_on(
                store
                    .append_async("a", ExpectedVersion::Any, &[EventData::new("T", vec![1])])
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(r.first_position, round);
        assert_eq!(syncers(), 1, "round {round}: one syncer while appends come");
        // Wait (without a deadline on its speed: at most a minute) for it to end when idle.
        let since = Instant::now();
        while syncers() > 0 {
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "round {round}: the idle syncer never ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    store.close().unwrap();
    let store = StoreOptions::new().open(dir.path()).unwrap();
    assert_eq!(store.head_position(), Some(2));
}
