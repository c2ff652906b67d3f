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

/// `v` when it is a whole number written with ASCII digits only (no sign, no spaces).
pub(crate) fn digits(v: &str) -> Option<&str> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some(v)
}

/// The query string's pairs.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn from(
        q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<Params, ApiError> {
        let Query(v) = q.map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
        // The decoder replaces bytes that are not UTF-8 with U+FFFD: refused, not guessed at.
        if let Some((k, _)) = v
            .iter()
            .find(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
        {
            return Err(ApiError::bad_request(format!(
                "query parameter {k:?} is not valid UTF-8 (or holds U+FFFD)"
            )));
        }
        Ok(Params(v))
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
            Some(v) => match digits(v).and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n <= MAX_QUERY_NUMBER => Ok(n),
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
            Some(v) => match digits(v).and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if (1..=MAX_PAGE_ITEMS).contains(&n) => Ok(n),
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
