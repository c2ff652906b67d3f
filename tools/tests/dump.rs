//! `evlog dump` filters and formats.

mod common;

use common::*;
use serde_json::Value;

/// (position, stream, type, version) of every dumped JSON line.
fn dumped(args: &[&str]) -> Vec<(u64, String, String, u64)> {
    let o = evlog(args);
    assert_code(&o, 0, &format!("{args:?}"));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["position"].as_u64().unwrap(),
                v["stream"].as_str().unwrap().to_string(),
                v["type"].as_str().unwrap().to_string(),
                v["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What `make_store` wrote, filtered.
fn expected(n: u64, keep: impl Fn(u64) -> bool) -> Vec<(u64, String, String, u64)> {
    (0..n)
        .filter(|&i| keep(i))
        .map(|i| {
            (
                i,
                format!("order-{}", i % 3),
                TYPES[(i % 3) as usize].to_string(),
                i / 3,
            )
        })
        .collect()
}

#[test]
fn dump_filters_by_stream_type_position_and_limit() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let d = path(t.path());
    let j = ["--format", "jsonl"];
    let run = |extra: &[&str]| {
        let mut args = vec!["dump", d];
        args.extend_from_slice(&j);
        args.extend_from_slice(extra);
        dumped(&args)
    };
    assert_eq!(run(&[]), expected(100, |_| true));
    assert_eq!(run(&["--stream", "order-1"]), expected(100, |i| i % 3 == 1));
    assert_eq!(run(&["--type", "OrderPaid"]), expected(100, |i| i % 3 == 1));
    assert_eq!(
        run(&["--type", "OrderPaid", "--type", "OrderShipped"]),
        expected(100, |i| i % 3 != 0)
    );
    assert_eq!(
        run(&["--from", "10", "--to", "19"]),
        expected(100, |i| (10..=19).contains(&i))
    );
    assert_eq!(run(&["--limit", "5"]), expected(5, |_| true));
    assert_eq!(
        run(&["--stream", "order-2", "--from", "50", "--limit", "4"]),
        expected(100, |i| i % 3 == 2 && i >= 50)[..4].to_vec()
    );
    assert_eq!(
        run(&[
            "--stream-prefix",
            "order-",
            "--type",
            "OrderPlaced",
            "--to",
            "30"
        ]),
        expected(100, |i| i % 3 == 0 && i <= 30)
    );
    assert!(run(&["--stream", "order-1", "--type", "OrderPlaced"]).is_empty());
    assert!(run(&["--stream", "no-such-stream"]).is_empty());
    assert!(run(&["--from", "100"]).is_empty());
}

#[test]
fn dump_table_has_a_header_and_one_row_per_event() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 10);
    let o = evlog(&["dump", path(t.path()), "--stream", "order-0"]);
    assert_code(&o, 0, "dump table");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{out}");
    assert!(
        lines[0].contains("position") && lines[0].contains("type"),
        "{out}"
    );
    for (row, pos) in lines[1..].iter().zip([0, 3, 6, 9]) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[0], pos.to_string(), "{row}");
        assert_eq!(cols[1], "order-0", "{row}");
        assert_eq!(cols[2], (pos / 3).to_string(), "{row}");
        assert_eq!(cols[3], "OrderPlaced", "{row}");
        assert!(row.contains(&format!("{{\"i\":{pos},")), "{row}");
    }
}

#[test]
fn dump_bad_input_exits_2() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 10);
    let o = evlog(&["dump", path(t.path()), "--from", "5", "--to", "1"]);
    assert_code(&o, 2, "from after to");
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = evlog(&["dump", path(&t.path().join("nope"))]);
    assert_code(&o, 2, "missing directory");
    assert_eq!(stderr(&o).lines().count(), 1);
    for args in [
        &["dump", path(t.path()), "--format", "xml"][..],
        &["dump", path(t.path()), "--limit", "x"][..],
        &[
            "dump",
            path(t.path()),
            "--stream",
            "a",
            "--stream-prefix",
            "b",
        ][..],
    ] {
        assert_code(&evlog(args), 2, &format!("{args:?}"));
    }
}
