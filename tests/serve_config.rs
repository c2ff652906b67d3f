//! `ServeConfig` (feature `serve`): the replaced design's variables, a TOML file, every bad
//! value refused with the variable's name and what it may hold; and the periodic metrics
//! export on tokio's paused clock.

#![cfg(feature = "serve")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evlog::Store;
use evlog::bus::{BusConfig, EventBus};
use evlog::http::Role;
use evlog::http::config::{IGNORED_VARIABLES, ServeConfig, ServeConfigError};
use evlog::metrics::{ExportTarget, HealthConfig, Metrics, Monitor, export_metrics_every};

fn from(vars: &[(&str, &str)]) -> Result<ServeConfig, ServeConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ServeConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn the_original_variables_are_read() {
    let c = from(&[
        ("EVENT_STORE_CONNECTION_URL", "file:///var/lib/app/events"),
        ("EVENT_STORE_MAX_CONNECTIONS", "20"),
        ("EVENT_BUS_MAX_RETRIES", "5"),
        ("EVENT_BUS_RETRY_DELAY_MS", "250"),
        ("EVENT_BUS_DEAD_LETTER_ENABLED", "false"),
        ("EVENT_MONITORING_ENABLED", "false"),
        ("EVENT_METRICS_EXPORT_INTERVAL", "3600000"),
        ("SNAPSHOT_INTERVAL_VERSIONS", "50"),
        ("SNAPSHOT_RETENTION_DAYS", "7"),
        ("EVLOG_LISTEN", "0.0.0.0:9000"),
        ("EVLOG_API_TOKENS", "read:grafana:s3cr:et, operate:ops:x"),
        ("EVLOG_HEALTH_MAX_LAG_EVENTS", "99"),
        ("EVLOG_HEALTH_MAX_DEAD_LETTERS", "3"),
    ])
    .unwrap();
    assert_eq!(c.store_dir, Some(PathBuf::from("/var/lib/app/events")));
    assert_eq!(c.ignored, IGNORED_VARIABLES.to_vec());
    assert_eq!(
        c.bus,
        BusConfig::default()
            .max_retries(5)
            .retry_delay_ms(250)
            .dead_letter_enabled(false)
    );
    assert!(!c.monitoring_enabled);
    assert_eq!(c.metrics_export_interval, Some(Duration::from_secs(3600)));
    assert_eq!(c.snapshots.interval_versions, 50);
    assert_eq!(c.snapshots.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
    let tokens: Vec<_> = c
        .tokens
        .iter()
        .map(|t| (t.name.as_str(), t.token.as_str(), t.role))
        .collect();
    assert_eq!(
        tokens,
        [
            ("grafana", "s3cr:et", Role::Read),
            ("ops", "x", Role::Operate)
        ]
    );
    assert_eq!(
        (c.health.max_lag_events, c.health.max_dead_letters),
        (99, 3)
    );
    // A token never shows in the debug form.
    assert!(!format!("{c:?}").contains("s3cr"));
    c.check().unwrap();
}

#[test]
fn defaults_bind_loopback_and_a_plain_path_is_a_store() {
    let c = from(&[("EVENT_STORE_CONNECTION_URL", "./events")]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.store_dir, Some(PathBuf::from("./events")));
    assert!(c.monitoring_enabled && c.metrics_export_interval.is_none() && c.ignored.is_empty());
    assert!(matches!(c.check(), Err(ServeConfigError::NoTokens)));
    assert!(matches!(
        from(&[]).unwrap().check(),
        Err(ServeConfigError::NoStore)
    ));
    let open = from(&[
        ("EVENT_STORE_CONNECTION_URL", "/x"),
        ("EVLOG_NO_AUTH", "true"),
    ])
    .unwrap();
    open.check().unwrap();
}

#[test]
fn every_bad_value_is_refused_naming_the_variable_and_what_is_allowed() {
    for (var, value, allowed) in [
        (
            "EVENT_STORE_CONNECTION_URL",
            "postgresql://db/events",
            "file:///path",
        ),
        (
            "EVENT_STORE_CONNECTION_URL",
            "file://relative",
            "file:///path",
        ),
        ("EVENT_BUS_MAX_RETRIES", "three", "whole number"),
        ("EVENT_BUS_RETRY_DELAY_MS", "-5", "milliseconds"),
        ("EVENT_BUS_MAX_RETRY_DELAY_MS", "1m", "milliseconds"),
        ("EVENT_BUS_DEAD_LETTER_ENABLED", "maybe", "true or false"),
        ("EVENT_MONITORING_ENABLED", "sometimes", "true or false"),
        ("EVENT_METRICS_EXPORT_INTERVAL", "1h", "milliseconds"),
        ("SNAPSHOT_INTERVAL_VERSIONS", "many", "whole number"),
        ("SNAPSHOT_RETENTION_DAYS", "1.5", "whole number"),
        ("EVLOG_LISTEN", "localhost", "address and port"),
        ("EVLOG_API_TOKENS", "root:me:pw", "read, operate or admin"),
        ("EVLOG_API_TOKENS", "read::pw", "ROLE:NAME:SECRET"),
        ("EVLOG_API_TOKENS", "read:me:", "ROLE:NAME:SECRET"),
        ("EVLOG_HEALTH_MAX_LAG_EVENTS", "lots", "whole number"),
        ("EVLOG_HEALTH_MAX_DEAD_LETTERS", "-1", "whole number"),
        ("EVLOG_NO_AUTH", "please", "true or false"),
    ] {
        let e = from(&[(var, value)]).unwrap_err().to_string();
        assert!(e.contains(var) && e.contains(allowed), "{var}={value}: {e}");
        if var == "EVLOG_API_TOKENS" {
            assert!(!e.contains("pw") && !e.contains("me:"), "a secret in {e}");
        }
    }
}

#[test]
fn a_toml_file_holds_the_variables_and_tokens_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evlog.toml");
    std::fs::write(
        &path,
        r#"
EVENT_STORE_CONNECTION_URL = "/data/events"
EVENT_BUS_MAX_RETRIES = 7
EVENT_MONITORING_ENABLED = false
EVENT_STORE_MAX_CONNECTIONS = 20

[[tokens]]
name = "ops"
token = "file-secret"
role = "admin"
"#,
    )
    .unwrap();
    let env = HashMap::from([("EVENT_BUS_MAX_RETRIES", "2")]);
    let c =
        ServeConfig::from_file_and_lookup(&path, |k| env.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(c.store_dir, Some(PathBuf::from("/data/events")));
    assert_eq!(c.bus.max_retries, 2);
    assert!(!c.monitoring_enabled);
    assert_eq!(c.ignored, ["EVENT_STORE_MAX_CONNECTIONS"]);
    assert_eq!(
        (c.tokens[0].role, c.tokens[0].token.as_str()),
        (Role::Admin, "file-secret")
    );

    for (text, says) in [
        ("NOT_A_VARIABLE = 1\n", "unknown key"),
        ("EVENT_BUS_MAX_RETRIES = [1]\n", "EVENT_BUS_MAX_RETRIES"),
        (
            "[[tokens]]\nname = \"x\"\ntoken = \"y\"\nrole = \"root\"\n",
            "role",
        ),
        ("this is not toml", "evlog.toml"),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = ServeConfig::from_file_and_lookup(&path, |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
    let e = ServeConfig::from_file_and_lookup(&path, |k| {
        (k == "EVENT_BUS_MAX_RETRIES").then(|| "x".to_string())
    });
    assert!(e.is_err());
}

#[tokio::test(start_paused = true)]
async fn the_metrics_export_writes_a_snapshot_each_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    let metrics = Arc::new(Metrics::new());
    let bus = EventBus::with_observer(store, BusConfig::default(), metrics.clone());
    let monitor = Arc::new(Monitor::new(bus, metrics, HealthConfig::default()));
    let file = dir.path().join("metrics.prom");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let every = Duration::from_secs(3600);
    let task = tokio::spawn(export_metrics_every(
        monitor,
        every,
        ExportTarget::File(file.clone()),
        stop_rx,
    ));
    // Nothing before the first interval.
    tokio::time::advance(every - Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert!(!file.exists());
    for _ in 0..2 {
        tokio::time::advance(every).await;
        tokio::task::yield_now().await;
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("evlog_store_events 0") && text.ends_with("# EOF\n"));
    stop.send_replace(true);
    assert_eq!(task.await.unwrap(), 2);
}
