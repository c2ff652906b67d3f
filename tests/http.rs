//! The HTTP API against a real server on 127.0.0.1 (feature `serve`): status codes, JSON
//! bodies, paging, 400 for bad values, 401/403, dead-letter redrive and discard, the event
//! stream delivering a new event (and going on after a reconnect's `Last-Event-ID`), health
//! 503 on a poisoned store, query values that are not UTF-8 or carry a sign refused, a secret
//! given twice having the lower role. No timing is asserted.

#![cfg(feature = "serve")]

mod serve_common;

use std::sync::Arc;

use evlog::bus::{BusConfig, EventBus, Outcome};
use evlog::http::{Api, ApiToken, Auth, Role, serve};
use evlog::metrics::{HealthConfig, Metrics, Monitor};
use evlog::{EventData, ExpectedVersion, Store};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

const READ: &str = "read-secret-1";
const OPERATE: &str = "operate-secret-2";

struct Server {
    base: String,
    bus: EventBus,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    store: Arc<Store>,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    async fn start_on(store: Arc<Store>, dir: Option<tempfile::TempDir>) -> Server {
        let metrics = Arc::new(Metrics::new());
        let config = BusConfig::default().max_retries(0).retry_delay_ms(1);
        let bus = EventBus::with_observer(store.clone(), config, metrics.clone());
        // "mailer" fails every event of type Bad (parked at once), handles the rest.
        bus.subscribe_all("mailer", |_ctx, e| async move {
            if &*e.event_type == "Bad" {
                return Err("mail server down".into());
            }
            Ok(Outcome::Handled)
        })
        .unwrap();
        let monitor = Arc::new(Monitor::new(bus.clone(), metrics, HealthConfig::default()));
        let token = |name: &str, token: &str, role| ApiToken {
            name: name.into(),
            token: token.into(),
            role,
        };
        let auth = Auth::Tokens(vec![
            token("viewer", READ, Role::Read),
            token("ops", OPERATE, Role::Operate),
        ]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, Api::new(monitor, auth), async {
            rx.await.ok();
        }));
        Server {
            base,
            bus,
            store,
            client: Client::new(),
            stop: Some(tx),
            task,
            _dir: dir,
        }
    }

    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        Self::start_on(store, Some(dir)).await
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(READ)).await
    }

    async fn operate(&self, method: Method, path: &str) -> (StatusCode, Value) {
        self.call(method, path, Some(OPERATE)).await
    }

    /// `GET /api/events/stream?QUERY`, with a `Last-Event-ID` header when given.
    async fn follow(&self, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .get(format!("{}/api/events/stream?{query}", self.base))
            .bearer_auth(READ);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.send().await.unwrap()
    }

    async fn publish(&self, stream: &str, event_type: &str) -> u64 {
        self.bus
            .publish(
                stream,
                ExpectedVersion::Any,
                vec![EventData::new(event_type, br#"{"n":1}"#.to_vec())],
            )
            .await
            .unwrap()
            .last_position
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
        self.bus.shutdown().await.unwrap();
    }
}

/// Reads the event stream until `done` holds for what was read.
async fn read_until(resp: &mut reqwest::Response, done: impl Fn(&str) -> bool) -> String {
    let mut got = String::new();
    while !done(&got) {
        let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    got
}

const PROTECTED: [(&str, &str); 9] = [
    ("GET", "/api/events/metrics"),
    ("GET", "/api/events/dead-letter"),
    ("POST", "/api/events/dead-letter/redrive"),
    ("POST", "/api/events/dead-letter/mailer:0/redrive"),
    ("DELETE", "/api/events/dead-letter/mailer:0"),
    ("GET", "/api/streams/order-1"),
    ("GET", "/api/events"),
    ("GET", "/api/events/stream"),
    ("GET", "/api/openapi.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_but_health_wants_a_token_with_the_role() {
    let s = Server::start().await;
    let (status, body) = s.call(Method::GET, "/api/events/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    for (method, path) in PROTECTED {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        for token in [None, Some("wrong"), Some("read-secret-")] {
            let (status, body) = s.call(m.clone(), path, token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert_eq!(body["status"], 401);
            assert!(!body["error"].as_str().unwrap().contains(READ));
        }
    }
    // The read role may not redrive or discard.
    for (method, path) in &PROTECTED[2..5] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = s.call(m, path, Some(READ)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(body["error"].as_str().unwrap().contains("viewer"));
    }
    let (status, body) = s.get("/api/nothing-here").await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::NOT_FOUND, &Value::from(404))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_and_all_reads_page_and_bad_values_get_400_naming_them() {
    let s = Server::start().await;
    for i in 0..5 {
        s.publish(
            "order-1",
            if i % 2 == 0 {
                "OrderPlaced"
            } else {
                "OrderPaid"
            },
        )
        .await;
    }
    s.publish("order-2", "OrderPlaced").await;
    let (status, page) = s.get("/api/streams/order-1?from=1&limit=3").await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(
        (page["next_from"].as_u64(), page["last_version"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(page["events"][0]["type"], "OrderPaid");
    assert_eq!(page["events"][0]["data"]["n"], 1);
    let (_, last) = s.get("/api/streams/order-1?from=4").await;
    assert_eq!(
        (last["events"].as_array().unwrap().len(), &last["next_from"]),
        (1, &Value::Null)
    );
    let (status, _) = s.get("/api/streams/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s.get("/api/streams/%FF%FE").await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::BAD_REQUEST, &Value::from(400))
    );

    // Every stream, one type, two per page: the user streams only.
    let mut from = Some(0);
    let mut seen = Vec::new();
    while let Some(f) = from {
        let (status, page) = s
            .get(&format!("/api/events?type=OrderPlaced&limit=2&from={f}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        for e in page["events"].as_array().unwrap() {
            assert_eq!(e["type"], "OrderPlaced");
            seen.push((
                e["stream"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
            ));
        }
        from = page["next_from"].as_u64();
    }
    assert_eq!(
        seen,
        [
            ("order-1".into(), 0),
            ("order-1".into(), 2),
            ("order-1".into(), 4),
            ("order-2".into(), 0)
        ]
    );
    let (_, all) = s.get("/api/events?limit=1000").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 6);

    for (path, name) in [
        ("/api/events?from=-1", "from"),
        ("/api/events?from=abc", "from"),
        ("/api/events?limit=0", "limit"),
        ("/api/events?limit=1001", "limit"),
        ("/api/events?type=", "type"),
        ("/api/events?system=maybe", "system"),
        ("/api/streams/order-1?from=x", "from"),
        ("/api/events/dead-letter?offset=1.5", "offset"),
        ("/api/events/stream?from=no", "from"),
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(name), "{path}: {msg}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_list_filter_page_redrive_and_discard() {
    let s = Server::start().await;
    let mut last = 0;
    for stream in ["a", "b", "c"] {
        last = s.publish(stream, "Bad").await;
    }
    s.bus.wait_for("mailer", last).await.unwrap();
    let (status, h) = s.call(Method::GET, "/api/events/health", None).await;
    assert_eq!(
        (status, &h["status"]),
        (StatusCode::OK, &Value::from("degraded"))
    );
    assert_eq!(h["reasons"][0]["check"], "dead_letters");

    let (status, page) = s.get("/api/events/dead-letter?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (page["total"].as_u64(), page["next_offset"].as_u64()),
        (Some(3), Some(2))
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["stream"], "a");
    assert_eq!(items[0]["reason"], "failed");
    assert!(
        items[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("mail server down")
    );
    let id_a = items[0]["id"].as_str().unwrap().to_owned();
    let id_b = items[1]["id"].as_str().unwrap().to_owned();
    let (_, rest) = s.get("/api/events/dead-letter?limit=2&offset=2").await;
    assert_eq!(
        (
            rest["items"].as_array().unwrap().len(),
            &rest["next_offset"]
        ),
        (1, &Value::Null)
    );
    let (_, none) = s.get("/api/events/dead-letter?type=Other").await;
    assert_eq!(none["total"], 0);
    let (_, none) = s.get("/api/events/dead-letter?handler=someone").await;
    assert_eq!(none["total"], 0);

    let (status, body) = s
        .operate(Method::DELETE, &format!("/api/events/dead-letter/{id_a}"))
        .await;
    assert_eq!(
        (status, &body["discarded"]),
        (StatusCode::OK, &Value::from(true))
    );
    let (status, _) = s
        .operate(Method::DELETE, &format!("/api/events/dead-letter/{id_a}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .operate(Method::POST, "/api/events/dead-letter/not-an-id/redrive")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A redrive of b fails again (the handler still fails Bad): b stays parked.
    let (status, body) = s
        .operate(
            Method::POST,
            &format!("/api/events/dead-letter/{id_b}/redrive"),
        )
        .await;
    assert_eq!(
        (status, &body["requested"]),
        (StatusCode::ACCEPTED, &Value::from(1))
    );
    let (status, body) = s
        .operate(
            Method::POST,
            "/api/events/dead-letter/redrive?handler=mailer",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["requested"], 2);
    // Who asked is the token's name, never the token.
    let history = s.bus.dead_letters("mailer").history().unwrap();
    let text = format!("{history:?}");
    assert!(
        text.contains("\"ops\"") && !text.contains(OPERATE),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_openmetrics_text_or_json() {
    let s = Server::start().await;
    let last = s.publish("order-1", "OrderPlaced").await;
    s.bus.wait_for("mailer", last).await.unwrap();
    let resp = s
        .client
        .get(format!("{}/api/events/metrics", s.base))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = resp.text().await.unwrap();
    assert!(text.contains(
        r#"evlog_deliveries_total{handler="mailer",event_type="OrderPlaced",result="handled"} 1"#
    ));
    assert!(text.ends_with("# EOF\n"));
    let json: Value = s
        .client
        .get(format!("{}/api/events/metrics", s.base))
        .bearer_auth(READ)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let appends = json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "evlog_appends")
        .unwrap();
    assert_eq!(appends["samples"][0]["value"], 1.0);
    let (status, doc) = s.get("/api/openapi.json").await;
    assert_eq!(
        (status, &doc["openapi"]),
        (StatusCode::OK, &Value::from("3.0.3"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_a_new_event() {
    let s = Server::start().await;
    s.publish("old", "Before").await;
    let mut resp = s.follow("type=OrderPlaced", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let position = s.publish("order-9", "OrderPlaced").await;
    let got = read_until(&mut resp, |got| {
        got.contains("\n\n") && got.contains("data:")
    })
    .await;
    assert!(got.contains(&format!("id: {position}\n")), "{got}");
    assert!(got.contains("event: OrderPlaced\n"), "{got}");
    assert!(got.contains(r#""stream":"order-9""#), "{got}");
    assert!(!got.contains("Before"), "{got}");
    drop(resp);

    // A reconnecting client names the last event it got: it gets the ones after it.
    let next = s.publish("order-9", "OrderPlaced").await;
    let mut resp = s
        .follow("type=OrderPlaced", Some(&position.to_string()))
        .await;
    let got = read_until(&mut resp, |got| got.contains("\n\n")).await;
    assert!(got.contains(&format!("id: {next}\n")), "{got}");
    assert!(!got.contains(&format!("id: {position}\n")), "{got}");
    drop(resp);
    let bad = s.follow("", Some("yesterday")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // A type with a line break cannot be an SSE field: it is sent in the data only.
    let odd = s.publish("odd", "Line\nBreak").await;
    let mut resp = s.follow(&format!("from={odd}"), None).await;
    let got = read_until(&mut resp, |got| got.contains("\n\n")).await;
    assert!(got.contains(&format!("id: {odd}\n")), "{got}");
    assert!(
        got.contains(r#""type":"Line\nBreak""#) && !got.contains("event:"),
        "{got}"
    );
    drop(resp);
    s.stop().await;
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_failing_when_the_store_is_poisoned() {
    let (fs, store) = serve_common::fault_store();
    let s = Server::start_on(store, None).await;
    s.publish("a", "T").await;
    serve_common::poison(&fs, &s.store);
    let (status, body) = s.call(Method::GET, "/api/events/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "failing");
    assert_eq!(body["reasons"][0]["check"], "store");
    s.stop.unwrap().send(()).unwrap();
    s.task.await.unwrap().unwrap();
    // The bus's handler fails on the poisoned store: its error is expected here.
    let _ = s.bus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_event_streams_and_the_server_returns() {
    let s = Server::start().await;
    let mut resp = s.follow("", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let position = s.publish("order-1", "OrderPlaced").await;
    read_until(&mut resp, |got| got.contains(&format!("id: {position}\n"))).await;
    // The client keeps its stream open: the shutdown ends it, and serve returns.
    s.stop().await;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        assert!(!std::str::from_utf8(&chunk).unwrap().contains("data:"));
    }
}

/// Query values that are not UTF-8 (`%FF`, decoded to U+FFFD) are refused, as in the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_values_that_are_not_utf8_are_refused() {
    let s = Server::start().await;
    let (path, _) = s.get("/api/streams/%FF").await;
    let (q1, b1) = s.get("/api/events?type=%FF").await;
    let (q2, b2) = s.get("/api/events/dead-letter?handler=%FF").await;
    s.stop().await;
    assert_eq!(path, StatusCode::BAD_REQUEST);
    assert_eq!(q1, StatusCode::BAD_REQUEST, "type=%FF accepted: {b1}");
    assert_eq!(q2, StatusCode::BAD_REQUEST, "handler=%FF accepted: {b2}");
}

/// Numbers with a sign are refused in queries and dead-letter ids (`mailer:+0` discarded the
/// letter `mailer:0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_with_a_sign_are_refused() {
    let s = Server::start().await;
    let p = s.publish("a", "Bad").await;
    s.bus.wait_for("mailer", p).await.unwrap();
    let (q, qb) = s.get("/api/events?from=%2B0").await;
    let path = format!("/api/events/dead-letter/mailer:+{p}");
    let (d, db) = s.operate(Method::DELETE, &path).await;
    s.stop().await;
    assert_eq!(q, StatusCode::BAD_REQUEST, "from=+0 accepted: {qb}");
    assert_eq!(d, StatusCode::BAD_REQUEST, "id mailer:+{p} accepted: {db}");
}

/// A client reconnecting sends its URL again (`from=0`) and `Last-Event-ID: 1`: the stream goes
/// on after event 1 (the URL's `from` sent every event again at every reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_goes_on_after_its_last_event_id() {
    let s = Server::start().await;
    for _ in 0..3 {
        s.store
            .append(
                "o",
                ExpectedVersion::Any,
                &[EventData::new("Ok", b"{}".to_vec())],
            )
            .unwrap();
    }
    let mut resp = s.follow("from=0", Some("1")).await;
    let got = read_until(&mut resp, |got| got.contains("\n\n")).await;
    drop(resp);
    s.stop().await;
    assert!(
        got.contains("id: 2\n") && !got.contains("id: 0\n"),
        "after Last-Event-ID 1 the first event sent should be 2: {got}"
    );
}

/// A deleted stream (no visible event) is 404, as one that never had events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_is_404() {
    let s = Server::start().await;
    s.store
        .append(
            "gone",
            ExpectedVersion::Any,
            &[EventData::new("Ok", b"{}".to_vec())],
        )
        .unwrap();
    s.store.delete_stream("gone", ExpectedVersion::Any).unwrap();
    let (status, body) = s.get("/api/streams/gone").await;
    s.stop().await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// Two tokens with one secret (a configuration mistake): the secret has the lower role, not
/// the last one listed; and the configuration variable refuses it outright.
#[test]
fn a_secret_given_twice_has_the_lower_role() {
    let token = |name: &str, role| ApiToken {
        name: name.into(),
        token: "shared".into(),
        role,
    };
    let auth = Auth::Tokens(vec![
        token("viewer", Role::Read),
        token("ops", Role::Operate),
    ]);
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::AUTHORIZATION,
        "Bearer shared".parse().unwrap(),
    );
    assert_eq!(auth.require(&h, Role::Read).unwrap(), "viewer");
    assert!(auth.require(&h, Role::Operate).is_err());
    // An empty secret matches nothing.
    let empty = Auth::Tokens(vec![ApiToken {
        name: "nobody".into(),
        token: String::new(),
        role: Role::Admin,
    }]);
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::AUTHORIZATION,
        "Bearer ".parse().unwrap(),
    );
    assert!(empty.require(&h, Role::Read).is_err());
    let vars = std::collections::HashMap::from([(
        "EVLOG_API_TOKENS",
        "read:viewer:shared,operate:ops:shared",
    )]);
    let config = evlog::http::ServeConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string()));
    assert!(config.is_err());
}
