//! [`Backoff`]: the delay before each retry, exponential with jitter and a cap.

use std::time::Duration;

use uuid::Uuid;

/// The retry schedule: retry `n` (1 for the first retry) waits `base * 2^(n-1)`, capped at
/// `cap`, with "equal jitter": half of that is always waited, the other half is a random
/// fraction of it. So retries of many failing events spread out instead of arriving together,
/// and no retry waits less than half its exponential step.
///
/// The random fraction comes from a seed (the bus uses [`Backoff::seed`] of the event's id), so
/// one event's schedule can be computed again, e.g. by a test.
///
/// ```
/// use std::time::Duration;
/// use evlog::bus::Backoff;
/// let b = Backoff { base: Duration::from_millis(1000), cap: Duration::from_secs(60) };
/// for retry in 1..=10 {
///     let step = Duration::from_millis(1000 << (retry - 1)).min(b.cap);
///     let d = b.delay(retry, 42);
///     assert!(d >= step / 2 && d <= step);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Step of the first retry.
    pub base: Duration,
    /// Largest step.
    pub cap: Duration,
}

impl Backoff {
    /// The exponential step of retry `retry` (1-based), before jitter.
    pub fn step(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The jitter seed of the event whose id is `id`.
    pub fn seed(id: &Uuid) -> u64 {
        let (hi, lo) = id.as_u64_pair();
        hi ^ lo
    }

    /// The delay before retry `retry` (1-based) of the event whose jitter seed is `seed`, in
    /// whole milliseconds (the resolution of tokio's timers).
    pub fn delay(&self, retry: u32, seed: u64) -> Duration {
        let step = u64::try_from(self.step(retry).as_millis()).unwrap_or(u64::MAX);
        let half = step / 2;
        let spread = step - half;
        let jitter = mix(seed ^ u64::from(retry).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            % spread.saturating_add(1);
        Duration::from_millis(half + jitter)
    }
}

/// splitmix64's finalizer: spreads a seed's bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1_000),
        };
        let steps: Vec<u64> = (1..=6).map(|r| b.step(r).as_millis() as u64).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(b.step(200), b.cap);
        let mut distinct = std::collections::BTreeSet::new();
        for seed in 0..200 {
            for retry in 1..=6 {
                let d = b.delay(retry, seed);
                assert!(d >= b.step(retry) / 2 && d <= b.step(retry), "{d:?}");
                assert_eq!(d, b.delay(retry, seed), "one seed, one schedule");
                distinct.insert(d);
            }
        }
        assert!(distinct.len() > 100, "the jitter spreads delays out");
    }

    #[test]
    fn a_zero_base_never_waits() {
        let b = Backoff {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        assert_eq!(b.delay(3, 7), Duration::ZERO);
    }
}
