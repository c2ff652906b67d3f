//! `evlog repair`: torn tails, damage moved aside, refusal while a writer holds the lock.

mod common;

use common::*;
use evlog::{Direction, ReadFilter, Store};
use serde_json::Value;

fn count_events(dir: &std::path::Path) -> usize {
    let s = Store::open_read_only(dir).unwrap();
    s.read_all(0, Direction::Forward, ReadFilter::all()).count()
}

#[test]
fn repair_cuts_a_torn_tail_and_the_store_opens_clean() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    let active = t.path().join(segs.last().unwrap());
    // A durable writer leaves zeros after the frames at close: the torn write lands right
    // after the frames.
    let len = cut_zeros_after_frames(&active);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 300]).unwrap();
    drop(f);

    let o = evlog(&["repair", path(t.path())]);
    assert_code(&o, 0, "repair a torn tail");
    let out = stdout(&o);
    let seg = segs.last().unwrap();
    assert!(
        out.contains(&format!(
            "truncated {seg} ({} -> {len} bytes): cut a torn tail of 300 byte(s) at byte {len}",
            len + 300
        )),
        "{out}"
    );
    assert!(out.contains("after: clean (100 event(s)"), "{out}");
    assert_eq!(std::fs::metadata(&active).unwrap().len(), len);
    assert!(evlog::verify_dir(t.path()).unwrap().is_clean());
    assert!(evlog::verify_dir(t.path()).unwrap().notes.is_empty());
    let s = Store::open(t.path()).unwrap();
    assert_eq!(s.head_position(), Some(99));
    drop(s);

    // A second repair finds nothing to do.
    let o = evlog(&["repair", path(t.path())]);
    assert_code(&o, 0, "repair a clean store");
    assert!(stdout(&o).contains("changes: none"), "{}", stdout(&o));
}

#[test]
fn repair_moves_damage_aside_even_where_open_does_not_look() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // A flipped bit in the first sealed segment, whose valid .idx lets open skip its frames.
    let seg = t.path().join(&segs[0]);
    let mut b = std::fs::read(&seg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x02;
    std::fs::write(&seg, &b).unwrap();
    let problem = evlog::verify_dir(t.path()).unwrap().problems[0].clone();

    let o = evlog(&["repair", "--json", path(t.path())]);
    assert_code(&o, 0, "repair damage");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["problems_before"][0]["offset"], problem.offset);
    let dropped: Vec<&str> = v["caches_dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        dropped,
        [segs[0].replace(".seg", ".idx").as_str(), "checkpoint.idx"]
    );
    let changes = v["changes"].as_array().unwrap();
    let change = |file: &str| {
        changes
            .iter()
            .find(|c| c["file"] == file)
            .unwrap_or_else(|| panic!("no change of {file} in {v}"))
    };
    // The damaged segment is cut at the damaged frame; the cut bytes are kept.
    let cut = change(&segs[0]);
    assert_eq!(cut["change"], "truncated");
    let at = cut["bytes_after"].as_u64().unwrap();
    assert!(at <= problem.offset && at <= mid as u64, "{cut}");
    let kept = format!("{}.{at}.corrupt", segs[0]);
    assert_eq!(change(&kept)["change"], "created");
    assert_eq!(
        std::fs::metadata(t.path().join(&kept)).unwrap().len(),
        b.len() as u64 - at
    );
    // Every later segment is moved aside whole.
    for s in &segs[1..] {
        assert_eq!(change(s)["change"], "moved", "{s}");
        assert!(t.path().join(format!("{s}.corrupt")).exists());
    }
    // The store opens and holds the events before the damage.
    let n = count_events(t.path());
    assert!(n > 0 && n < 100, "{n}");
    assert!(evlog::verify_dir(t.path()).unwrap().is_clean());
    Store::open(t.path()).unwrap().close().unwrap();

    // The text report says the same.
    let o = evlog(&["repair", path(t.path())]);
    assert_code(&o, 0, "repair again");
}

#[test]
fn repair_refuses_while_another_process_holds_the_lock() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 30);
    // A writer in this process holds the store's lock (an flock) against the child process.
    let held = Store::open(t.path()).unwrap();
    let then = listing(t.path());
    let o = evlog(&["repair", path(t.path())]);
    assert_code(&o, 3, "repair while locked");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("locked by a running writer"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(stdout(&o).is_empty());
    assert_eq!(listing(t.path()), then, "repair changed nothing");
    drop(held);
    // Once the writer is gone, repair runs.
    assert_code(
        &evlog(&["repair", path(t.path())]),
        0,
        "repair after the writer left",
    );
}

#[test]
fn repair_needs_an_existing_store() {
    let t = tempfile::tempdir().unwrap();
    let o = evlog(&["repair", path(&t.path().join("nope"))]);
    assert_code(&o, 2, "missing directory");
    assert!(!t.path().join("nope").exists());
    let o = evlog(&["repair", path(t.path())]);
    assert_code(&o, 2, "empty directory");
    assert!(stderr(&o).contains("not an evlog store"), "{}", stderr(&o));
    assert!(listing(t.path()).is_empty(), "nothing was created");
}
