//! `GET /api/events/health` and `GET /api/events/metrics`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::auth::Role;
use crate::http::error::{ApiError, blocking};
use crate::http::server::Api;
use crate::metrics::{Status, text_to_json};

/// The OpenMetrics text's content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Health, with no token: 200 when ok or degraded, 503 when failing.
pub(crate) async fn health(State(api): State<Api>) -> Result<Response, ApiError> {
    let monitor = api.inner.monitor.clone();
    let h = blocking(move || Ok(monitor.health())).await?;
    let status = match h.status {
        Status::Failing => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    Ok((status, Json(h)).into_response())
}

/// The metrics: OpenMetrics text, or JSON when the client accepts JSON and not text.
pub(crate) async fn metrics(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.inner.auth.require(&headers, Role::Read)?;
    if !api.inner.metrics_enabled.load(Ordering::Relaxed) {
        return Err(ApiError::not_found(
            "monitoring is disabled (EVENT_MONITORING_ENABLED=false)",
        ));
    }
    let monitor = api.inner.monitor.clone();
    let text = blocking(move || Ok(monitor.scrape())).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/json") {
        return Ok(Json(text_to_json(&text)).into_response());
    }
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response())
}
