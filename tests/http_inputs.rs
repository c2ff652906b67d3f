//! The HTTP API's input checks and answers found wrong by a review: query values that are not
//! UTF-8 or carry a sign are refused (400), a server-sent-events client reconnecting with its
//! URL's `from` and its `Last-Event-ID` goes on after that id, a deleted stream is 404, and a
//! secret given to two tokens has the lower role. Each test failed before its fix.

#![cfg(feature = "serve")]

use std::sync::Arc;

use evlog::bus::{BusConfig, EventBus, Outcome};
use evlog::http::{Api, ApiToken, Auth, Role, serve};
use evlog::metrics::{HealthConfig, Metrics, Monitor};
use evlog::{EventData, ExpectedVersion, Store};
use reqwest::{Client, Method, StatusCode};
use tokio::sync::oneshot;

const READ: &str = "read-secret-1";
const OPERATE: &str = "operate-secret-2";

struct Server {
    base: String,
    bus: EventBus,
    store: Arc<Store>,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let metrics = Arc::new(Metrics::new());
        let config = BusConfig::default().max_retries(0).retry_delay_ms(1);
        let bus = EventBus::with_observer(store.clone(), config, metrics.clone());
        bus.subscribe_all("mailer", |_ctx, e| async move {
            if &*e.event_type == "Bad" {
                return Err("down".into());
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

    async fn call(&self, method: Method, path: &str, token: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
        self.bus.shutdown().await.unwrap();
    }
}

/// A query value that is not UTF-8 (`%FF`) is decoded lossily to U+FFFD and accepted
/// (200), where the path's `{id}` gets 400 for the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_values_that_are_not_utf8_are_refused() {
    let s = Server::start().await;
    let (path_status, _) = s.call(Method::GET, "/api/streams/%FF", READ).await;
    let (q1, b1) = s.call(Method::GET, "/api/events?type=%FF", READ).await;
    let (q2, b2) = s
        .call(Method::GET, "/api/events/dead-letter?handler=%FF", READ)
        .await;
    println!(
        "path %FF: {path_status}; /api/events?type=%FF: {q1} {b1}; dead-letter?handler=%FF: {q2} {b2}"
    );
    s.stop().await;
    assert_eq!(path_status, StatusCode::BAD_REQUEST);
    assert_eq!(q1, StatusCode::BAD_REQUEST, "type=%FF accepted: {b1}");
    assert_eq!(q2, StatusCode::BAD_REQUEST, "handler=%FF accepted: {b2}");
}

/// Numbers with a leading `+` are accepted in queries and dead-letter ids (`str::parse`
/// takes them): `mailer:+0` discards the letter `mailer:0` and answers with the id
/// `mailer:+0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_with_a_sign_are_refused() {
    let s = Server::start().await;
    let p = s
        .bus
        .publish(
            "a",
            ExpectedVersion::Any,
            vec![EventData::new("Bad", b"{}".to_vec())],
        )
        .await
        .unwrap()
        .last_position;
    s.bus.wait_for("mailer", p).await.unwrap();
    let (q, qb) = s.call(Method::GET, "/api/events?from=%2B0", READ).await;
    let (d, db) = s
        .call(
            Method::DELETE,
            &format!("/api/events/dead-letter/mailer:+{p}"),
            OPERATE,
        )
        .await;
    println!("from=%2B0: {q}; DELETE mailer:+{p}: {d} {db}");
    s.stop().await;
    assert_eq!(q, StatusCode::BAD_REQUEST, "from=+0 accepted: {qb}");
    assert_eq!(d, StatusCode::BAD_REQUEST, "id mailer:+{p} accepted: {db}");
}

/// A client that opened `/api/events/stream?from=0` reconnects (EventSource) with the same
/// URL and `Last-Event-ID: 1`: the explicit `from` wins, so it gets events 0 and 1 again.
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
    let mut resp = s
        .client
        .get(format!("{}/api/events/stream?from=0", s.base))
        .bearer_auth(READ)
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    let mut got = String::new();
    while !got.contains("\n\n") {
        let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(resp);
    s.stop().await;
    assert!(
        got.contains("id: 2\n") && !got.contains("id: 0\n"),
        "after Last-Event-ID 1 the first event sent should be 2: {got}"
    );
}

/// `GET /api/streams/{id}` says "404 when it has none", but a deleted stream (no visible
/// event) answers 200 with no events and a `last_version`.
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
    let (status, body) = s.call(Method::GET, "/api/streams/gone", READ).await;
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
