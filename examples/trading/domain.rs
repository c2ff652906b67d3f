//! The trading platform's domain: its events as typed serde events, the `AIResult` and
//! `PriceFeed` aggregates, and the read models the handlers keep.

use std::collections::BTreeMap;

use evlog::RecordedEvent;
use evlog::bus::DomainEvent;
use evlog::snapshot::Aggregate;
use serde::{Deserialize, Serialize};

macro_rules! domain_event {
    ($t:ident) => {
        impl DomainEvent for $t {
            const EVENT_TYPE: &'static str = stringify!($t);
        }
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthenticated {
    pub user_id: String,
    pub method: String,
    pub ip: String,
}
domain_event!(UserAuthenticated);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AIResultCreated {
    pub result_id: String,
    pub user_id: String,
    pub model: String,
    /// Credits reserved for the request (released again when it fails).
    pub reserved_credits: u64,
}
domain_event!(AIResultCreated);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AIResultCompleted {
    pub result_id: String,
    pub user_id: String,
    pub score: f64,
    pub risk_level: String,
    pub provider: String,
}
domain_event!(AIResultCompleted);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AIResultFailed {
    pub result_id: String,
    pub user_id: String,
    pub reason: String,
}
domain_event!(AIResultFailed);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OracleSnapshotRecorded {
    pub feed: String,
    pub price: f64,
    pub round_id: u64,
}
domain_event!(OracleSnapshotRecorded);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceFeedUpdated {
    pub feed: String,
    pub price: f64,
    pub volume: f64,
}
domain_event!(PriceFeedUpdated);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogCreated {
    pub user_id: String,
    pub action: String,
    pub subject: String,
}
domain_event!(AuditLogCreated);

/// The event types, in the order the summary lists them.
pub const EVENT_TYPES: [&str; 7] = [
    "UserAuthenticated",
    "AIResultCreated",
    "AIResultCompleted",
    "AIResultFailed",
    "PriceFeedUpdated",
    "OracleSnapshotRecorded",
    "AuditLogCreated",
];

pub fn ai_result_stream(id: &str) -> String {
    format!("ai-result-{id}")
}

pub fn price_feed_stream(feed: &str) -> String {
    format!("price-feed-{feed}")
}

pub fn decode<E: DomainEvent>(e: &RecordedEvent) -> Option<E> {
    (*e.event_type == *E::EVENT_TYPE)
        .then(|| E::decode(&e.payload).ok())
        .flatten()
}

/// One AI scoring request, as its stream tells it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AIResult {
    pub status: String,
    pub user_id: String,
    pub reserved_credits: u64,
    pub score: Option<f64>,
    pub risk_level: Option<String>,
    pub failure: Option<String>,
}

impl Aggregate for AIResult {
    const SCHEMA_VERSION: u32 = 1;

    fn apply(&mut self, e: &RecordedEvent) {
        if let Some(c) = decode::<AIResultCreated>(e) {
            self.status = "pending".into();
            self.user_id = c.user_id;
            self.reserved_credits = c.reserved_credits;
        } else if let Some(c) = decode::<AIResultCompleted>(e) {
            self.status = "completed".into();
            self.score = Some(c.score);
            self.risk_level = Some(c.risk_level);
        } else if let Some(f) = decode::<AIResultFailed>(e) {
            self.status = "failed".into();
            self.failure = Some(f.reason);
            self.reserved_credits = 0;
        }
    }
}

/// One price feed: its last price and range.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceFeed {
    pub updates: u64,
    pub last: f64,
    pub high: f64,
    pub low: f64,
}

impl Aggregate for PriceFeed {
    const SCHEMA_VERSION: u32 = 1;

    fn apply(&mut self, e: &RecordedEvent) {
        if let Some(u) = decode::<PriceFeedUpdated>(e) {
            if self.updates == 0 {
                (self.high, self.low) = (u.price, u.price);
            }
            self.updates += 1;
            self.last = u.price;
            self.high = self.high.max(u.price);
            self.low = self.low.min(u.price);
        }
    }
}

/// The event types the read models are made of.
pub const READ_MODEL_TYPES: [&str; 3] =
    ["AIResultCompleted", "PriceFeedUpdated", "AuditLogCreated"];

/// The read models: scores per user, the latest price per feed, the audit log by user. Every
/// update is idempotent (keyed by result, by version, by event id), so an event delivered
/// again changes nothing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReadModels {
    /// user -> result id -> score.
    pub scores: BTreeMap<String, BTreeMap<String, u64>>,
    /// feed -> (version of the update, price in micro-units).
    pub prices: BTreeMap<String, (u64, i64)>,
    /// user -> event id -> action.
    pub audit: BTreeMap<String, BTreeMap<String, String>>,
}

impl ReadModels {
    pub fn apply(&mut self, e: &RecordedEvent) {
        if let Some(c) = decode::<AIResultCompleted>(e) {
            self.scores
                .entry(c.user_id)
                .or_default()
                .insert(c.result_id, (c.score * 1000.0).round() as u64);
        } else if let Some(u) = decode::<PriceFeedUpdated>(e) {
            let price = (u.price * 1e6).round() as i64;
            let slot = self.prices.entry(u.feed).or_insert((e.version, price));
            if e.version >= slot.0 {
                *slot = (e.version, price);
            }
        } else if let Some(a) = decode::<AuditLogCreated>(e) {
            self.audit
                .entry(a.user_id)
                .or_default()
                .insert(e.id.to_string(), a.action);
        }
    }

    pub fn is_read_model_event(event_type: &str) -> bool {
        READ_MODEL_TYPES.contains(&event_type)
    }
}
