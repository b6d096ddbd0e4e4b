//! The token bucket behind `max_publish_per_second`: `rate` tokens a second, holding at most one second's
//! worth, so an app may burst up to a second's allowance and no more.

use std::time::{Duration, Instant};

/// A token bucket.
#[derive(Debug)]
pub(super) struct Budget {
    /// Tokens left now (fractions accumulate between requests).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Budget {
    /// A full bucket.
    pub(super) fn full(rate: u32) -> Self {
        Budget { tokens: f64::from(rate), at: Instant::now() }
    }

    /// Takes `n` tokens, or says how long until there are enough.
    pub(super) fn take(&mut self, n: usize, rate: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate);
        self.tokens = (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        let n = n as f64;
        if n <= self.tokens {
            self.tokens -= n;
            Ok(())
        } else {
            // A request larger than the whole bucket can never pass; say when a full bucket would come.
            Err(Duration::from_secs_f64((n.min(rate) - self.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publishing_budget_refills_at_its_rate_and_holds_one_second() {
        let start = Instant::now();
        let mut budget = Budget { tokens: 10.0, at: start };
        assert!(budget.take(10, 10, start).is_ok());
        let wait = budget.take(1, 10, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(budget.take(5, 10, start + Duration::from_millis(500)).is_ok());
        // A long pause refills no more than one second's worth.
        assert!(budget.take(11, 10, start + Duration::from_secs(60)).is_err());
        assert!(budget.take(10, 10, start + Duration::from_secs(60)).is_ok());
    }
}
