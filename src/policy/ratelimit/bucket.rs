//! A token bucket whose rate and capacity are passed in on every call, because they belong to
//! the worker's current share and change under the bucket at each rebalance.

/// Slack when comparing token counts, so that refills summed from many small steps are not lost
/// to floating-point rounding (0.1 + 0.2 ...).
const TOKEN_EPSILON: f64 = 1e-9;

/// Nanoseconds per second, for turning the limiter's clock into token counts.
const NANOS_PER_SEC: f64 = 1e9;

/// Tokens as of `at` (nanoseconds since the limiter's origin); refilled lazily when looked at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: u64,
}

impl Bucket {
    /// A full bucket: a key or route nobody has used yet owes nothing.
    pub(crate) fn full(cap: f64, at: u64) -> Bucket {
        Bucket { tokens: cap, at }
    }

    /// Credits what `rate` earned since the last look, up to `cap`.
    pub(crate) fn refill(&mut self, now: u64, rate: f64, cap: f64) {
        if now > self.at {
            self.tokens += (now - self.at) as f64 / NANOS_PER_SEC * rate;
            self.at = now;
        }
        self.tokens = self.tokens.min(cap);
    }

    /// Takes one token; `Err` carries the seconds until one is likely at `retry_rate`.
    pub(crate) fn take(
        &mut self,
        now: u64,
        rate: f64,
        cap: f64,
        retry_rate: f64,
    ) -> Result<(), u64> {
        self.refill(now, rate, cap);
        if self.tokens >= 1.0 - TOKEN_EPSILON {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(retry_after(1.0 - self.tokens, retry_rate))
        }
    }

    /// True when refilling would reach `cap`: such a bucket holds nothing a fresh one would not.
    pub(crate) fn is_full(&self, now: u64, rate: f64, cap: f64) -> bool {
        let earned = now.saturating_sub(self.at) as f64 / NANOS_PER_SEC * rate;
        self.tokens + earned >= cap - TOKEN_EPSILON
    }

    #[cfg(test)]
    pub(crate) fn tokens(&self) -> f64 {
        self.tokens
    }
}

/// Whole seconds for `Retry-After` (RFC 9110 has no fractions): rounded up, at least 1.
pub(crate) fn retry_after(missing: f64, rate: f64) -> u64 {
    let secs = (missing / rate).ceil();
    // NaN (rate 0) and huge values saturate in the cast; u32::MAX s is "not in this process's life".
    (secs.min(u32::MAX as f64) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn starts_full_then_refills_at_rate_up_to_cap() {
        let mut b = Bucket::full(3.0, 0);
        for _ in 0..3 {
            assert!(b.take(0, 10.0, 3.0, 10.0).is_ok());
        }
        assert!(b.take(0, 10.0, 3.0, 10.0).is_err());
        // 100 ms at 10/s is exactly one token, reached through ten 10 ms steps of rounding.
        for i in 1..=10 {
            b.refill(i * SEC / 100, 10.0, 3.0);
        }
        assert!(b.take(SEC / 10, 10.0, 3.0, 10.0).is_ok());
        b.refill(100 * SEC, 10.0, 3.0);
        assert_eq!(b.tokens(), 3.0);
        assert!(b.is_full(100 * SEC, 10.0, 3.0));
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after(0.01, 1000.0), 1);
        assert_eq!(retry_after(1.0, 0.5), 2);
        assert_eq!(retry_after(0.5, 0.4), 2);
        assert_eq!(retry_after(1.0, 0.0), u32::MAX as u64);
    }
}
