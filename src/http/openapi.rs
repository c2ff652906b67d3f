//! The OpenAPI 3 document (`GET /api/openapi.json`), kept in `src/http/openapi.json`. A test
//! checks that it names every route of the router; schemathesis (`scripts/schemathesis.sh`)
//! checks the answers of a running server against it.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::http::auth::Role;
use crate::http::error::ApiError;
use crate::http::server::Api;

const DOCUMENT: &str = include_str!("openapi.json");

/// The OpenAPI 3 document of the API, as JSON text.
pub fn openapi_document() -> &'static str {
    DOCUMENT
}

pub(crate) async fn document(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.inner.auth.require(&headers, Role::Read)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_parses_and_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let server = include_str!("server.rs");
        let routes: Vec<&str> = server
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix(".route(\"")
                    .or_else(|| l.trim().strip_prefix('"'))
            })
            .filter_map(|l| l.split('"').next())
            .filter(|p| p.starts_with("/api/"))
            .collect();
        assert_eq!(routes.len(), 10, "{routes:?}");
        for r in &routes {
            assert!(paths.contains_key(*r), "{r} is not in openapi.json");
        }
        assert_eq!(paths.len(), routes.len());
    }
}
