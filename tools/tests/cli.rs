//! Runs the built `evlog` binary against stores in temporary directories.

use std::path::Path;
use std::process::{Command, Output};

use evlog::{Direction, EventData, ExpectedVersion, ReadFilter, StoreOptions};

fn evlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evlog"))
        .args(args)
        .output()
        .expect("run evlog")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A store of `n` events over three streams and three types, with 4 KiB segments so that it has
/// several sealed segments. Returns per-type counts.
fn make_store(dir: &Path, n: u64) -> [(&'static str, u64); 3] {
    let s = StoreOptions::new().segment_bytes(4096).open(dir).unwrap();
    let types = ["OrderPlaced", "OrderPaid", "OrderShipped"];
    let mut counts = [0u64; 3];
    for i in 0..n {
        let t = (i % 3) as usize;
        counts[t] += 1;
        let e = EventData::new(
            types[t],
            format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(40)),
        );
        s.append(&format!("order-{}", i % 3), ExpectedVersion::Any, &[e])
            .unwrap();
    }
    s.close().unwrap();
    [
        (types[0], counts[0]),
        (types[1], counts[1]),
        (types[2], counts[2]),
    ]
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn verify_clean_store_exits_0() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let o = evlog(&["verify", path(t.path())]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(": clean"), "{out}");
    assert!(out.contains("100 event(s)"), "{out}");
    assert!(!out.contains("problem:"), "{out}");
    let o = evlog(&["verify", "--json", path(t.path())]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("\"clean\": true"), "{out}");
    assert!(out.contains("\"events\": 100"), "{out}");
    assert!(out.contains("\"problems\": []"), "{out}");
}

#[test]
fn verify_flipped_bit_exits_1_and_names_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // A bit in the middle of the first (sealed) segment.
    let seg = t.path().join(&segs[0]);
    let mut b = std::fs::read(&seg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x04;
    std::fs::write(&seg, &b).unwrap();
    let rep = evlog::verify_dir(t.path()).unwrap();
    assert!(!rep.is_clean());

    let o = evlog(&["verify", path(t.path())]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for p in &rep.problems {
        let line = format!(
            "problem: {} at byte {}: {}",
            p.file.display(),
            p.offset,
            p.what
        );
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    // The first problem is in the damaged frame, near the flipped byte.
    let first = &rep.problems[0];
    assert_eq!(first.file, seg);
    assert!(first.offset <= mid as u64 && mid as u64 - first.offset < 4096);

    let o = evlog(&["verify", "--json", path(t.path())]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("\"clean\": false"), "{out}");
    assert!(out.contains(&segs[0]), "{out}");
    assert!(
        out.contains(&format!("\"offset\": {}", first.offset)),
        "{out}"
    );
}

#[test]
fn missing_directory_exits_2_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    for cmd in ["verify", "stats", "inspect", "dump", "export", "repair"] {
        let o = evlog(&[cmd, path(&missing)]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(err.contains("nope"), "{err}");
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["verify"][..],
        &["stats"][..],
        &["verify", "a", "b"][..],
        &["stats", "--bogus", "."][..],
        &["inspect"][..],
        &["dump"][..],
        &["repair"][..],
        &["export"][..],
        &["import", "."][..],
        &["import", ".", "a", "b"][..],
        &["bench", "--durability", "sometimes"][..],
        &["bench", "--events", "0"][..],
        &["bench", "--threads", "x"][..],
        &["dump", ".", "--format", "csv"][..],
    ] {
        let o = evlog(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn help_documents_exit_codes() {
    for cmd in [
        None,
        Some("verify"),
        Some("stats"),
        Some("inspect"),
        Some("dump"),
        Some("repair"),
        Some("export"),
        Some("import"),
        Some("bench"),
    ] {
        let args: Vec<&str> = cmd.into_iter().chain(["--help"]).collect();
        let o = evlog(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let out = stdout(&o);
        assert!(out.contains("Exit codes:"), "{out}");
        assert!(out.contains("problems found"), "{out}");
        assert!(out.contains("3  the store is locked"), "{out}");
    }
    // Import documents what happens to timestamps.
    let out = stdout(&evlog(&["import", "--help"]));
    assert!(out.contains("import time"), "{out}");
}

#[test]
fn stats_match_what_was_appended() {
    let t = tempfile::tempdir().unwrap();
    let counts = make_store(t.path(), 100);
    let segs = segments(t.path());
    let on_disk: u64 = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let (oldest, newest) = {
        let s = StoreOptions::new().open_read_only(t.path()).unwrap();
        let all: Vec<_> = s
            .read_all(0, Direction::Forward, ReadFilter::all())
            .collect::<evlog::Result<_>>()
            .unwrap();
        (
            all.iter().map(|e| e.timestamp_us).min().unwrap(),
            all.iter().map(|e| e.timestamp_us).max().unwrap(),
        )
    };

    let o = evlog(&["stats", "--json", path(t.path())]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "\"events\": 100".to_string(),
        "\"streams\": 3".to_string(),
        format!(
            "\"segments\": {{\"sealed\": {}, \"active\": 1}}",
            segs.len() - 1
        ),
        format!("\"bytes_on_disk\": {on_disk}"),
        format!("\"oldest_timestamp_us\": {oldest}"),
        format!("\"newest_timestamp_us\": {newest}"),
        "\"head_position\": 99".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want} in {out}");
    }
    for (t, n) in counts {
        assert!(out.contains(&format!("\"{t}\": {n}")), "{t} in {out}");
    }
    // Uncompressed segments hold more bytes than the raw events (frame and record headers).
    let ratio: f64 = out
        .split("\"compression_ratio\": ")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no compression_ratio in {out}"));
    assert!(ratio > 0.3 && ratio < 1.0, "compression_ratio {ratio}");

    let o = evlog(&["stats", path(t.path())]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in {out}"))
            .to_string()
    };
    assert!(line("events:").ends_with(" 100"), "{out}");
    assert!(line("streams:").ends_with(" 3"), "{out}");
    assert!(
        line("segments:").contains(&format!(
            "{} ({} sealed, 1 active)",
            segs.len(),
            segs.len() - 1
        )),
        "{out}"
    );
    assert!(
        line("bytes on disk:").contains(&on_disk.to_string()),
        "{out}"
    );
    assert!(line("head position:").ends_with(" 99"), "{out}");
    assert!(
        line("oldest event:").contains(&format!("({oldest} us)")),
        "{out}"
    );
    for (t, n) in counts {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(t) && l.ends_with(&format!(" {n}"))),
            "{t} {n} in {out}"
        );
    }
}

#[test]
fn stats_of_an_empty_directory() {
    let t = tempfile::tempdir().unwrap();
    let o = evlog(&["stats", "--json", path(t.path())]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("\"events\": 0"), "{out}");
    assert!(out.contains("\"head_position\": null"), "{out}");
    assert!(
        std::fs::read_dir(t.path()).unwrap().next().is_none(),
        "stats wrote nothing"
    );
}

#[test]
fn stats_of_a_corrupted_store_exits_1() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    let seg = t.path().join(&segs[0]);
    let mut b = std::fs::read(&seg).unwrap();
    b[100] ^= 0x01;
    std::fs::write(&seg, &b).unwrap();
    // Without the index and the checkpoint, open must read the damaged frame.
    std::fs::remove_file(t.path().join(segs[0].replace(".seg", ".idx"))).unwrap();
    std::fs::remove_file(t.path().join("checkpoint.idx")).unwrap();
    let o = evlog(&["stats", path(t.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&segs[0]), "{err}");
}
