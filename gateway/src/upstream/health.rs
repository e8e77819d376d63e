//! The health of one endpoint, as a small state machine both kinds of checks feed:
//! - the active verdict: unknown until the first check when the pool has active checks (one
//!   check decides it), then it flips only after `healthy_threshold` passes or
//!   `unhealthy_threshold` failures in a row;
//! - passive health: failures seen by real traffic in a row, and an ejection deadline.
//!
//! An endpoint is routable when its verdict is healthy and it is not ejected. Everything is
//! atomics, read on the request path without locks; the pool turns transitions into logs
//! and metrics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Milliseconds since a process-wide zero point: ejection deadlines are stored this way, so
/// they keep their meaning when a reload hands an endpoint's state to a successor pool.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Active-check verdicts, stored in an `AtomicU8`.
const UNKNOWN: u8 = 0;
const HEALTHY: u8 = 1;
const UNHEALTHY: u8 = 2;

/// One resolved address of a pool and everything known about its health.
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    /// `UNKNOWN` until the first active check when the pool has one, else `HEALTHY`.
    active: AtomicU8,
    /// Consecutive active-check results against the current verdict (only the checker
    /// writes).
    check_streak: AtomicUsize,
    /// Consecutive connect failures or 5xx answers seen by real traffic.
    failures: AtomicU32,
    /// `now_ms()` until which passive health keeps it out.
    ejected_until_ms: AtomicU64,
}

impl Endpoint {
    /// A new member; `checked` when its pool runs active checks (it then waits for one).
    pub(crate) fn new(addr: SocketAddr, checked: bool) -> Self {
        Self {
            addr,
            active: AtomicU8::new(if checked { UNKNOWN } else { HEALTHY }),
            check_streak: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        }
    }

    /// A copy of `self` for a successor pool: the verdict and passive state carry over; a
    /// pool without active checks counts every endpoint as passing them.
    pub(crate) fn inherited(&self, checked: bool) -> Self {
        let active = if checked {
            self.active.load(Relaxed)
        } else {
            HEALTHY
        };
        Self {
            addr: self.addr,
            active: AtomicU8::new(active),
            check_streak: AtomicUsize::new(0),
            failures: AtomicU32::new(self.failures.load(Relaxed)),
            ejected_until_ms: AtomicU64::new(self.ejected_until_ms.load(Relaxed)),
        }
    }

    /// Whether the active verdict is healthy.
    pub(crate) fn active_healthy(&self) -> bool {
        self.active.load(Relaxed) == HEALTHY
    }

    /// Whether passive health keeps it out at `now` (a `now_ms()` value).
    pub(crate) fn ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) > now
    }

    /// The `now_ms()` at which its ejection ends (in the past when it is not ejected).
    pub(crate) fn ejected_until(&self) -> u64 {
        self.ejected_until_ms.load(Relaxed)
    }

    /// Whether it may take traffic at `now`.
    pub(crate) fn routable(&self, now: u64) -> bool {
        self.active_healthy() && !self.ejected(now)
    }

    /// Fold one active-check result in. Returns the new verdict (`true`: healthy) when it
    /// changed, `None` when it stands.
    pub(crate) fn observe_check(
        &self,
        passed: bool,
        healthy_threshold: usize,
        unhealthy_threshold: usize,
    ) -> Option<bool> {
        let next = match (self.active.load(Relaxed), passed) {
            // The first verdict on a new endpoint needs only one check.
            (UNKNOWN, true) => HEALTHY,
            (UNKNOWN, false) => UNHEALTHY,
            (HEALTHY, true) | (UNHEALTHY, false) => {
                self.check_streak.store(0, Relaxed);
                return None;
            }
            (_, ok) => {
                let streak = self.check_streak.fetch_add(1, Relaxed) + 1;
                let needed = if ok {
                    healthy_threshold
                } else {
                    unhealthy_threshold
                };
                if streak < needed {
                    return None;
                }
                if ok {
                    HEALTHY
                } else {
                    UNHEALTHY
                }
            }
        };
        self.check_streak.store(0, Relaxed);
        self.active.store(next, Relaxed);
        Some(next == HEALTHY)
    }

    /// A failure seen by traffic. Returns `true` when it reached `threshold` in a row and so
    /// ejected the endpoint for `cooldown`.
    pub(crate) fn record_failure(&self, threshold: u32, cooldown: Duration, now: u64) -> bool {
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if failures < threshold {
            return false;
        }
        self.eject(cooldown, now);
        true
    }

    /// Keep it out of traffic for `cooldown` from `now`.
    pub(crate) fn eject(&self, cooldown: Duration, now: u64) {
        self.failures.store(0, Relaxed);
        let cooldown = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until_ms
            .store(now.saturating_add(cooldown), Relaxed);
    }

    /// An answer without a 5xx: the failure streak ends.
    pub(crate) fn record_success(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(checked: bool) -> Endpoint {
        Endpoint::new("10.0.0.1:80".parse().unwrap(), checked)
    }

    #[test]
    fn without_active_checks_an_endpoint_is_healthy_from_the_start() {
        assert!(endpoint(false).routable(0));
    }

    #[test]
    fn with_active_checks_the_first_result_decides() {
        let unknown = endpoint(true);
        assert!(!unknown.routable(0), "no traffic before the first check");

        let passes = endpoint(true);
        assert_eq!(passes.observe_check(true, 3, 3), Some(true));
        let fails = endpoint(true);
        assert_eq!(fails.observe_check(false, 3, 3), Some(false));
    }

    #[test]
    fn a_verdict_flips_only_after_its_threshold_in_a_row() {
        // Arrange: healthy; two failures take it out, three passes bring it back.
        let e = endpoint(true);
        e.observe_check(true, 3, 2);

        // Act + Assert
        assert_eq!(e.observe_check(false, 3, 2), None);
        assert_eq!(
            e.observe_check(true, 3, 2),
            None,
            "a pass resets the streak"
        );
        assert_eq!(e.observe_check(false, 3, 2), None);
        assert_eq!(e.observe_check(false, 3, 2), Some(false));
        assert_eq!(e.observe_check(true, 3, 2), None);
        assert_eq!(e.observe_check(true, 3, 2), None);
        assert_eq!(e.observe_check(true, 3, 2), Some(true));
    }

    #[test]
    fn consecutive_failures_eject_for_the_cooldown_and_a_success_resets_the_count() {
        let e = endpoint(false);
        let cooldown = Duration::from_millis(500);

        assert!(!e.record_failure(3, cooldown, 1000));
        assert!(!e.record_failure(3, cooldown, 1000));
        e.record_success();
        assert!(
            !e.record_failure(3, cooldown, 1000),
            "the streak started over"
        );
        assert!(!e.record_failure(3, cooldown, 1000));
        assert!(e.record_failure(3, cooldown, 1000));

        assert!(!e.routable(1499), "ejected during the cooldown");
        assert!(e.routable(1500), "back when it ends");
    }

    #[test]
    fn a_successor_inherits_verdict_and_ejection_unless_it_has_no_checks() {
        let e = endpoint(true);
        e.observe_check(false, 1, 1);
        e.eject(Duration::from_secs(10), 0);

        let checked = e.inherited(true);
        let unchecked = e.inherited(false);

        assert!(!checked.active_healthy());
        assert!(checked.ejected(5_000));
        assert!(
            unchecked.active_healthy(),
            "no checks: passing by definition"
        );
        assert!(
            unchecked.ejected(5_000),
            "the ejection still runs its course"
        );
    }
}
