//! [`ServeConfig`]: everything `evlog serve` (or an application mounting the API) is set up
//! with, from the replaced design's environment variables, a TOML file holding the same
//! variables, and flags. A value that does not parse stops the start with the variable's name
//! and what it may hold.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EVENT_STORE_CONNECTION_URL` | (required) | the store directory: a path or `file:///path` |
//! | `EVENT_STORE_MAX_CONNECTIONS` | | accepted and ignored (an embedded store has no connection pool) |
//! | `EVENT_BUS_MAX_RETRIES`, `EVENT_BUS_RETRY_DELAY_MS`, `EVENT_BUS_MAX_RETRY_DELAY_MS`, `EVENT_BUS_DEAD_LETTER_ENABLED` | 3, 1000, 60000, true | the bus ([`crate::bus::BusConfig`]) |
//! | `EVENT_MONITORING_ENABLED` | true | false: no metrics (the endpoint answers 404), no export; health stays |
//! | `EVENT_METRICS_EXPORT_INTERVAL` | 0 (off) | ms between metrics snapshots written to the log or `EVLOG_METRICS_EXPORT_FILE` |
//! | `EVLOG_METRICS_EXPORT_FILE` | | the file the snapshots replace (else the log) |
//! | `SNAPSHOT_INTERVAL_VERSIONS`, `SNAPSHOT_RETENTION_DAYS` | 100, 30 | [`crate::SnapshotPolicy`] for the application |
//! | `EVLOG_LISTEN` | `127.0.0.1:8080` | the address the API listens on |
//! | `EVLOG_API_TOKENS` | | `ROLE:NAME:SECRET`, comma-separated (role read, operate or admin) |
//! | `EVLOG_HEALTH_MAX_LAG_EVENTS`, `EVLOG_HEALTH_MAX_DEAD_LETTERS` | 10000, 0 | health thresholds |
//! | `EVLOG_NO_AUTH` | false | true: no token asked for (only where no one else can reach the listener) |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bus::{BusConfig, ConfigError};
use crate::http::auth::{ApiToken, Role};
use crate::metrics::HealthConfig;
use crate::snapshot::SnapshotPolicy;

/// The store directory.
pub const ENV_CONNECTION_URL: &str = "EVENT_STORE_CONNECTION_URL";
/// Accepted and ignored.
pub const ENV_MAX_CONNECTIONS: &str = "EVENT_STORE_MAX_CONNECTIONS";
/// Metrics on or off.
pub const ENV_MONITORING_ENABLED: &str = "EVENT_MONITORING_ENABLED";
/// Milliseconds between metrics snapshots (0: none).
pub const ENV_METRICS_EXPORT_INTERVAL: &str = "EVENT_METRICS_EXPORT_INTERVAL";
/// The file metrics snapshots are written to.
pub const ENV_METRICS_EXPORT_FILE: &str = "EVLOG_METRICS_EXPORT_FILE";
/// The listen address.
pub const ENV_LISTEN: &str = "EVLOG_LISTEN";
/// The bearer tokens.
pub const ENV_API_TOKENS: &str = "EVLOG_API_TOKENS";
/// Health: most events a subscription may lag.
pub const ENV_HEALTH_MAX_LAG_EVENTS: &str = "EVLOG_HEALTH_MAX_LAG_EVENTS";
/// Health: most parked events per handler.
pub const ENV_HEALTH_MAX_DEAD_LETTERS: &str = "EVLOG_HEALTH_MAX_DEAD_LETTERS";

/// Variables of the replaced design that mean nothing here: accepted, and reported as ignored.
pub const IGNORED_VARIABLES: [&str; 1] = [ENV_MAX_CONNECTIONS];

/// Every variable [`ServeConfig`] reads, in the order of the table above.
pub const VARIABLES: [&str; 16] = [
    ENV_CONNECTION_URL,
    ENV_MAX_CONNECTIONS,
    crate::bus::ENV_MAX_RETRIES,
    crate::bus::ENV_RETRY_DELAY_MS,
    crate::bus::ENV_MAX_RETRY_DELAY_MS,
    crate::bus::ENV_DEAD_LETTER_ENABLED,
    ENV_MONITORING_ENABLED,
    ENV_METRICS_EXPORT_INTERVAL,
    ENV_METRICS_EXPORT_FILE,
    crate::snapshot::SNAPSHOT_INTERVAL_VERSIONS_ENV,
    crate::snapshot::SNAPSHOT_RETENTION_DAYS_ENV,
    ENV_LISTEN,
    ENV_API_TOKENS,
    ENV_HEALTH_MAX_LAG_EVENTS,
    ENV_HEALTH_MAX_DEAD_LETTERS,
    ENV_NO_AUTH,
];

/// Turns authentication off (`true`): only for a listener no one else can reach.
pub const ENV_NO_AUTH: &str = "EVLOG_NO_AUTH";

/// The address the API binds to unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeConfigError {
    /// A variable holds a value that does not parse.
    #[error(transparent)]
    Var(#[from] ConfigError),
    /// A snapshot variable holds a value that does not parse.
    #[error("{0}")]
    Snapshot(String),
    /// The configuration file cannot be read or is not valid TOML of the expected shape.
    #[error("configuration file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No store directory was given.
    #[error("no store directory: give DIR, or set {ENV_CONNECTION_URL} to a path or file:///path")]
    NoStore,
    /// Authentication is on and no token is configured.
    #[error(
        "no API token: set {ENV_API_TOKENS}=ROLE:NAME:SECRET (role read, operate or admin), \
         add [[tokens]] to the configuration file, or turn authentication off with --no-auth"
    )]
    NoTokens,
}

/// Everything the HTTP service is set up with.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The store directory (`EVENT_STORE_CONNECTION_URL`).
    pub store_dir: Option<PathBuf>,
    /// The listen address (`EVLOG_LISTEN`, 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// The bus (`EVENT_BUS_*`).
    pub bus: BusConfig,
    /// Metrics on (`EVENT_MONITORING_ENABLED`, true).
    pub monitoring_enabled: bool,
    /// Interval of the metrics snapshots (`EVENT_METRICS_EXPORT_INTERVAL`, ms; `None`: off).
    pub metrics_export_interval: Option<Duration>,
    /// Where they go (`EVLOG_METRICS_EXPORT_FILE`; `None`: the log).
    pub metrics_export_file: Option<PathBuf>,
    /// Snapshots (`SNAPSHOT_INTERVAL_VERSIONS`, `SNAPSHOT_RETENTION_DAYS`), for the application.
    pub snapshots: SnapshotPolicy,
    /// Health thresholds (`EVLOG_HEALTH_*`).
    pub health: HealthConfig,
    /// Bearer tokens (`EVLOG_API_TOKENS`, `[[tokens]]` in the file).
    pub tokens: Vec<ApiToken>,
    /// Authentication off (`EVLOG_NO_AUTH`, `--no-auth`).
    pub no_auth: bool,
    /// Variables that were set and are ignored ([`IGNORED_VARIABLES`]).
    pub ignored: Vec<&'static str>,
}

/// The configuration file: the variables as keys (strings, numbers or booleans), and tokens.
/// (Unknown keys land in `vars` and are refused there.)
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    tokens: Vec<ApiToken>,
    #[serde(flatten)]
    vars: HashMap<String, toml::Value>,
}

impl ServeConfig {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<ServeConfig, ServeConfigError> {
        Self::from_lookup(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }

    /// The configuration of `file` (TOML), overridden by the variables of the process
    /// environment that are set.
    pub fn from_file_and_env(file: &Path) -> Result<ServeConfig, ServeConfigError> {
        Self::from_file_and_lookup(file, |var| {
            std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// [`ServeConfig::from_file_and_env`] with the variables from `lookup`.
    pub fn from_file_and_lookup(
        file: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ServeConfigError> {
        let bad = |reason: String| ServeConfigError::File {
            path: file.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
        let parsed: File = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut vars = HashMap::new();
        for (k, v) in parsed.vars {
            if !VARIABLES.contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown key {k:?}: the keys are the variables {}",
                    VARIABLES.join(", ")
                )));
            }
            let v = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(bad(format!(
                        "{k}: a string, number or boolean, not {other}"
                    )));
                }
            };
            vars.insert(k, v);
        }
        let mut config = Self::from_lookup(|var| lookup(var).or_else(|| vars.get(var).cloned()))?;
        let mut tokens = parsed.tokens;
        tokens.append(&mut config.tokens);
        config.tokens = tokens;
        Ok(config)
    }

    /// The configuration from any source of variables.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ServeConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let err = |var: &'static str, value: &str, expected: &'static str| ConfigError {
            var,
            value: value.to_owned(),
            expected,
        };
        let store_dir = match get(ENV_CONNECTION_URL) {
            None => None,
            Some(v) => Some(store_dir(&v).ok_or_else(|| {
                err(
                    ENV_CONNECTION_URL,
                    &v,
                    "a directory path or file:///path (evlog keeps events in local files)",
                )
            })?),
        };
        let listen = match get(ENV_LISTEN) {
            None => DEFAULT_LISTEN.parse().expect("a valid address"),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| err(ENV_LISTEN, &v, "an address and port, e.g. 127.0.0.1:8080"))?,
        };
        let bool_var = |var: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => Ok(true),
                    "false" | "0" | "no" | "off" => Ok(false),
                    _ => Err(err(var, &v, "true or false")),
                },
            }
        };
        let u64_var =
            |var: &'static str, expected: &'static str| -> Result<Option<u64>, ConfigError> {
                get(var)
                    .map(|v| v.trim().parse().map_err(|_| err(var, &v, expected)))
                    .transpose()
            };
        let interval = u64_var(
            ENV_METRICS_EXPORT_INTERVAL,
            "a whole number of milliseconds, e.g. 3600000 (0: off)",
        )?
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
        let mut health = HealthConfig::default();
        if let Some(n) = u64_var(
            ENV_HEALTH_MAX_LAG_EVENTS,
            "a whole number of events, e.g. 10000",
        )? {
            health.max_lag_events = n;
        }
        if let Some(n) = u64_var(
            ENV_HEALTH_MAX_DEAD_LETTERS,
            "a whole number of events, e.g. 0",
        )? {
            health.max_dead_letters = n;
        }
        let tokens = match get(ENV_API_TOKENS) {
            None => Vec::new(),
            Some(v) => parse_tokens(&v).ok_or_else(|| {
                // The value holds secrets: it is not repeated in the error.
                err(
                    ENV_API_TOKENS,
                    "(not shown: it holds secrets)",
                    "ROLE:NAME:SECRET entries separated by commas, role read, operate or admin, \
                     name and secret not empty",
                )
            })?,
        };
        let snapshots = SnapshotPolicy::from_lookup(|v| get(v))
            .map_err(|e| ServeConfigError::Snapshot(e.to_string()))?;
        Ok(ServeConfig {
            store_dir,
            listen,
            bus: BusConfig::from_lookup(|v| get(v))?,
            monitoring_enabled: bool_var(ENV_MONITORING_ENABLED, true)?,
            metrics_export_interval: interval,
            metrics_export_file: get(ENV_METRICS_EXPORT_FILE).map(PathBuf::from),
            snapshots,
            health,
            tokens,
            no_auth: bool_var(ENV_NO_AUTH, false)?,
            ignored: IGNORED_VARIABLES
                .into_iter()
                .filter(|v| lookup(v).is_some())
                .collect(),
        })
    }

    /// Checks what a server needs: a store directory, and tokens unless authentication is off.
    pub fn check(&self) -> Result<(), ServeConfigError> {
        if self.store_dir.is_none() {
            return Err(ServeConfigError::NoStore);
        }
        if self.tokens.is_empty() && !self.no_auth {
            return Err(ServeConfigError::NoTokens);
        }
        Ok(())
    }
}

/// A path, or `file://` followed by an absolute path.
fn store_dir(url: &str) -> Option<PathBuf> {
    let url = url.trim();
    if let Some(path) = url.strip_prefix("file://") {
        return path.starts_with('/').then(|| PathBuf::from(path));
    }
    (!url.contains("://")).then(|| PathBuf::from(url))
}

/// `ROLE:NAME:SECRET,...`; a secret given twice is refused (which role would it have?).
fn parse_tokens(v: &str) -> Option<Vec<ApiToken>> {
    let tokens: Vec<ApiToken> = v
        .split(',')
        .map(|entry| {
            let mut parts = entry.trim().splitn(3, ':');
            let role: Role = parts.next()?.parse().ok()?;
            let name = parts.next().filter(|n| !n.is_empty())?;
            let token = parts.next().filter(|t| !t.is_empty())?;
            Some(ApiToken {
                name: name.to_owned(),
                token: token.to_owned(),
                role,
            })
        })
        .collect::<Option<_>>()?;
    let mut secrets: Vec<&str> = tokens.iter().map(|t| t.token.as_str()).collect();
    secrets.sort_unstable();
    let unique = secrets.windows(2).all(|w| w[0] != w[1]);
    unique.then_some(tokens)
}
