//! Bearer tokens, each with a role; compared in constant time, never logged.

use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;

/// What a token may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: metrics, dead letters, streams, events, the event stream, the OpenAPI document.
    Read,
    /// Reads, and dead-letter redrive and discard.
    Operate,
    /// Everything.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Role::Read),
            "operate" => Ok(Role::Operate),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: read, operate or admin")),
        }
    }
}

/// A bearer token: a name (who, in the dead-letter records and the log), the secret, a role.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ApiToken {
    /// Who holds it: written as `by` in redrive and discard records.
    pub name: String,
    /// The secret the client sends as `Authorization: Bearer SECRET`.
    pub token: String,
    /// What it may do.
    pub role: Role,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Who may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// These tokens; any other request but health gets 401.
    Tokens(Vec<ApiToken>),
    /// Anyone may do anything (`--no-auth`: only for a listener no one else can reach).
    Disabled,
}

impl Auth {
    /// The name of the caller if its bearer token has at least `need`: 401 when the token is
    /// missing or unknown, 403 when its role is too low. Every configured token is compared,
    /// in constant time for tokens of the same length.
    pub fn require(&self, headers: &HeaderMap, need: Role) -> Result<String, ApiError> {
        let tokens = match self {
            Auth::Disabled => return Ok("anonymous".into()),
            Auth::Tokens(t) => t,
        };
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("missing bearer token: send Authorization: Bearer TOKEN")
            })?;
        let mut found: Option<&ApiToken> = None;
        for t in tokens {
            // Length is not secret; the bytes are compared in constant time. An empty secret
            // matches nothing; were a secret given twice, its lowest role counts.
            if !t.token.is_empty()
                && bool::from(t.token.as_bytes().ct_eq(given.as_bytes()))
                && found.is_none_or(|f| t.role < f.role)
            {
                found = Some(t);
            }
        }
        let t = found.ok_or_else(|| unauthorized("unknown bearer token"))?;
        if t.role < need {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the token of {} has the role {:?}; this needs {need:?}",
                    t.name, t.role
                ),
            ));
        }
        Ok(t.name.clone())
    }
}
