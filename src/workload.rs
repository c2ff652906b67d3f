//! The standard workload, deterministic from a seed, shared by the benches and `evlog bench`:
//! 10,000 streams; each event to a random stream; JSON-like payloads of about 250 bytes drawn
//! from the trading platform's domain (AI scoring results, oracle price feeds, audit entries);
//! metadata with correlation id, causation id and a timestamp.

use crate::event::{EventData, Metadata};
use uuid::Uuid;

/// Streams in the standard workload.
pub const STANDARD_STREAMS: u64 = 10_000;

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn uuid(&mut self) -> Uuid {
        let hi = u128::from(self.next_u64()) << 64;
        uuid::Builder::from_random_bytes((hi | u128::from(self.next_u64())).to_le_bytes())
            .into_uuid()
    }
}

/// The event types of the standard workload, one in seven events is of each.
pub const EVENT_TYPES: [&str; 7] = [
    "AIResultCreatedEvent",
    "AIResultCompletedEvent",
    "AIResultFailedEvent",
    "OracleSnapshotRecordedEvent",
    "PriceFeedUpdatedEvent",
    "AuditLogCreatedEvent",
    "UserAuthenticatedEvent",
];

/// Generates the standard workload's events.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    streams: u64,
    base_ts_ms: u64,
    n: u64,
}

impl Workload {
    /// The standard workload (10,000 streams) from `seed`.
    pub fn standard(seed: u64) -> Self {
        Self::with_streams(seed, STANDARD_STREAMS)
    }

    /// The workload over `streams` streams.
    pub fn with_streams(seed: u64, streams: u64) -> Self {
        Workload {
            rng: Rng::new(seed),
            streams: streams.max(1),
            base_ts_ms: 1_767_225_600_000,
            n: 0,
        }
    }

    /// Appends the next `n` events to `store`, one event per append (`ExpectedVersion::Any`):
    /// the shape of a store the probes and benches load.
    pub fn append_to(&mut self, store: &crate::Store, n: u64) -> crate::Result<()> {
        for _ in 0..n {
            let (stream, e) = self.next_event();
            store.append(&stream, crate::ExpectedVersion::Any, &[e])?;
        }
        Ok(())
    }

    /// The stream id of stream number `i`.
    pub fn stream_name(i: u64) -> String {
        format!("aggregate-{i:05}")
    }

    /// The next event and the stream it goes to.
    pub fn next_event(&mut self) -> (String, EventData) {
        let s = self.rng.below(self.streams);
        let k = self.rng.below(EVENT_TYPES.len() as u64) as usize;
        let ev = self.event_of_type(k);
        (Self::stream_name(s), ev)
    }

    /// An event of type `EVENT_TYPES[k]` with a payload of about 250 bytes.
    pub fn event_of_type(&mut self, k: usize) -> EventData {
        self.n += 1;
        let r = &mut self.rng;
        let ts = self.base_ts_ms + self.n * 7;
        let payload = match k {
            0..=2 => format!(
                r#"{{"userId":"user-{:06}","scoreId":"{}","model":"credit-risk-v{}","status":"{}","score":{}.{:03},"confidence":0.{:04},"features":{{"txCount":{},"avgAmount":{}.{:02}}},"ts":{ts}}}"#,
                r.below(1_000_000),
                r.uuid(),
                1 + r.below(5),
                ["pending", "completed", "failed"][k],
                r.below(1000),
                r.below(1000),
                r.below(10_000),
                r.below(5000),
                r.below(100_000),
                r.below(100),
            ),
            3 | 4 => format!(
                r#"{{"feedId":"{}","pair":"{}","price":"{}.{:08}","source":"oracle-{}","roundId":{},"deviationBps":{},"signers":["0x{:016x}","0x{:016x}"],"ts":{ts}}}"#,
                r.uuid(),
                ["BTC/USD", "ETH/USD", "XLM/USD", "SOL/USD"][r.below(4) as usize],
                r.below(100_000),
                r.below(100_000_000),
                r.below(16),
                r.below(10_000_000),
                r.below(500),
                r.next_u64(),
                r.next_u64(),
            ),
            _ => format!(
                r#"{{"actorId":"user-{:06}","action":"{}","resource":"/api/v1/{}/{}","ip":"10.{}.{}.{}","userAgent":"edge-client/{}.{}","result":"{}","sessionId":"{}","ts":{ts}}}"#,
                r.below(1_000_000),
                ["login", "logout", "update", "delete", "create"][r.below(5) as usize],
                ["accounts", "orders", "scores", "feeds"][r.below(4) as usize],
                r.below(100_000),
                r.below(256),
                r.below(256),
                r.below(256),
                r.below(10),
                r.below(10),
                ["ok", "denied"][r.below(2) as usize],
                r.uuid(),
            ),
        };
        let metadata = Metadata::new()
            .with_correlation_id(r.uuid())
            .with_causation_id(r.uuid())
            .with("ts", ts.to_string());
        EventData::new(EVENT_TYPES[k], payload.into_bytes())
            .with_id(r.uuid())
            .with_metadata(metadata)
    }
}
