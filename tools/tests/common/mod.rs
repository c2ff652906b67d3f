//! Helpers shared by the tool's integration tests: run the built `evlog` binary, build stores.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use evlog::{EventData, ExpectedVersion, StoreOptions};

/// Runs `evlog ARGS` to completion.
pub fn evlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evlog"))
        .args(args)
        .output()
        .expect("run evlog")
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts the exit code, showing the output when it differs.
pub fn assert_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

pub const TYPES: [&str; 3] = ["OrderPlaced", "OrderPaid", "OrderShipped"];

/// A store of `n` events: event `i` goes to stream `order-{i % 3}` with type `TYPES[i % 3]`
/// (so stream and type go together), with 4 KiB segments so that it has several sealed
/// segments.
pub fn make_store(dir: &Path, n: u64) {
    let s = StoreOptions::new().segment_bytes(4096).open(dir).unwrap();
    for i in 0..n {
        let t = (i % 3) as usize;
        let e = EventData::new(
            TYPES[t],
            format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(40)),
        );
        s.append(&format!("order-{}", i % 3), ExpectedVersion::Any, &[e])
            .unwrap();
    }
    s.close().unwrap();
}

/// Segment file names of `dir`, sorted.
pub fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

/// Every file of `dir` with its length, sorted by name.
pub fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Cuts the zeros a durable writer leaves after the last frame of segment `path` (4 KiB at
/// close), so that bytes appended to the file land right after the frames. Returns the new
/// length: the end of the last frame.
pub fn cut_zeros_after_frames(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut len = 64usize;
    while len + 32 <= bytes.len() && &bytes[len..len + 4] == b"EVFR" {
        len += u32::from_le_bytes(bytes[len + 8..len + 12].try_into().unwrap()) as usize + 40;
    }
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len as u64).unwrap();
    len as u64
}
