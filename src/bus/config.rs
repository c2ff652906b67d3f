//! [`BusConfig`]: retries, backoff and dead letters, set in code or read from the environment
//! variables the replaced design used (`EVENT_BUS_MAX_RETRIES`, `EVENT_BUS_RETRY_DELAY_MS`,
//! `EVENT_BUS_DEAD_LETTER_ENABLED`).

use std::time::Duration;

use crate::bus::backoff::Backoff;

/// Largest [`BusConfig::batch_events`]: the parked records of a batch are written in one
/// append with the checkpoint, and an append holds at most `wire::limits::MAX_BATCH_EVENTS`
/// (10,000) events.
pub const MAX_BATCH_EVENTS: usize = 4_096;

/// Retries after a failed first delivery (`EVENT_BUS_MAX_RETRIES`).
pub const ENV_MAX_RETRIES: &str = "EVENT_BUS_MAX_RETRIES";
/// Delay before the first retry, doubled for each next one (`EVENT_BUS_RETRY_DELAY_MS`).
pub const ENV_RETRY_DELAY_MS: &str = "EVENT_BUS_RETRY_DELAY_MS";
/// Cap of the retry delay (`EVENT_BUS_MAX_RETRY_DELAY_MS`).
pub const ENV_MAX_RETRY_DELAY_MS: &str = "EVENT_BUS_MAX_RETRY_DELAY_MS";
/// Park events that still fail in `$dlq-HANDLER` (`EVENT_BUS_DEAD_LETTER_ENABLED`).
pub const ENV_DEAD_LETTER_ENABLED: &str = "EVENT_BUS_DEAD_LETTER_ENABLED";

/// How the bus retries, parks and checkpoints. `Default` gives the replaced design's values:
/// 3 retries, 1,000 ms first delay, dead letters on.
///
/// ```
/// use evlog::bus::BusConfig;
/// let config = BusConfig::default().max_retries(5).retry_delay_ms(200);
/// assert_eq!((config.max_retries, config.retry_delay_ms), (5, 200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Retries after a failed first delivery; an event is delivered at most `1 + max_retries`
    /// times before it is parked (3). A delivery whose outputs a batch's commit refused is not
    /// counted (see [`crate::bus::HandlerContext::emit`]): it is delivered again at once.
    pub max_retries: u32,
    /// Delay before the first retry (1,000 ms); each next retry waits twice as long, up to
    /// `max_retry_delay_ms`, with jitter (see [`Backoff`]).
    pub retry_delay_ms: u64,
    /// Cap of the retry delay (60,000 ms).
    pub max_retry_delay_ms: u64,
    /// Park an event that still fails after the retries in the handler's dead-letter stream
    /// `$dlq-HANDLER` and go on (true). When false, nothing is dropped either: the handler keeps
    /// retrying that event at the capped delay and handles nothing else meanwhile.
    pub dead_letter_enabled: bool,
    /// Events read from the log per poll (256, at most [`MAX_BATCH_EVENTS`]). A batch is
    /// delivered before the next is read, and what it parks is recorded in one append.
    pub batch_events: usize,
    /// Streams of one batch delivered at once (1: one event at a time). Each stream's events
    /// stay in order whatever the value; with more than 1 the handler is called concurrently
    /// for events of different streams.
    pub concurrency: usize,
    /// A handler's checkpoint is written after this many handled events (10,000), when it has
    /// moved and the last one is older than [`BusConfig::checkpoint_every_ms`], when it parks
    /// an event and when the bus shuts down. After a crash the events since the last checkpoint
    /// are delivered again (at least once).
    pub checkpoint_every_events: u64,
    /// A checkpoint that moved is written once it is this old (1000 ms), also while the handler
    /// waits for events: a handler that keeps up with live traffic does not write one (an
    /// fsync on a durable store) per event.
    pub checkpoint_every_ms: u64,
    /// How often an idle handler looks for events appended to the store directly rather than
    /// through the bus (100 ms); events published through the bus wake it at once.
    pub idle_poll_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            max_retries: 3,
            retry_delay_ms: 1_000,
            max_retry_delay_ms: 60_000,
            dead_letter_enabled: true,
            batch_events: 256,
            concurrency: 1,
            checkpoint_every_events: 10_000,
            checkpoint_every_ms: 1_000,
            idle_poll_ms: 100,
        }
    }
}

/// A configuration variable whose value the bus cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not valid: expected {expected}; fix or unset the variable")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What it must hold.
    pub expected: &'static str,
}

impl BusConfig {
    /// The defaults, overridden by the `EVENT_BUS_*` variables of the process environment that
    /// are set. A variable set to a value that does not parse is an error, never ignored.
    pub fn from_env() -> Result<BusConfig, ConfigError> {
        Self::from_lookup(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }

    /// [`BusConfig::from_env`] over any source of variables (a map in a test, a config file).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use evlog::bus::BusConfig;
    /// let vars = HashMap::from([("EVENT_BUS_MAX_RETRIES", "5"), ("EVENT_BUS_DEAD_LETTER_ENABLED", "false")]);
    /// let config = BusConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string()))?;
    /// assert_eq!((config.max_retries, config.dead_letter_enabled), (5, false));
    /// assert!(BusConfig::from_lookup(|_| Some("lots".into())).is_err());
    /// # Ok::<(), evlog::bus::ConfigError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<BusConfig, ConfigError> {
        let mut config = BusConfig::default();
        if let Some(v) = lookup(ENV_MAX_RETRIES) {
            config.max_retries =
                parse_number(ENV_MAX_RETRIES, &v, "a whole number of retries, e.g. 3")?;
        }
        if let Some(v) = lookup(ENV_RETRY_DELAY_MS) {
            config.retry_delay_ms = parse_number(
                ENV_RETRY_DELAY_MS,
                &v,
                "a whole number of milliseconds, e.g. 1000",
            )?;
        }
        if let Some(v) = lookup(ENV_MAX_RETRY_DELAY_MS) {
            config.max_retry_delay_ms = parse_number(
                ENV_MAX_RETRY_DELAY_MS,
                &v,
                "a whole number of milliseconds, e.g. 60000",
            )?;
        }
        if let Some(v) = lookup(ENV_DEAD_LETTER_ENABLED) {
            config.dead_letter_enabled = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError {
                        var: ENV_DEAD_LETTER_ENABLED,
                        value: v,
                        expected: "true or false",
                    });
                }
            };
        }
        Ok(config)
    }

    /// Sets [`BusConfig::max_retries`].
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets [`BusConfig::retry_delay_ms`].
    pub fn retry_delay_ms(mut self, ms: u64) -> Self {
        self.retry_delay_ms = ms;
        self
    }

    /// Sets [`BusConfig::max_retry_delay_ms`].
    pub fn max_retry_delay_ms(mut self, ms: u64) -> Self {
        self.max_retry_delay_ms = ms;
        self
    }

    /// Sets [`BusConfig::dead_letter_enabled`].
    pub fn dead_letter_enabled(mut self, yes: bool) -> Self {
        self.dead_letter_enabled = yes;
        self
    }

    /// Sets [`BusConfig::batch_events`] (1 to [`MAX_BATCH_EVENTS`]).
    pub fn batch_events(mut self, n: usize) -> Self {
        self.batch_events = n.clamp(1, MAX_BATCH_EVENTS);
        self
    }

    /// Sets [`BusConfig::concurrency`] (at least 1).
    pub fn concurrency(mut self, streams: usize) -> Self {
        self.concurrency = streams.max(1);
        self
    }

    /// Sets [`BusConfig::checkpoint_every_events`] (at least 1).
    pub fn checkpoint_every_events(mut self, n: u64) -> Self {
        self.checkpoint_every_events = n.max(1);
        self
    }

    /// Sets [`BusConfig::checkpoint_every_ms`].
    pub fn checkpoint_every_ms(mut self, ms: u64) -> Self {
        self.checkpoint_every_ms = ms;
        self
    }

    /// Sets [`BusConfig::idle_poll_ms`] (at least 1).
    pub fn idle_poll_ms(mut self, ms: u64) -> Self {
        self.idle_poll_ms = ms.max(1);
        self
    }

    /// The retry schedule these settings give.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.retry_delay_ms),
            cap: Duration::from_millis(self.max_retry_delay_ms.max(self.retry_delay_ms)),
        }
    }
}

fn parse_number<T: std::str::FromStr>(
    var: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError {
        var,
        value: value.to_owned(),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<BusConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BusConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(from(&[]), Ok(BusConfig::default()));
        let d = BusConfig::default();
        assert_eq!(
            (d.max_retries, d.retry_delay_ms, d.dead_letter_enabled),
            (3, 1_000, true)
        );
    }

    #[test]
    fn set_variables_override_the_defaults() {
        let c = from(&[
            (ENV_MAX_RETRIES, "7"),
            (ENV_RETRY_DELAY_MS, " 250 "),
            (ENV_MAX_RETRY_DELAY_MS, "5000"),
            (ENV_DEAD_LETTER_ENABLED, "FALSE"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.max_retries,
                c.retry_delay_ms,
                c.max_retry_delay_ms,
                c.dead_letter_enabled
            ),
            (7, 250, 5_000, false)
        );
        assert!(
            from(&[(ENV_DEAD_LETTER_ENABLED, "1")])
                .unwrap()
                .dead_letter_enabled
        );
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        for (var, value) in [
            (ENV_MAX_RETRIES, "three"),
            (ENV_MAX_RETRIES, "-1"),
            (ENV_MAX_RETRIES, ""),
            (ENV_RETRY_DELAY_MS, "1.5"),
            (ENV_MAX_RETRY_DELAY_MS, "1s"),
            (ENV_DEAD_LETTER_ENABLED, "maybe"),
        ] {
            let e = from(&[(var, value)]).unwrap_err();
            assert_eq!((e.var, e.value.as_str()), (var, value));
            let msg = e.to_string();
            assert!(msg.starts_with(var) && msg.contains("expected"), "{msg}");
        }
    }
}
