//! The retry budget of a pool: retries may add at most a share of the pool's request rate
//! (or a minimum per second), so that when every endpoint fails, retries cannot multiply
//! the load on it.
//!
//! Both rates come from one `pingora_limits::Rate` with a one-second interval, read as a
//! sliding second: the last full interval weighted by the part of it still inside the
//! second, plus the current one.

use std::sync::Arc;
use std::time::Duration;

use pingora_limits::rate::{Rate, RateComponents};

use crate::config::RetryBudget;

const REQUESTS: u8 = 0;
const RETRIES: u8 = 1;

pub(crate) struct Budget {
    settings: RetryBudget,
    /// Shared with the pool's successors, so a reload does not refill the budget.
    rate: Arc<Rate>,
}

/// Events over the last second: the previous interval's share of it plus the current one.
fn last_second(c: RateComponents) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let (prev, curr) = (c.prev_samples as f64, c.curr_samples as f64);
    prev * (1.0 - c.current_interval_fraction) + curr
}

impl Budget {
    pub(crate) fn new(settings: RetryBudget) -> Self {
        // Two keys: a small estimator is exact for them.
        let rate = Rate::new_with_estimator_config(Duration::from_secs(1), 2, 16);
        Self {
            settings,
            rate: Arc::new(rate),
        }
    }

    /// The budget of a successor pool: new settings, the same counts.
    pub(crate) fn succeed(settings: RetryBudget, previous: &Self) -> Self {
        Self {
            settings,
            rate: Arc::clone(&previous.rate),
        }
    }

    /// A request's first attempt.
    pub(crate) fn request(&self) {
        self.rate.observe(&REQUESTS, 1);
    }

    /// Whether one more retry fits the budget now; if it does, it is counted.
    pub(crate) fn try_retry(&self) -> bool {
        let requests = self.rate.rate_with(&REQUESTS, last_second);
        let retries = self.rate.rate_with(&RETRIES, last_second);
        let allowed =
            (requests * self.settings.percent / 100.0).max(f64::from(self.settings.min_per_second));
        if retries + 1.0 > allowed {
            return false;
        }
        self.rate.observe(&RETRIES, 1);
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
