//! [`Api`]: the router and what its handlers share; [`serve`]: run it until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;

use crate::http::auth::{Auth, Role};
use crate::http::error::ApiError;
use crate::http::params::Params;
use crate::http::{dead_letters, monitoring, openapi, read};
use crate::metrics::Monitor;

/// The HTTP API over one [`Monitor`] (a store and its bus). Cheap to clone.
///
/// ```no_run
/// use std::sync::Arc;
/// use evlog::Store;
/// use evlog::bus::{BusConfig, EventBus};
/// use evlog::http::{Api, ApiToken, Auth, Role};
/// use evlog::metrics::{HealthConfig, Metrics, Monitor};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(Store::open("/var/lib/app/events")?);
/// let metrics = Arc::new(Metrics::new());
/// let bus = EventBus::with_observer(store, BusConfig::from_env()?, metrics.clone());
/// let monitor = Arc::new(Monitor::new(bus.clone(), metrics, HealthConfig::default()));
/// let token = ApiToken { name: "ops".into(), token: std::env::var("OPS_TOKEN")?, role: Role::Operate };
/// let api = Api::new(monitor, Auth::Tokens(vec![token]));
/// // Mount it in the application's router, or run it alone:
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// evlog::http::serve(listener, api, async { stopped.await.ok(); }).await?;
/// bus.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Api {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub monitor: Arc<Monitor>,
    pub auth: Auth,
    /// True once the server shuts down: ends the event streams.
    pub stop: watch::Sender<bool>,
    /// False: `GET /api/events/metrics` answers 404 (`EVENT_MONITORING_ENABLED=false`).
    pub metrics_enabled: AtomicBool,
}

impl Api {
    /// The API over `monitor`, with `auth`.
    pub fn new(monitor: Arc<Monitor>, auth: Auth) -> Api {
        Api {
            inner: Arc::new(Inner {
                monitor,
                auth,
                stop: watch::channel(false).0,
                metrics_enabled: AtomicBool::new(true),
            }),
        }
    }

    /// Turns the metrics endpoint off (404) or on again (`EVENT_MONITORING_ENABLED`).
    pub fn set_metrics_enabled(&self, on: bool) {
        self.inner.metrics_enabled.store(on, Ordering::Relaxed);
    }

    /// The caller's name if its token has `role`, and the query's values.
    pub(crate) fn authorized(
        &self,
        headers: &HeaderMap,
        role: Role,
        q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<(String, Params), ApiError> {
        let who = self.inner.auth.require(headers, role)?;
        Ok((who, Params::from(q)?))
    }

    /// The monitor.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.inner.monitor
    }

    /// Every route of the API (see [`crate::http`]), to mount in an application or [`serve`].
    /// Unknown paths get a JSON 404.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/events/health", get(monitoring::health))
            .route("/api/events/metrics", get(monitoring::metrics))
            .route("/api/events/dead-letter", get(dead_letters::list))
            .route(
                "/api/events/dead-letter/redrive",
                post(dead_letters::redrive_all),
            )
            .route(
                "/api/events/dead-letter/{id}/redrive",
                post(dead_letters::redrive_one),
            )
            .route(
                "/api/events/dead-letter/{id}",
                delete(dead_letters::discard),
            )
            .route("/api/streams/{id}", get(read::stream))
            .route("/api/events", get(read::events))
            .route("/api/events/stream", get(read::follow))
            .route("/api/openapi.json", get(openapi::document))
            .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
            .with_state(self.clone())
    }

    /// Ends the event streams (`GET /api/events/stream`) so that a graceful shutdown does not
    /// wait for their clients. [`serve`] calls it when its shutdown future completes.
    pub fn stop_streams(&self) {
        self.inner.stop.send_replace(true);
    }
}

/// Serves `api` on `listener` until `shutdown` completes; then stops accepting connections,
/// ends the event streams and waits for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopper = api.clone();
    axum::serve(listener, api.router())
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopper.stop_streams();
        })
        .await
}
