//! `evlog export` and `evlog import`: an exact round trip, idempotence, bad input.

mod common;

use std::path::Path;

use common::*;
use evlog::{
    Direction, EventData, ExpectedVersion, Metadata, ReadFilter, RecordedEvent, Store, Uuid,
};
use serde_json::Value;

fn all_events(dir: &Path) -> Vec<RecordedEvent> {
    let s = Store::open_read_only(dir).unwrap();
    s.read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<evlog::Result<_>>()
        .unwrap()
}

/// Payloads that a JSON round trip could easily get wrong.
fn tricky_payloads() -> Vec<Vec<u8>> {
    let mut big = Vec::with_capacity(3 << 20);
    let mut x = 0x1234_5678u32;
    while big.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.push(x as u8);
    }
    let big_json = format!(
        "{{\"blob\": \"{}\", \"n\" : 1}}",
        "ab\\u00e9".repeat(300_000)
    );
    vec![
        br#"{"z":1,"a":2}"#.to_vec(),
        b"{ \"spaced\" :\t[1, 2 ,3] ,\"k\":{} }".to_vec(),
        b"{\n  \"pretty\": true\n}".to_vec(),
        b" {\"leading\":1}".to_vec(),
        b"{\"trailing\":1} ".to_vec(),
        br#"{"num":1.0e3,"big":123456789012345678901234567890,"esc":"\u00e9\"\/"}"#.to_vec(),
        b"42".to_vec(),
        b"\"just a string\"".to_vec(),
        b"null".to_vec(),
        Vec::new(),
        vec![0, 1, 2, 255, 254, b'\n', b'{'],
        "plain text, ünïcödé".as_bytes().to_vec(),
        big,
        big_json.into_bytes(),
    ]
}

fn build_source(dir: &Path) -> Vec<RecordedEvent> {
    let s = Store::open(dir).unwrap();
    let streams = [
        "order-1",
        "ünïcödé-strøm-🚀",
        "with space/and\\slash",
        "\"quoted\"",
    ];
    let meta = Metadata::new()
        .with_correlation_id(Uuid::from_u128(0xC0))
        .with_causation_id(Uuid::from_u128(0xCA))
        .with("user", "ada")
        .with("multi\nline", "tab\there \u{1} \"q\"")
        .with("ключ", "значение");
    for (i, p) in tricky_payloads().into_iter().enumerate() {
        let stream = streams[i % streams.len()];
        let mut e = EventData::new(format!("Type{}", i % 4), p);
        if i % 2 == 0 {
            e = e.with_metadata(meta.clone());
        }
        s.append(stream, ExpectedVersion::Any, &[e]).unwrap();
    }
    // One append of several events (one frame).
    let batch: Vec<EventData> = (0..5)
        .map(|k| EventData::new("Batched", format!("{{\"k\":{k}}}")))
        .collect();
    s.append("batch", ExpectedVersion::NoStream, &batch)
        .unwrap();
    s.close().unwrap();
    all_events(dir)
}

fn same_events(a: &[RecordedEvent], b: &[RecordedEvent]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.timestamp_us, y.timestamp_us, "timestamp of {}", x.id);
        assert_eq!(x.stream, y.stream);
        assert_eq!(x.version, y.version);
        assert_eq!(x.position, y.position);
        assert_eq!(x.id, y.id);
        assert_eq!(x.event_type, y.event_type);
        assert!(x.payload == y.payload, "payload of {} differs", x.id);
        assert_eq!(x.metadata, y.metadata);
    }
}

#[test]
fn export_import_round_trip_is_exact_and_import_is_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("dst");
    let file = t.path().join("events.jsonl");
    let original = build_source(&src);

    let o = evlog(&["export", path(&src), "--output", path(&file)]);
    assert_code(&o, 0, "export");
    // Also through stdout: the same bytes.
    let o2 = evlog(&["export", path(&src)]);
    assert_code(&o2, 0, "export to stdout");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(o2.stdout, text.as_bytes());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), original.len());
    // JSON payloads that a line carries verbatim go in "data"; the rest in base64.
    assert!(
        lines[0].ends_with(r#","data":{"z":1,"a":2}}"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(",\"data\":{ \"spaced\" :\t[1, 2 ,3] ,\"k\":{} }}"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("\"data_base64\":"), "{}", lines[2]);
    assert!(lines[3].contains("\"data_base64\":"), "{}", lines[3]);
    assert!(lines[9].ends_with(",\"data_base64\":\"\"}"), "{}", lines[9]);
    let v: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["stream"], "ünïcödé-strøm-🚀");
    assert_eq!(v["metadata"]["extra"].as_object().unwrap().len(), 0);
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        v["metadata"]["correlation_id"],
        Uuid::from_u128(0xC0).to_string()
    );
    assert_eq!(
        v["metadata"]["extra"]["multi\nline"],
        "tab\there \u{1} \"q\""
    );
    assert_eq!(v["timestamp_us"], original[0].timestamp_us);

    let o = evlog(&["import", path(&dst), path(&file)]);
    assert_code(&o, 0, "import");
    let n = original.len();
    assert!(
        stdout(&o).contains(&format!(
            "{n} line(s), {n} appended, 0 skipped (already stored), 0 rejected"
        )),
        "{}",
        stdout(&o)
    );
    let imported = all_events(&dst);
    same_events(&original, &imported);

    // Import twice: nothing new is written.
    let before = listing(&dst)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".seg"))
        .collect::<Vec<_>>();
    let o = evlog(&["import", "--json", path(&dst), path(&file)]);
    assert_code(&o, 0, "import again");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["appended"], 0);
    assert_eq!(v["skipped"], n);
    assert_eq!(v["rejected"], 0);
    let after = listing(&dst)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".seg"))
        .collect::<Vec<_>>();
    assert_eq!(before, after);
    same_events(&original, &all_events(&dst));

    // A second export of the copy gives the same lines, byte for byte.
    let o = evlog(&["export", path(&dst)]);
    assert_code(&o, 0, "export the copy");
    assert_eq!(text, stdout(&o));
}

#[test]
fn export_of_one_stream_and_import_from_stdin() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 30);
    let o = evlog(&["export", path(t.path()), "--stream", "order-2"]);
    assert_code(&o, 0, "export a stream");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 10);
    for (v, l) in out.lines().enumerate() {
        let j: Value = serde_json::from_str(l).unwrap();
        assert_eq!(j["stream"], "order-2");
        assert_eq!(j["version"], v as u64);
    }
    let dst = t.path().join("copy");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evlog"))
        .args(["import", path(&dst), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), out.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0, "import from stdin");
    let copy = all_events(&dst);
    assert_eq!(copy.len(), 10);
    assert!(copy.iter().all(|e| &*e.stream == "order-2"));
}

#[test]
fn import_keeps_the_timestamp_and_copies_it_into_metadata_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    let line = r#"{"stream":"s","type":"T","version":0,"id":"00000000-0000-0000-0000-0000000000aa","timestamp_us":1234567,"data":{}}"#;
    let file = t.path().join("one.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();

    let plain = t.path().join("plain");
    assert_code(&evlog(&["import", path(&plain), path(&file)]), 0, "import");
    let e = &all_events(&plain)[0];
    assert!(e.metadata.extra.is_empty());
    assert_eq!(
        e.timestamp_us, 1234567,
        "the event keeps the line's timestamp"
    );

    let kept = t.path().join("kept");
    let o = evlog(&["import", "--keep-timestamps", path(&kept), path(&file)]);
    assert_code(&o, 0, "import --keep-timestamps");
    let e = &all_events(&kept)[0];
    assert_eq!(
        e.metadata.extra.get("original_timestamp_us"),
        Some("1234567")
    );
    // Idempotent with the flag too.
    let o = evlog(&["import", "--keep-timestamps", path(&kept), path(&file)]);
    assert_code(&o, 0, "again");
    assert!(
        stdout(&o).contains("0 appended, 1 skipped"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn import_reports_bad_lines_by_number_and_writes_nothing_of_them() {
    let t = tempfile::tempdir().unwrap();
    let id = |n: u128| Uuid::from_u128(n).to_string();
    let line = |stream: &str, version: u64, n: u128| {
        format!(
            r#"{{"stream":"{stream}","type":"T","version":{version},"id":"{}","data":{{"n":{n}}}}}"#,
            id(n)
        )
    };
    let lines = [
        line("a", 0, 1),                                    // 1 ok
        "{\"stream\": \"a\", ".to_string(),                 // 2 invalid JSON
        line("b", 0, 3).replace("\"type\":\"T\",", ""),     // 3 missing field
        line("a", 5, 4),                                    // 4 wrong version (a is at 0)
        line("a", 1, 5),                                    // 5 ok
        String::new(),                                      // 6 blank: ignored
        line("a", 0, 7),                                    // 7 version 0 is another event
        line("c", 0, 8).replace("\"data\"", "\"payload\""), // 8 unknown field
        line("c", 0, 1),                                    // 9 id 1 is already in stream a
        line("d", 0, 10).replace(&id(10), "not-a-uuid"),    // 10 bad id
        line("e", 1, 11),                                   // 11 version 1 of a new stream
    ];
    let file = t.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let dst = t.path().join("store");
    let o = evlog(&["import", path(&dst), path(&file)]);
    assert_code(&o, 1, "import with rejected lines");
    let err = stderr(&o);
    let f = path(&file);
    for (n, want) in [
        (2, "not a JSON object"),
        (3, "missing field \"type\""),
        (4, "version 5 does not follow stream \"a\"'s last version 0"),
        (7, "already holds version 0 as another event"),
        (8, "unknown field \"payload\""),
        (9, "event id"),
        (10, "not a UUID"),
        (
            11,
            "version 1 does not follow stream \"e\"'s last version none",
        ),
    ] {
        let l = err
            .lines()
            .find(|l| l.starts_with(&format!("evlog: {f}:{n}: ")))
            .unwrap_or_else(|| panic!("no line {n} in\n{err}"));
        assert!(l.contains(want), "line {n}: {l}");
    }
    assert_eq!(err.lines().count(), 8, "{err}");
    assert!(
        stdout(&o).contains("11 line(s), 2 appended, 0 skipped (already stored), 8 rejected"),
        "{}",
        stdout(&o)
    );
    let stored = all_events(&dst);
    let got: Vec<(&str, u64, Uuid)> = stored
        .iter()
        .map(|e| (&*e.stream, e.version, e.id))
        .collect();
    assert_eq!(
        got,
        vec![("a", 0, Uuid::from_u128(1)), ("a", 1, Uuid::from_u128(5))]
    );
}

#[test]
fn import_refuses_a_locked_store_and_a_missing_file() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("e.jsonl");
    std::fs::write(&file, "").unwrap();
    let dir = t.path().join("store");
    let _held = Store::open(&dir).unwrap();
    let o = evlog(&["import", path(&dir), path(&file)]);
    assert_code(&o, 3, "import into a locked store");
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);

    let o = evlog(&[
        "import",
        path(&t.path().join("other")),
        path(&t.path().join("nope.jsonl")),
    ]);
    assert_code(&o, 2, "missing input file");
    assert!(stderr(&o).contains("nope.jsonl"), "{}", stderr(&o));
    assert!(
        !t.path().join("other").exists(),
        "no store is created for a missing file"
    );

    let o = evlog(&["export", path(&t.path().join("nope"))]);
    assert_code(&o, 2, "export of a missing directory");
}

/// `evlog replay` prints a range as `dump` does; `--since-us`/`--until-us` select by append
/// time, together with the position and stream filters; a reversed range is a usage error.
#[test]
fn replay_prints_the_events_of_a_time_range() {
    let run_ok = |args: &[&str]| {
        let o = evlog(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        o
    };
    let t = tempfile::tempdir().unwrap();
    {
        let s = Store::open(t.path()).unwrap();
        for i in 0..20u64 {
            s.append_at(
                &format!("ai-{}", i % 2),
                ExpectedVersion::Any,
                &[EventData::new(
                    "Scored",
                    format!("{{\"i\":{i}}}").into_bytes(),
                )],
                1_000_000 + i * 10,
            )
            .unwrap();
        }
    }
    let lines = |args: &[&str]| -> Vec<u64> {
        let mut a = vec!["replay", "--format", "jsonl"];
        a.extend_from_slice(args);
        a.push(path(t.path()));
        stdout(&run_ok(&a))
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["position"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(
        lines(&["--since-us", "1000050", "--until-us", "1000090"]),
        [5, 6, 7, 8, 9]
    );
    assert_eq!(
        lines(&["--since-us", "1000050", "--stream", "ai-1"]),
        [5, 7, 9, 11, 13, 15, 17, 19]
    );
    assert_eq!(lines(&["--until-us", "1000030", "--to", "1"]), [0, 1]);
    assert_eq!(
        stdout(&run_ok(&["replay", "--format", "jsonl", path(t.path())])),
        stdout(&run_ok(&["dump", "--format", "jsonl", path(t.path())]))
    );
    let o = evlog(&[
        "replay",
        "--since-us",
        "5",
        "--until-us",
        "4",
        path(t.path()),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
