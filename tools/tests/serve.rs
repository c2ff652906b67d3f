//! `evlog serve`: configuration refused at start naming the variable, a real server answering
//! on loopback, and SIGTERM stopping it with a clean store (verify finds nothing).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use evlog::{EventData, ExpectedVersion, Store};

fn evlog() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_evlog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("EVENT_") || k.starts_with("EVLOG_") || k.starts_with("SNAPSHOT_") {
            c.env_remove(k);
        }
    }
    c
}

/// One HTTP/1.1 request; the status code and body.
fn request(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

#[test]
fn bad_configuration_is_refused_at_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = evlog()
        .args(["serve", d])
        .env("EVLOG_API_TOKENS", "read:t:secret")
        .env("EVENT_BUS_MAX_RETRIES", "three")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("EVENT_BUS_MAX_RETRIES") && err.contains("whole number"),
        "{err}"
    );
    let out = evlog().args(["serve", d]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EVLOG_API_TOKENS"));
}

#[test]
fn sigterm_stops_the_server_and_leaves_a_clean_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for i in 0..3 {
            let e = EventData::new("OrderPlaced", format!(r#"{{"n":{i}}}"#).into_bytes());
            store.append("order-1", ExpectedVersion::Any, &[e]).unwrap();
        }
        store.close().unwrap();
    }
    let mut child = evlog()
        .args([
            "serve",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("EVLOG_API_TOKENS", "read:grafana:secret-token")
        .env("EVENT_STORE_MAX_CONNECTIONS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let (status, body) = request(&addr, "/api/events/health", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"ok""#), "{body}");
    let (status, _) = request(&addr, "/api/events", None);
    assert_eq!(status, 401);
    let (status, body) = request(&addr, "/api/streams/order-1", Some("secret-token"));
    assert_eq!(status, 200);
    assert!(body.contains(r#""n":2"#), "{body}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(rest.contains("stopped, store closed"), "{rest}");
    assert!(
        err.contains("EVENT_STORE_MAX_CONNECTIONS is set and ignored"),
        "{err}"
    );
    assert!(!err.contains("secret-token") && !rest.contains("secret-token"));
    let report = evlog::verify_dir(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // The lock is released: the store opens for writing again.
    Store::open(dir.path()).unwrap().close().unwrap();
}
