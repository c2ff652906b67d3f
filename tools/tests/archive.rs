//! `evlog archive`: old sealed segments moved to an archive directory, and every command that
//! reads a store (dump, verify, stats, inspect, repair) seeing them there.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use evlog::{Durability, EventData, ExpectedVersion, Store, StoreOptions};
use serde_json::Value;

const EVENTS: u64 = 3000;

fn opts() -> StoreOptions {
    StoreOptions::new()
        .segment_bytes(8 << 10)
        .durability(Durability::Never)
}

/// Appends events `from..from + n` (8 streams, the three types of `common::TYPES`).
fn fill(store: &Store, from: u64, n: u64) {
    for i in from..from + n {
        let e = EventData::new(
            TYPES[(i % 3) as usize],
            format!(
                "{{\"i\":{i},\"note\":\"{}\"}}",
                "lorem ipsum ".repeat((i % 5) as usize)
            ),
        );
        store
            .append(&format!("s-{}", i % 8), ExpectedVersion::Any, &[e])
            .unwrap();
    }
}

/// A closed store of [`EVENTS`] events in 8 KiB segments (so, many sealed ones).
fn make(dir: &Path) {
    let s = opts().open(dir).unwrap();
    fill(&s, 0, EVENTS);
    s.close().unwrap();
}

/// A store directory and an archive directory beside it (not created).
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let arch = t.path().join("arch");
    make(&dir);
    (t, dir, arch)
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

/// Names of the files of `dir` ending in `.ext`, sorted (none when `dir` does not exist).
fn files(dir: &Path, ext: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(&format!(".{ext}")))
        .collect();
    v.sort();
    v
}

/// The line of a repair report's changes that starts with `start` (`"removed FILE"`).
fn change_line<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("  {start} ")))
        .unwrap_or_else(|| panic!("no change {start:?}: {out}"))
}

/// Sealed segments of a closed store (every `.seg` file but the last).
fn sealed(dir: &Path) -> usize {
    files(dir, "seg").len() - 1
}

#[test]
fn archive_moves_sealed_segments_and_every_command_sees_them() {
    let (_t, dir, arch) = dirs();
    let dump_before = dump(&dir);
    let stats_before = json_of(&run_ok(&["stats", "--json", path(&dir)]));
    let segs_before = files(&dir, "seg");
    let n = sealed(&dir);
    assert!(n >= 5, "{segs_before:?}");

    let o = run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    let out = stdout(&o);
    assert!(out.contains(&format!("moved {n} segment(s), ")), "{out}");
    assert!(
        out.contains(&format!("archived segments: {n} of {n} sealed")),
        "{out}"
    );
    assert!(
        out.contains(&format!("archive directory: {}", arch.display())),
        "{out}"
    );
    // The sealed segments and their indexes are in the archive, gone from the store directory,
    // which keeps the active segment and names the archive.
    assert_eq!(files(&arch, "seg"), segs_before[..n].to_vec());
    assert_eq!(files(&arch, "idx").len(), n);
    assert_eq!(files(&dir, "seg"), segs_before[n..].to_vec());
    assert!(
        files(&dir, "idx").iter().all(|i| i == "checkpoint.idx"),
        "{:?}",
        files(&dir, "idx")
    );
    assert!(dir.join("archive.path").is_file());

    // dump and export: the same events.
    assert_eq!(dump(&dir), dump_before);
    let export = stdout(&run_ok(&["export", path(&dir)]));
    assert_eq!(export, dump_before);

    // verify: clean, every segment read.
    let v = json_of(&run_ok(&["verify", "--json", path(&dir)]));
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["segments"], segs_before.len(), "{v}");
    assert_eq!(v["events"], EVENTS, "{v}");

    // stats: the same segments, bytes and events, the archived ones counted.
    let s = json_of(&run_ok(&["stats", "--json", path(&dir)]));
    for k in [
        "events",
        "streams",
        "segments",
        "segment_bytes",
        "image_bytes",
        "index_bytes",
        "event_types",
    ] {
        assert_eq!(s[k], stats_before[k], "{k}: {s}");
    }
    assert_eq!(s["archived_segments"], n, "{s}");
    assert_eq!(s["archive_dir"], path(&arch), "{s}");
    let in_archive: u64 = listing(&arch).iter().map(|(_, l)| l).sum();
    assert_eq!(s["archive_bytes"], in_archive, "{s}");
    let in_store: u64 = listing(&dir).iter().map(|(_, l)| l).sum();
    assert_eq!(s["bytes_on_disk"], in_store + in_archive, "{s}");
    assert_eq!(stats_before["archived_segments"], 0, "{stats_before}");
    assert_eq!(stats_before["archive_dir"], Value::Null, "{stats_before}");
    let out = stdout(&run_ok(&["stats", path(&dir)]));
    assert!(
        out.contains(&format!(
            "archive:        {}: {n} archived segment(s) of the {n} sealed",
            arch.display()
        )),
        "{out}"
    );

    // inspect DIR: every segment in one chain, the archived ones marked, with their path.
    let o = run_ok(&["inspect", path(&dir)]);
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "archive: {} (named by archive.path): {n} segment(s) archived",
            arch.display()
        )),
        "{out}"
    );
    for seg in &segs_before[..n] {
        assert!(
            out.contains(&format!("\n{seg}  sealed, archived  ")),
            "{seg}: {out}"
        );
        assert!(
            out.contains(&format!("  archived: {}\n", arch.join(seg).display())),
            "{seg}: {out}"
        );
    }
    assert!(
        out.contains(&format!("\n{}  active  ", segs_before[n])),
        "{out}"
    );
    assert!(out.contains("archive.path  "), "{out}");
    assert!(out.contains("no problems found"), "{out}");
    let d = json_of(&run_ok(&["inspect", "--json", path(&dir)]));
    assert_eq!(d["clean"], true, "{d}");
    assert_eq!(d["archived_segments"], n, "{d}");
    assert_eq!(d["archive_dir"], path(&arch), "{d}");
    assert_eq!(d["events"], EVENTS, "{d}");
    let segments = d["segments"].as_array().unwrap();
    assert_eq!(segments.len(), segs_before.len());
    for (i, seg) in segments.iter().enumerate() {
        let archived = i < n;
        assert_eq!(seg["archived"], archived, "{seg}");
        let home = if archived { &arch } else { &dir };
        assert_eq!(seg["file"], path(&home.join(&segs_before[i])), "{seg}");
    }
    let indexes = d["indexes"].as_array().unwrap();
    assert_eq!(indexes.len(), n);
    assert!(indexes.iter().all(|i| i["archived"] == true), "{d}");
    // One archived file inspected on its own.
    let one = run_ok(&["inspect", path(&arch.join(&segs_before[0]))]);
    assert!(stdout(&one).contains("sealed"), "{}", stdout(&one));
}

#[test]
fn later_runs_find_the_archive_through_the_marker() {
    let (_t, dir, arch) = dirs();
    let n = sealed(&dir);
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    // More events, more sealed segments; nothing is a day old.
    let s = opts().open(&dir).unwrap();
    fill(&s, EVENTS, 1500);
    s.close().unwrap();
    let dump_before = dump(&dir);
    let more = sealed(&dir);
    assert!(more > 0);
    let v = json_of(&run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "1d",
        "--json",
    ]));
    assert_eq!(v["segments_moved"], 0, "{v}");
    assert_eq!(v["segments_archived"], n, "{v}");
    let out = stdout(&run_ok(&["archive", path(&dir), "--older-than", "30d"]));
    assert!(
        out.contains("moved 0 segment(s): no sealed segment left in the store directory was sealed more than 30d ago"),
        "{out}"
    );
    assert_eq!(files(&dir, "seg").len(), more + 1);

    // Without --to: the marker names the archive.
    let v = json_of(&run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--json",
    ]));
    assert_eq!(v["dir"], path(&dir), "{v}");
    assert_eq!(v["archive_dir"], path(&arch), "{v}");
    assert_eq!(v["older_than_secs"], 0, "{v}");
    assert_eq!(v["segments_moved"], more, "{v}");
    assert_eq!(v["segments_archived"], n + more, "{v}");
    assert_eq!(v["sealed_segments"], n + more, "{v}");
    assert!(v["bytes_moved"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(files(&arch, "seg").len(), n + more);
    assert_eq!(files(&dir, "seg").len(), 1);
    assert_eq!(dump(&dir), dump_before);
    // The same directory given again changes nothing.
    let v = json_of(&run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
        "--json",
    ]));
    assert_eq!(v["segments_moved"], 0, "{v}");
    assert_eq!(v["segments_archived"], n + more, "{v}");
    assert!(evlog::verify_dir(&dir).unwrap().is_clean());
}

#[test]
fn a_relative_archive_is_relative_to_the_store_and_a_moved_one_is_followed() {
    let (t, dir, _) = dirs();
    let n = sealed(&dir);
    let dump_before = dump(&dir);
    let v = json_of(&run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        "old",
        "--json",
    ]));
    assert_eq!(v["archive_dir"], path(&dir.join("old")), "{v}");
    assert_eq!(files(&dir.join("old"), "seg").len(), n);

    // Another --to while the archive still holds its segments: refused, nothing changes.
    let elsewhere = t.path().join("elsewhere");
    let then = listing(&dir);
    let o = evlog(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&elsewhere),
    ]);
    assert_code(&o, 2, "archive --to another directory");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("holds {n} segment file(s)")), "{err}");
    assert!(err.contains("move its files to"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(listing(&dir), then);
    assert!(!elsewhere.exists());

    // The archive moved: --to names where it is now, and the marker follows.
    std::fs::rename(dir.join("old"), &elsewhere).unwrap();
    let o = evlog(&["verify", path(&dir)]);
    assert_code(&o, 2, "verify with the archive moved away");
    let v = json_of(&run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&elsewhere),
        "--json",
    ]));
    assert_eq!(v["archive_dir"], path(&elsewhere), "{v}");
    assert_eq!(v["segments_archived"], n, "{v}");
    assert_eq!(dump(&dir), dump_before);
    let s = json_of(&run_ok(&["stats", "--json", path(&dir)]));
    assert_eq!(s["archive_dir"], path(&elsewhere), "{s}");
    run_ok(&["verify", path(&dir)]);
}

#[test]
fn archive_refuses_without_an_archive_directory_and_for_the_store_directory_itself() {
    let (_t, dir, arch) = dirs();
    let then = listing(&dir);
    let o = evlog(&["archive", path(&dir), "--older-than", "0s"]);
    assert_code(&o, 2, "archive without --to or marker");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no archive directory"), "{err}");
    assert!(err.contains("--to ARCHIVE_DIR"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(stdout(&o).is_empty());
    let o = evlog(&["archive", "--json", path(&dir), "--older-than", "0s"]);
    assert_code(&o, 2, "archive --json without --to or marker");
    assert!(stdout(&o).is_empty());

    // The store directory itself (it would list every segment twice): refused.
    for to in [path(&dir).to_string(), ".".to_string()] {
        let o = evlog(&["archive", path(&dir), "--older-than", "0s", "--to", &to]);
        assert_code(&o, 2, "archive into the store directory");
        assert!(
            stderr(&o).contains("the store directory itself"),
            "{}",
            stderr(&o)
        );
    }
    // Another store's archive: refused the first time (its files would be overwritten).
    let other = tempfile::tempdir().unwrap();
    let other_store = other.path().join("store");
    make(&other_store);
    run_ok(&[
        "archive",
        path(&other_store),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    let theirs = listing(&arch);
    let o = evlog(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    assert_code(&o, 2, "archive into another store's archive");
    assert!(
        stderr(&o).contains("another store's archive"),
        "{}",
        stderr(&o)
    );
    assert_eq!(listing(&arch), theirs);
    std::fs::remove_dir_all(&arch).unwrap();
    assert_eq!(listing(&dir), then, "nothing was changed");

    // Durations: a number and a unit.
    for bad in ["", "30", "5x", "1.5h", "-1d", "99999999999999999999d"] {
        let o = evlog(&[
            "archive",
            path(&dir),
            "--older-than",
            bad,
            "--to",
            path(&arch),
        ]);
        assert_code(&o, 2, &format!("--older-than {bad:?}"));
        assert!(stderr(&o).contains("--older-than"), "{}", stderr(&o));
    }
    let o = evlog(&["archive", path(&dir), "--to", path(&arch)]);
    assert_code(&o, 2, "archive without --older-than");
    assert_eq!(listing(&dir), then, "nothing was changed");
    assert!(!arch.exists());

    // Not a store.
    let empty = tempfile::tempdir().unwrap();
    let o = evlog(&[
        "archive",
        path(empty.path()),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    assert_code(&o, 2, "archive an empty directory");
    assert!(stderr(&o).contains("not an evlog store"), "{}", stderr(&o));
    assert!(listing(empty.path()).is_empty(), "nothing was created");
    let o = evlog(&[
        "archive",
        path(&empty.path().join("nope")),
        "--older-than",
        "0s",
    ]);
    assert_code(&o, 2, "archive a missing directory");
    assert!(!arch.exists());

    let out = stdout(&run_ok(&["archive", "--help"]));
    assert!(out.contains("Exit codes:"), "{out}");
    assert!(out.contains("3  the store is locked"), "{out}");
    assert!(out.contains("--older-than <DURATION>"), "{out}");
    assert!(out.contains("--to <ARCHIVE_DIR>"), "{out}");
    let out = stdout(&run_ok(&["--help"]));
    assert!(out.contains("archive"), "{out}");
}

#[test]
fn archive_refuses_another_stores_directory_and_changes_nothing() {
    let (t, dir, arch) = dirs();
    let dump_before = dump(&dir);
    // Another store's directory: it holds segment files and a LOCK file.
    let other = t.path().join("other");
    make(&other);
    assert!(other.join("LOCK").is_file());
    let other_then = listing(&other);
    let then = listing(&dir);
    let refused = |to: &Path, what: &str| {
        let o = evlog(&[
            "archive",
            path(&dir),
            "--older-than",
            "0s",
            "--to",
            path(to),
        ]);
        assert_code(&o, 2, what);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(stdout(&o).is_empty(), "{what}");
        err
    };
    // The first time (no marker yet): the tool refuses it, as a directory holding segments.
    let err = refused(&other, "archive --to another store's directory");
    assert!(err.contains("nothing was changed"), "{err}");
    // A directory holding only a LOCK file (a store directory whose segments are elsewhere, or
    // not created yet): the library refuses it as a store directory.
    let locked_only = t.path().join("locked-only");
    std::fs::create_dir(&locked_only).unwrap();
    std::fs::write(locked_only.join("LOCK"), b"").unwrap();
    let err = refused(&locked_only, "archive --to a directory holding a LOCK file");
    assert!(err.contains("is a store directory"), "{err}");
    assert!(err.contains("LOCK"), "{err}");
    assert_eq!(listing(&locked_only), vec![("LOCK".to_string(), 0)]);
    assert_eq!(listing(&dir), then, "nothing was changed");
    assert!(!arch.exists());

    // With a marker naming an empty archive (so the tool lets the archive move): the library
    // refuses the other store's directory, and the marker still names the archive.
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "30d",
        "--to",
        path(&arch),
    ]);
    assert!(files(&arch, "seg").is_empty());
    let marker = std::fs::read(dir.join("archive.path")).unwrap();
    let then = listing(&dir);
    let err = refused(
        &other,
        "archive --to another store's directory, with a marker",
    );
    assert!(err.contains("is a store directory"), "{err}");
    assert_eq!(listing(&dir), then, "nothing was changed");
    assert_eq!(std::fs::read(dir.join("archive.path")).unwrap(), marker);
    assert!(listing(&arch).is_empty());
    assert_eq!(
        listing(&other),
        other_then,
        "the other store was not touched"
    );
    let s = json_of(&run_ok(&["stats", "--json", path(&other)]));
    assert_eq!(s["events"], EVENTS, "{s}");
    assert_eq!(s["archive_dir"], Value::Null, "{s}");
    assert_eq!(dump(&dir), dump_before);
    let s = json_of(&run_ok(&["stats", "--json", path(&dir)]));
    assert_eq!(s["archive_dir"], path(&arch), "{s}");
}

#[test]
fn archive_refuses_a_locked_store_and_changes_nothing() {
    let (_t, dir, arch) = dirs();
    let dump_before = dump(&dir);
    let held = Store::open(&dir).unwrap();
    let then = listing(&dir);
    for json in [false, true] {
        let mut args = vec![
            "archive",
            path(&dir),
            "--older-than",
            "0s",
            "--to",
            path(&arch),
        ];
        if json {
            args.push("--json");
        }
        let o = evlog(&args);
        assert_code(&o, 3, "archive while locked");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("locked by a running writer"), "{err}");
        assert!(err.contains("archive needs the store to itself"), "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
        assert!(stdout(&o).is_empty());
    }
    assert_eq!(listing(&dir), then, "archive changed nothing");
    assert!(!arch.exists(), "no archive was created");
    drop(held);
    assert_eq!(dump(&dir), dump_before);
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    assert!(!files(&arch, "seg").is_empty());
}

#[test]
fn a_missing_archive_fails_reads_naming_it_until_it_is_back() {
    let (t, dir, arch) = dirs();
    let dump_before = dump(&dir);
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    let away = t.path().join("unplugged");
    std::fs::rename(&arch, &away).unwrap();
    let then = listing(&dir);
    for cmd in ["verify", "dump", "stats", "export"] {
        let o = evlog(&[cmd, path(&dir)]);
        assert_code(&o, 2, &format!("{cmd} with the archive missing"));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(err.contains(path(&arch)), "{cmd}: {err}");
    }
    // Commands that open for writing fail the same way, and change nothing.
    let lines = t.path().join("events.jsonl");
    std::fs::write(&lines, "").unwrap();
    for args in [
        vec!["archive", path(&dir), "--older-than", "0s"],
        vec!["compress", path(&dir)],
        vec!["compact", path(&dir)],
        vec!["repair", path(&dir)],
        vec!["import", path(&dir), path(&lines)],
    ] {
        let o = evlog(&args);
        assert_code(&o, 2, &format!("{args:?} with the archive missing"));
        assert!(stderr(&o).contains(path(&arch)), "{}", stderr(&o));
    }
    assert_eq!(
        listing(&dir)
            .into_iter()
            .filter(|(n, _)| n != "LOCK")
            .collect::<Vec<_>>(),
        then.into_iter()
            .filter(|(n, _)| n != "LOCK")
            .collect::<Vec<_>>()
    );
    // inspect reads the files: the store directory's, and a problem naming the archive.
    let o = evlog(&["inspect", path(&dir)]);
    assert_code(&o, 1, "inspect with the archive missing");
    let out = stdout(&o);
    assert!(
        out.contains(&format!("problem: archive directory {}", arch.display())),
        "{out}"
    );

    std::fs::rename(&away, &arch).unwrap();
    run_ok(&["verify", path(&dir)]);
    assert_eq!(dump(&dir), dump_before);
    run_ok(&["inspect", path(&dir)]);
}

#[test]
fn repair_of_a_clean_archived_store_changes_nothing_and_removes_a_leftover_copy() {
    let (_t, dir, arch) = dirs();
    let first = dir.join(&files(&dir, "seg")[0]);
    let copy = std::fs::read(&first).unwrap();
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    let dump_before = dump(&dir);
    let o = run_ok(&["repair", path(&dir)]);
    let out = stdout(&o);
    assert!(out.contains("before: 0 problem(s)"), "{out}");
    assert!(out.contains("changes: none"), "{out}");
    assert!(out.contains("after: clean"), "{out}");

    // As after a crash between copying a segment to the archive and removing it from the store
    // directory: both copies; the store directory's is read, the archive's is a leftover.
    let name = first.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(&first, &copy).unwrap();
    let out = stdout(&run_ok(&["inspect", path(&dir)]));
    assert!(
        out.contains(&format!(
            "  {}  {} byte(s) (copy left in the archive by an interrupted archive run",
            arch.join(&name).display(),
            copy.len()
        )),
        "{out}"
    );
    let s = json_of(&run_ok(&["stats", "--json", path(&dir)]));
    assert_eq!(s["archived_segments"], files(&arch, "seg").len() - 1, "{s}");
    let o = run_ok(&["repair", "--json", path(&dir)]);
    let v = json_of(&o);
    assert_eq!(v["clean"], true, "{v}");
    let changes = v["changes"].as_array().unwrap();
    let removed = changes
        .iter()
        .find(|c| c["file"] == path(&arch.join(&name)))
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(removed["change"], "removed", "{v}");
    assert!(
        removed["detail"]
            .as_str()
            .unwrap()
            .contains("a copy left in the archive by an interrupted archive run"),
        "{v}"
    );
    assert!(!arch.join(&name).exists());
    assert!(first.exists());
    assert_eq!(dump(&dir), dump_before);
    run_ok(&["verify", path(&dir)]);
}

#[test]
fn repair_cuts_damage_in_an_archived_segment() {
    let (_t, dir, arch) = dirs();
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    let archived = files(&arch, "seg");
    let total = archived.len() + 1;
    // A flipped byte in the middle of the third archived segment's frames.
    let victim = arch.join(&archived[2]);
    let mut b = std::fs::read(&victim).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x40;
    std::fs::write(&victim, &b).unwrap();
    let o = evlog(&["verify", path(&dir)]);
    assert_code(&o, 1, "verify an archive with damage");
    assert!(stdout(&o).contains(path(&victim)), "{}", stdout(&o));

    let active = files(&dir, "seg")[0].clone();
    let idx = |seg: &str| seg.replace(".seg", ".idx");

    let o = evlog(&["repair", path(&dir)]);
    let out = stdout(&o);
    assert_code(&o, 0, &format!("repair: {out}"));
    // The damaged segment's index, in the archive, was dropped so that open reads the damage.
    assert!(
        out.contains(&format!(
            "dropped cache(s) so that open re-reads the damaged data: {}, checkpoint.idx",
            arch.join(idx(&archived[2])).display()
        )),
        "{out}"
    );
    // The damaged segment is cut where it is, in the archive; the bytes cut off are kept beside
    // it, in the archive too.
    let at = std::fs::metadata(&victim).unwrap().len();
    assert!(at < b.len() as u64, "{out}");
    let kept = arch.join(format!("{}.{at}.corrupt", archived[2]));
    assert!(
        out.contains(&format!(
            "truncated {} ({} -> {at} bytes): cut {} byte(s) at byte {at}; they are kept in {}, beside it in the archive directory",
            victim.display(),
            b.len(),
            b.len() as u64 - at,
            kept.display()
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b[at as usize..]);
    assert!(
        out.contains(&format!(
            "created {} ({} bytes): {} damaged byte(s) cut from {}, kept beside it in the archive directory",
            kept.display(),
            b.len() as u64 - at,
            b.len() as u64 - at,
            archived[2]
        )),
        "{out}"
    );
    assert!(
        change_line(
            &out,
            &format!("removed {}", arch.join(idx(&archived[2])).display())
        )
        .ends_with(&format!(
            ": the index of {}, cut: it is now the active segment, which has no index until it is sealed",
            archived[2]
        )),
        "{out}"
    );
    // Every later segment is moved aside whole beside where it was: the archived ones in the
    // archive, with their indexes removed there; the store directory's in the store directory.
    for later in &archived[3..] {
        let to = arch.join(format!("{later}.corrupt"));
        let len = std::fs::metadata(&to).unwrap().len();
        assert!(
            out.contains(&format!(
                "moved {} (was {len} bytes): the whole segment ({len} bytes) moved to {}, beside it in the archive directory: it lies after the cut\n",
                arch.join(later).display(),
                to.display()
            )),
            "{later}: {out}"
        );
        assert!(to.is_file(), "{later}");
        assert!(!arch.join(later).exists(), "{later}");
        assert!(!dir.join(format!("{later}.corrupt")).exists(), "{later}");
        assert!(
            change_line(&out, &format!("removed {}", arch.join(idx(later)).display())).ends_with(
                &format!(
                    ": the index of {later}, which was moved aside: removed from the archive directory, where both were"
                )
            ),
            "{later}: {out}"
        );
    }
    assert!(
        out.contains(&format!(
            "moved {active} (was {len} bytes): the whole segment ({len} bytes) moved to {active}.corrupt: it lies after the cut",
            len = std::fs::metadata(dir.join(format!("{active}.corrupt"))).unwrap().len()
        )),
        "{out}"
    );
    assert!(!arch.join(format!("{active}.corrupt")).exists());
    // No index is left without its segment, in either directory; no .corrupt file is in the
    // store directory but its own segment's.
    let archive_corrupt: Vec<String> = archived[3..]
        .iter()
        .map(|s| format!("{s}.corrupt"))
        .chain([format!("{}.{at}.corrupt", archived[2])])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(files(&arch, "corrupt"), archive_corrupt);
    assert_eq!(files(&dir, "corrupt"), vec![format!("{active}.corrupt")]);
    assert_eq!(
        files(&arch, "idx"),
        archived[..2].iter().map(|s| idx(s)).collect::<Vec<_>>()
    );
    assert_eq!(files(&dir, "idx"), vec!["checkpoint.idx".to_string()]);
    assert!(
        out.contains(&format!(
            "note: the log ends in {}, in the archive directory",
            victim.display()
        )),
        "{out}"
    );
    assert!(!out.contains("stay in the archive"), "{out}");
    assert!(out.contains("after: clean"), "{out}");
    let v = json_of(&run_ok(&["verify", "--json", path(&dir)]));
    assert_eq!(v["segments"], 3, "{v}");
    assert!(v["events"].as_u64().unwrap() < EVENTS, "{v}");
    assert!(total > 3);
    // The store appends on, to the cut segment in the archive.
    let s = opts().open(&dir).unwrap();
    let head = s.head_position().unwrap();
    fill(&s, 0, 10);
    assert_eq!(s.head_position(), Some(head + 10));
    s.close().unwrap();
    run_ok(&["verify", path(&dir)]);
    // Every segment is in the archive now: the commands that open for writing still take the
    // directory for a store (its marker names the archive).
    assert!(files(&dir, "seg").is_empty(), "{:?}", listing(&dir));
    let v = json_of(&run_ok(&[
        "archive",
        "--json",
        path(&dir),
        "--older-than",
        "0s",
    ]));
    assert_eq!(v["segments_moved"], 0, "{v}");
    assert_eq!(v["segments_archived"], 2, "{v}");
    let v = json_of(&run_ok(&["compress", "--json", path(&dir)]));
    assert_eq!(v["segments"], 2, "{v}");
    assert_eq!(files(&arch, "zseg").len(), 2);
    run_ok(&["verify", path(&dir)]);
}

/// A store whose sealed segments are all archived, with the last archived one damaged in its
/// header (so the log is cut at its start): the store and archive directories, the damaged
/// segment's name, path, length and damaged bytes, and the store directory's active segment.
struct DamagedAtStart {
    _t: tempfile::TempDir,
    dir: PathBuf,
    arch: PathBuf,
    archived: Vec<String>,
    name: String,
    victim: PathBuf,
    bytes: Vec<u8>,
    active: String,
}

fn archived_damaged_at_start() -> DamagedAtStart {
    let (t, dir, arch) = dirs();
    run_ok(&[
        "archive",
        path(&dir),
        "--older-than",
        "0s",
        "--to",
        path(&arch),
    ]);
    let archived = files(&arch, "seg");
    let name = archived.last().unwrap().clone();
    let victim = arch.join(&name);
    let active = files(&dir, "seg")[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[20] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();
    DamagedAtStart {
        _t: t,
        dir,
        arch,
        archived,
        name,
        victim,
        bytes,
        active,
    }
}

#[test]
fn repair_moves_an_archived_segment_damaged_at_its_start_aside_in_the_archive() {
    let DamagedAtStart {
        _t,
        dir,
        arch,
        archived,
        name,
        victim,
        bytes,
        active,
    } = archived_damaged_at_start();
    let len = bytes.len();
    let active_len = std::fs::metadata(dir.join(&active)).unwrap().len();
    let idx = name.replace(".seg", ".idx");

    let o = run_ok(&["repair", path(&dir)]);
    let out = stdout(&o);
    // The damaged segment is moved aside whole beside where it was, in the archive, and its
    // index is removed there; nothing goes from one directory to the other.
    let to = arch.join(format!("{name}.corrupt"));
    assert!(
        out.contains(&format!(
            "moved {} (was {len} bytes): the whole segment ({len} bytes) moved to {}, beside it in the archive directory: it holds the damage, at its start\n",
            victim.display(),
            to.display()
        )),
        "{out}"
    );
    assert!(
        change_line(&out, &format!("removed {}", arch.join(&idx).display())).ends_with(
            &format!(
                ": the index of {name}, which was moved aside: removed from the archive directory, where both were"
            )
        ),
        "{out}"
    );
    // The store directory's active segment lies after the cut: moved aside in the store
    // directory.
    assert!(
        out.contains(&format!(
            "moved {active} (was {active_len} bytes): the whole segment ({active_len} bytes) moved to {active}.corrupt: it lies after the cut\n"
        )),
        "{out}"
    );
    // The log goes on from the cut in a new active segment, in the store directory.
    assert!(
        out.contains(&format!("created {name} (64 bytes): a new active segment")),
        "{out}"
    );
    assert!(out.contains("after: clean"), "{out}");
    assert!(!out.contains("note: the log ends in"), "{out}");
    assert!(!out.contains("in the store directory"), "{out}");
    assert_eq!(std::fs::read(&to).unwrap(), bytes);
    assert!(!victim.exists());
    assert!(!arch.join(&idx).exists());
    assert_eq!(files(&arch, "corrupt"), vec![format!("{name}.corrupt")]);
    assert_eq!(files(&arch, "seg"), archived[..archived.len() - 1].to_vec());
    assert_eq!(
        files(&arch, "idx"),
        archived[..archived.len() - 1]
            .iter()
            .map(|s| s.replace(".seg", ".idx"))
            .collect::<Vec<_>>()
    );
    assert_eq!(files(&dir, "corrupt"), vec![format!("{active}.corrupt")]);
    assert_eq!(
        std::fs::metadata(dir.join(format!("{active}.corrupt")))
            .unwrap()
            .len(),
        active_len
    );
    assert_eq!(files(&dir, "seg"), vec![name.clone()]);
    assert_eq!(std::fs::metadata(dir.join(&name)).unwrap().len(), 64);
    let v = json_of(&run_ok(&["verify", "--json", path(&dir)]));
    assert_eq!(v["segments"], archived.len(), "{v}");

    // The same in JSON: each change names the .corrupt file beside the segment.
    let d = archived_damaged_at_start();
    let v = json_of(&run_ok(&["repair", "--json", path(&d.dir)]));
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["archive_dir"], path(&d.arch), "{v}");
    assert_eq!(v["active_segment_in_archive"], Value::Null, "{v}");
    assert!(v.get("leftover_archive_indexes").is_none(), "{v}");
    let changes = v["changes"].as_array().unwrap();
    let change = |file: &str| {
        changes
            .iter()
            .find(|c| c["file"] == file)
            .unwrap_or_else(|| panic!("no change of {file} in {v}"))
    };
    let moved = change(path(&d.victim));
    assert_eq!(moved["change"], "moved", "{moved}");
    assert_eq!(
        moved["corrupt_file"],
        path(&d.arch.join(format!("{}.corrupt", d.name))),
        "{moved}"
    );
    let after = change(&d.active);
    assert_eq!(after["change"], "moved", "{after}");
    assert_eq!(
        after["corrupt_file"],
        format!("{}.corrupt", d.active),
        "{after}"
    );
    let gone = change(path(&d.arch.join(d.name.replace(".seg", ".idx"))));
    assert_eq!(gone["change"], "removed", "{gone}");
    assert_eq!(gone["corrupt_file"], Value::Null, "{gone}");
    let new = change(&d.name);
    assert_eq!(new["change"], "created", "{new}");
    assert_eq!(new["bytes_after"], 64, "{new}");
    assert!(d.arch.join(format!("{}.corrupt", d.name)).is_file());
    assert!(d.dir.join(format!("{}.corrupt", d.active)).is_file());

    // The same damage in a segment of the store directory: the new active segment takes its
    // name, and the report says the damaged file was moved whole, not cut.
    let (_t2, dir2, _) = dirs();
    let segs = files(&dir2, "seg");
    let name = &segs[segs.len() - 2];
    let victim = dir2.join(name);
    let len = std::fs::metadata(&victim).unwrap().len();
    let mut b = std::fs::read(&victim).unwrap();
    b[20] ^= 0x01;
    std::fs::write(&victim, &b).unwrap();
    let out = stdout(&run_ok(&["repair", path(&dir2)]));
    assert!(
        out.contains(&format!(
            "replaced {name} ({len} -> 64 bytes): the whole segment ({len} bytes) moved to {name}.corrupt: it holds the damage, at its start"
        )),
        "{out}"
    );
    assert!(!out.contains("torn tail"), "{out}");
    assert!(!out.contains(&format!("created {name}.corrupt")), "{out}");
    let idx = name.replace(".seg", ".idx");
    assert!(
        change_line(&out, &format!("removed {idx}")).ends_with(&format!(
            ": the index of {name}, which was moved aside: removed from the store directory, where both were"
        )),
        "{out}"
    );
    assert!(dir2.join(format!("{name}.corrupt")).is_file());
    assert!(!dir2.join(&idx).exists());
}
