//! `evlog compact`: sealed segments rewritten without the events retention rules and deletions
//! hide, over `.seg` and `.zseg` segments.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use evlog::{Durability, EventData, ExpectedVersion, Store, StoreOptions};
use serde_json::Value;

const EVENTS: u64 = 3000;
const STREAMS: u64 = 8;

fn stream(s: u64) -> String {
    format!("s-{s}")
}

/// A store of [`EVENTS`] events over [`STREAMS`] streams with 8 KiB segments (so, many sealed
/// ones), then rules set through the library: `s-0` keeps its last 10 events, `s-1` is
/// soft-deleted, `s-2` tombstoned. Closed.
fn make_store_with_rules(dir: &Path) {
    let s = StoreOptions::new()
        .segment_bytes(8 << 10)
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    for i in 0..EVENTS {
        let e = EventData::new(
            TYPES[(i % 3) as usize],
            format!(
                "{{\"i\":{i},\"note\":\"{}\"}}",
                "lorem ipsum ".repeat((i % 5) as usize)
            ),
        );
        s.append(&stream(i % STREAMS), ExpectedVersion::Any, &[e])
            .unwrap();
    }
    s.set_retention(&stream(0), None, Some(10)).unwrap();
    s.delete_stream(&stream(1), ExpectedVersion::Any).unwrap();
    s.tombstone_stream(&stream(2), ExpectedVersion::Any)
        .unwrap();
    s.close().unwrap();
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn run_ok(args: &[&str]) -> std::process::Output {
    let o = evlog(args);
    assert_code(&o, 0, &args.join(" "));
    o
}

fn dump(dir: &Path) -> String {
    stdout(&run_ok(&["dump", "--format", "jsonl", path(dir)]))
}

/// Segment files (`.seg` and `.zseg`) with their lengths, sorted by name.
fn segment_files(dir: &Path) -> Vec<(String, u64)> {
    listing(dir)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".seg") || n.ends_with(".zseg"))
        .collect()
}

/// Every segment file (`.seg` and `.zseg`) with its bytes, sorted by name.
fn segment_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    segment_files(dir)
        .into_iter()
        .map(|(n, _)| {
            let b = std::fs::read(dir.join(&n)).unwrap();
            (n, b)
        })
        .collect()
}

/// The segment files that changed between two [`segment_contents`] of a store: how many, their
/// total size before and after. Checks that the same files are there, in the same form.
fn changed(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> (u64, u64, u64) {
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(after),
        names(before),
        "the same segment files, in the same form"
    );
    let (mut n, mut b, mut a) = (0, 0, 0);
    for ((_, x), (_, y)) in before.iter().zip(after) {
        if x != y {
            n += 1;
            b += x.len() as u64;
            a += y.len() as u64;
        }
    }
    (n, b, a)
}

fn names_ending(dir: &Path, suffix: &str) -> Vec<String> {
    segment_files(dir)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(suffix))
        .collect()
}

/// The positions of the events compaction must drop: those hidden (every position of the store
/// not in the dump) that lie before the active segment, the newest `.seg` file.
fn to_drop(dir: &Path, dump: &str) -> Vec<u64> {
    let visible: BTreeSet<u64> = dump
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["position"].as_u64().unwrap()
        })
        .collect();
    (0..active_first(dir))
        .filter(|p| !visible.contains(p))
        .collect()
}

/// The first position of the active segment (the newest `.seg` file).
fn active_first(dir: &Path) -> u64 {
    let active = segments(dir).pop().unwrap();
    let first: u64 = active.strip_suffix(".seg").unwrap().parse().unwrap();
    assert!(first > 0 && first < EVENTS, "{active}");
    first
}

fn expected_dropped(dir: &Path, dump: &str) -> u64 {
    to_drop(dir, dump).len() as u64
}

/// Whether the payload of the event at `position` (event `i` is at position `i`) is in `bytes`.
fn holds_payload(bytes: &[u8], position: u64) -> bool {
    let needle = format!("{{\"i\":{position},");
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The sealed `.seg` files of `dir` (every one but the newest), concatenated.
fn sealed_bytes(dir: &Path) -> Vec<u8> {
    let mut segs = segments(dir);
    segs.pop();
    segs.iter()
        .flat_map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect()
}

/// The version of every stream (read with a read-only open).
fn versions(dir: &Path) -> Vec<Option<u64>> {
    let s = Store::open_read_only(dir).unwrap();
    let v = (0..STREAMS).map(|i| s.stream_version(&stream(i))).collect();
    s.close().unwrap();
    v
}

#[test]
fn compact_drops_hidden_events_and_keeps_what_reads_see() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_store_with_rules(dir);
    let segs_before = segment_files(dir);
    assert!(segs_before.len() >= 10, "{segs_before:?}");
    let dump_before = dump(dir);
    let visible = dump_before.lines().count() as u64;
    // s-0 keeps 10 events, s-1 and s-2 none, the 5 other streams all of theirs.
    assert_eq!(visible, 10 + 5 * EVENTS / STREAMS);
    let versions_before = versions(dir);
    let hidden = to_drop(dir, &dump_before);
    let dropped = hidden.len() as u64;
    assert!(dropped > 0);
    let sealed_before = sealed_bytes(dir);
    assert!(hidden.iter().all(|&p| holds_payload(&sealed_before, p)));

    // Text output: every number, and the segment files got smaller.
    let contents_before = segment_contents(dir);
    let o = run_ok(&["compact", path(dir)]);
    let out = stdout(&o);
    let sealed = segs_before.len() - 1;
    assert!(
        out.starts_with(&format!("compact {}\n", dir.display())),
        "{out}"
    );
    let (rewritten, bytes_before, bytes_after) = changed(&contents_before, &segment_contents(dir));
    assert!(rewritten > 0 && rewritten <= sealed as u64, "{out}");
    assert!(bytes_after < bytes_before, "{out}");
    assert!(
        out.contains(&format!(
            "segments: {sealed} sealed examined, {rewritten} rewritten ("
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("events dropped: {dropped} (")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "bytes: {bytes_before} -> {bytes_after} in the rewritten segments, {} bytes reclaimed",
            bytes_before - bytes_after
        )),
        "{out}"
    );
    assert!(!out.contains("nothing to compact"), "{out}");
    // Every segment file is as large as before or smaller; the active one is untouched.
    let segs_after = segment_files(dir);
    for ((name, after), (_, before)) in segs_after.iter().zip(&segs_before) {
        assert!(after <= before, "{name}: {before} -> {after}");
    }
    assert_eq!(segs_after.last(), segs_before.last(), "the active segment");
    // The dropped events' payloads are gone from the files; the others are still there.
    let sealed_after = sealed_bytes(dir);
    assert!(hidden.iter().all(|&p| !holds_payload(&sealed_after, p)));
    let sealed_end = active_first(dir);
    let kept: Vec<u64> = dump_before
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .filter(|&p| p < sealed_end)
        .collect();
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|&p| holds_payload(&sealed_after, p)));

    // Reads see exactly what they saw; versions are kept; the store is clean.
    assert_eq!(dump(dir), dump_before);
    assert_eq!(versions(dir), versions_before);
    let o = run_ok(&["verify", path(dir)]);
    assert!(stdout(&o).contains(": clean"), "{}", stdout(&o));

    // A second compact drops nothing and changes nothing.
    let then = listing(dir);
    let v = json_of(&run_ok(&["compact", "--json", path(dir)]));
    assert_eq!(v["dir"], dir.display().to_string());
    assert_eq!(v["segments_examined"], sealed, "{v}");
    for key in [
        "segments_rewritten",
        "events_dropped",
        "bytes_before",
        "bytes_after",
        "bytes_reclaimed",
    ] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert_eq!(listing(dir), then);
    let out = stdout(&run_ok(&["compact", path(dir)]));
    assert!(out.contains("events dropped: 0 "), "{out}");
    assert!(out.contains("nothing to compact"), "{out}");
    assert_eq!(dump(dir), dump_before);
}

#[test]
fn compact_json_has_every_field() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_store_with_rules(dir);
    let dump_before = dump(dir);
    let dropped = expected_dropped(dir, &dump_before);
    let before = segment_files(dir);
    let contents_before = segment_contents(dir);

    let v = json_of(&run_ok(&["compact", "--json", path(dir)]));
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes_after",
            "bytes_before",
            "bytes_reclaimed",
            "dir",
            "events_dropped",
            "segments_examined",
            "segments_rewritten",
        ]
    );
    assert_eq!(v["segments_examined"], before.len() as u64 - 1, "{v}");
    let rewritten = v["segments_rewritten"].as_u64().unwrap();
    assert!(rewritten > 0 && rewritten < before.len() as u64, "{v}");
    assert_eq!(v["events_dropped"], dropped, "{v}");
    let b = v["bytes_before"].as_u64().unwrap();
    let a = v["bytes_after"].as_u64().unwrap();
    assert!(a < b, "{v}");
    assert_eq!(v["bytes_reclaimed"], b - a, "{v}");
    let (n, on_disk_before, on_disk_after) = changed(&contents_before, &segment_contents(dir));
    assert_eq!((n, on_disk_before, on_disk_after), (rewritten, b, a), "{v}");
    assert_eq!(dump(dir), dump_before);
    assert_code(&evlog(&["verify", path(dir)]), 0, "verify after compact");
}

#[test]
fn compact_keeps_compressed_segments_compressed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_store_with_rules(dir);
    let dump_before = dump(dir);
    let dropped = expected_dropped(dir, &dump_before);
    run_ok(&["compress", path(dir)]);
    let zsegs = names_ending(dir, ".zseg");
    assert!(zsegs.len() >= 9, "{zsegs:?}");
    assert_eq!(segments(dir).len(), 1, "only the active .seg is left");
    let before = segment_contents(dir);
    assert_eq!(dump(dir), dump_before);

    let v = json_of(&run_ok(&["compact", "--json", path(dir)]));
    assert_eq!(v["segments_examined"], zsegs.len(), "{v}");
    assert_eq!(v["events_dropped"], dropped, "{v}");
    assert_eq!(names_ending(dir, ".zseg"), zsegs, "the segments stay .zseg");
    assert_eq!(segments(dir).len(), 1, "no .seg file came back");
    // What it reports is what happened on disk. (A compressed segment can come out a few bytes
    // larger: the payloads dropped here compress to almost nothing, so no saving is asserted.)
    let (n, b, a) = changed(&before, &segment_contents(dir));
    assert!(n > 0, "{v}");
    assert_eq!(v["segments_rewritten"], n, "{v}");
    assert_eq!(v["bytes_before"], b, "{v}");
    assert_eq!(v["bytes_after"], a, "{v}");
    assert_eq!(v["bytes_reclaimed"], b.saturating_sub(a), "{v}");
    // Each rewritten .zseg holds a valid compressed image without the dropped events.
    for z in &zsegs {
        let seg = evlog::inspect::inspect_segment(&dir.join(z)).unwrap();
        assert!(seg.problems.is_empty(), "{z}: {:?}", seg.problems);
    }
    assert_eq!(dump(dir), dump_before);
    let o = run_ok(&["verify", path(dir)]);
    assert!(
        stdout(&o).contains(&format!("{} of them compressed (.zseg)", zsegs.len())),
        "{}",
        stdout(&o)
    );
    let v = json_of(&run_ok(&["compact", "--json", path(dir)]));
    assert_eq!(v["events_dropped"], 0, "{v}");
}

#[test]
fn compact_refuses_a_locked_store_and_a_directory_without_a_store() {
    let t = tempfile::tempdir().unwrap();
    make_store_with_rules(t.path());
    let dump_before = dump(t.path());
    let held = Store::open(t.path()).unwrap();
    let then = listing(t.path());
    let contents = segment_contents(t.path());
    let o = evlog(&["compact", path(t.path())]);
    assert_code(&o, 3, "compact while locked");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("locked by a running writer"), "{err}");
    assert!(err.contains("compact needs the store to itself"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(stdout(&o).is_empty());
    let o = evlog(&["compact", "--json", path(t.path())]);
    assert_code(&o, 3, "compact --json while locked");
    assert!(stdout(&o).is_empty());
    assert_eq!(listing(t.path()), then, "compact changed nothing");
    assert_eq!(changed(&contents, &segment_contents(t.path())), (0, 0, 0));
    drop(held);
    assert_eq!(dump(t.path()), dump_before);
    let v = json_of(&run_ok(&["compact", "--json", path(t.path())]));
    assert!(v["events_dropped"].as_u64().unwrap() > 0, "{v}");

    let empty = tempfile::tempdir().unwrap();
    let o = evlog(&["compact", path(empty.path())]);
    assert_code(&o, 2, "compact an empty directory");
    assert!(stderr(&o).contains("not an evlog store"), "{}", stderr(&o));
    assert!(listing(empty.path()).is_empty(), "nothing was created");
    let o = evlog(&["compact", path(&empty.path().join("nope"))]);
    assert_code(&o, 2, "compact a missing directory");

    let out = stdout(&run_ok(&["compact", "--help"]));
    assert!(out.contains("Exit codes:"), "{out}");
    assert!(out.contains("compress, import, compact"), "{out}");
    let out = stdout(&run_ok(&["--help"]));
    assert!(out.contains("compact"), "{out}");
}
