//! The retry budget of a pool: retries may add at most a share of the pool's request rate
//! (or a minimum per second), so that when every endpoint fails, retries cannot multiply
//! the load on it.
//!
//! Each rate is a `pingora_limits::Rate` with a one-second interval, read as a sliding
//! second: the last full interval weighted by the part of it still inside the second, plus
//! the current one. Two instances of one key each, not one of two keys: `Rate` is a
//! count-min sketch with randomly seeded hashes, and two keys in one sketch would, in the
//! rare process whose seeds make them collide, count every request as a retry too.

use std::sync::Arc;
use std::time::Duration;

use pingora_limits::rate::{Rate, RateComponents};

use crate::config::RetryBudget;

/// The one key of each sketch.
const KEY: () = ();

pub(crate) struct Budget {
    settings: RetryBudget,
    /// Shared with the pool's successors, so a reload does not refill the budget.
    rates: Arc<Rates>,
}

struct Rates {
    requests: Rate,
    retries: Rate,
}

/// Events over the last second: the previous interval's share of it plus the current one.
fn last_second(c: RateComponents) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let (prev, curr) = (c.prev_samples as f64, c.curr_samples as f64);
    prev * (1.0 - c.current_interval_fraction) + curr
}

impl Budget {
    pub(crate) fn new(settings: RetryBudget) -> Self {
        // One key each: one hash and one slot count it exactly.
        let rate = || Rate::new_with_estimator_config(Duration::from_secs(1), 1, 1);
        Self {
            settings,
            rates: Arc::new(Rates {
                requests: rate(),
                retries: rate(),
            }),
        }
    }

    /// The budget of a successor pool: new settings, the same counts.
    pub(crate) fn succeed(settings: RetryBudget, previous: &Self) -> Self {
        Self {
            settings,
            rates: Arc::clone(&previous.rates),
        }
    }

    /// A request's first attempt.
    pub(crate) fn request(&self) {
        self.rates.requests.observe(&KEY, 1);
    }

    /// Whether one more retry fits the budget now; if it does, it is counted.
    pub(crate) fn try_retry(&self) -> bool {
        let requests = self.rates.requests.rate_with(&KEY, last_second);
        let retries = self.rates.retries.rate_with(&KEY, last_second);
        let allowed =
            (requests * self.settings.percent / 100.0).max(f64::from(self.settings.min_per_second));
        if retries + 1.0 > allowed {
            return false;
        }
        self.rates.retries.observe(&KEY, 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_by_the_share_of_requests_or_the_minimum() {
        let budget = Budget::new(RetryBudget {
            percent: 10.0,
            min_per_second: 2,
        });

        // Within one second: the minimum applies until 10% of requests exceeds it.
        assert!(budget.try_retry());
        assert!(budget.try_retry());
        assert!(!budget.try_retry(), "two per second without traffic");
        for _ in 0..50 {
            budget.request();
        }
        assert!(budget.try_retry(), "5 allowed now");
        assert!(budget.try_retry());
        assert!(budget.try_retry());
        assert!(!budget.try_retry(), "5 used");
    }
}
