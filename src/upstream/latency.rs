//! Recent response-head latency of one upstream on one worker: what "typical" (p50) and "slow"
//! (p99) mean for retries (no retry when the time left is below the typical latency) and for
//! `hedge = { after = "p99" }`.
//!
//! A fixed log-scale histogram (four buckets per doubling from `MIN_LATENCY`, so a quantile is
//! within ~19 % of the truth) whose counts are halved every `DECAY_INTERVAL`: old traffic fades
//! and nothing is allocated after construction.

use std::time::{Duration, Instant};

/// Lower edge of the first bucket; faster responses land in it.
pub const MIN_LATENCY: Duration = Duration::from_micros(50);
/// Buckets: 4 per doubling over 22 doublings, from 50 µs to past 200 s.
pub const BUCKETS: usize = 88;
/// Counts are halved this often, so the figures follow the last tens of seconds.
pub const DECAY_INTERVAL: Duration = Duration::from_secs(10);
/// Below this many (decayed) samples there is no estimate.
pub const MIN_SAMPLES: u64 = 20;

pub struct Latency {
    counts: [u32; BUCKETS],
    total: u64,
    last_decay: Instant,
}

impl Latency {
    pub fn new(now: Instant) -> Latency {
        Latency {
            counts: [0; BUCKETS],
            total: 0,
            last_decay: now,
        }
    }

    pub fn record(&mut self, took: Duration, now: Instant) {
        if now.duration_since(self.last_decay) >= DECAY_INTERVAL {
            self.decay(now);
        }
        let b = bucket(took);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.total += 1;
    }

    /// The `q` quantile (0..1) of recent latencies, as its bucket's upper edge.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total < MIN_SAMPLES {
            return None;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(upper_edge(i));
            }
        }
        Some(upper_edge(BUCKETS - 1))
    }

    fn decay(&mut self, now: Instant) {
        self.total = 0;
        for c in &mut self.counts {
            *c /= 2;
            self.total += u64::from(*c);
        }
        self.last_decay = now;
    }
}

/// The bucket of a latency: floor(4 × log2(took / MIN_LATENCY)), clamped.
fn bucket(took: Duration) -> usize {
    let ratio = took.as_secs_f64() / MIN_LATENCY.as_secs_f64();
    if ratio <= 1.0 {
        return 0;
    }
    ((ratio.log2() * 4.0) as usize).min(BUCKETS - 1)
}

fn upper_edge(bucket: usize) -> Duration {
    MIN_LATENCY.mul_f64(2f64.powf((bucket + 1) as f64 / 4.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let t = Instant::now();
        let mut l = Latency::new(t);
        assert_eq!(l.quantile(0.5), None);
        for i in 1..=1000u64 {
            l.record(Duration::from_micros(i * 100), t);
        }
        let p50 = l.quantile(0.5).unwrap().as_secs_f64();
        let p99 = l.quantile(0.99).unwrap().as_secs_f64();
        assert!((0.050..=0.050 * 1.2).contains(&p50), "p50 {p50}");
        assert!((0.099..=0.099 * 1.2).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn old_samples_fade() {
        let t = Instant::now();
        let mut l = Latency::new(t);
        for _ in 0..1000 {
            l.record(Duration::from_millis(500), t);
        }
        let mut now = t;
        for _ in 0..6 {
            now += DECAY_INTERVAL;
            for _ in 0..100 {
                l.record(Duration::from_millis(1), now);
            }
        }
        assert!(l.quantile(0.5).unwrap() < Duration::from_millis(2));
        assert_eq!(bucket(Duration::from_secs(10_000)), BUCKETS - 1);
        assert_eq!(bucket(Duration::ZERO), 0);
    }
}
