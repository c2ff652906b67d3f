//! Query values, parsed with errors that name the parameter (400).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};

use crate::http::error::ApiError;

/// Most events or dead letters one page holds.
pub const MAX_PAGE_ITEMS: usize = 1_000;
/// Largest position, version or offset a query takes: the OpenAPI document's `int64` (no
/// store comes near it).
pub const MAX_QUERY_NUMBER: u64 = i64::MAX as u64;
/// Items per page when `limit` is not given.
pub const DEFAULT_PAGE_ITEMS: usize = 100;

/// The query string's pairs.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn from(
        q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<Params, ApiError> {
        q.map(|Query(v)| Params(v))
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))
    }

    /// The value of `name`, if given (the last one when repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A whole number from 0 to [`MAX_QUERY_NUMBER`], or `default`.
    pub fn u64(&self, name: &str, default: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= MAX_QUERY_NUMBER => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "query parameter {name}={v:?} is not valid: expected a whole number from 0 \
                     to {MAX_QUERY_NUMBER}"
                ))),
            },
        }
    }

    /// `limit`: 1 to [`MAX_PAGE_ITEMS`], default [`DEFAULT_PAGE_ITEMS`].
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_PAGE_ITEMS),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_ITEMS).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "query parameter limit={v:?} is not valid: expected a whole number from 1 \
                     to {MAX_PAGE_ITEMS}"
                ))),
            },
        }
    }

    /// A text value that must not be empty when given.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            Some("") => Err(ApiError::bad_request(format!(
                "query parameter {name} is empty: leave it out or give a value"
            ))),
            v => Ok(v.map(str::to_owned)),
        }
    }

    /// `true` / `false`, or `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "query parameter {name}={v:?} is not valid: expected true or false"
            ))),
        }
    }
}

/// The `{id}` of a path, or 400 (it does not decode as UTF-8).
pub(crate) fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))
}
