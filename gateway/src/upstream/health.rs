//! The health of one endpoint, as a small state machine both kinds of checks feed:
//! - the active verdict: unknown until the first check when the pool has active checks (one
//!   check decides it), then it flips only after `healthy_threshold` passes or
//!   `unhealthy_threshold` failures in a row;
//! - the circuit breaker, fed by real traffic: closed; open until a deadline after failures;
//!   then half-open, when a bounded number of probe requests decide whether it closes again or
//!   opens for twice as long.
//!
//! An endpoint is routable when its verdict is healthy and its breaker admits the request.
//! Everything is atomics, read on the request path without locks; the pool decides when a
//! breaker opens (it knows the other endpoints and the failure ratio) and turns transitions
//! into logs and metrics.

use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};
use std::sync::Arc;
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
    /// Failures seen by real traffic in a row.
    failures: AtomicU32,
    /// `now_ms()` until which the breaker is open.
    ejected_until_ms: AtomicU64,
    /// Times the breaker opened since it was last closed: 0 while closed, and otherwise
    /// what doubles the next opening.
    openings: AtomicU32,
    /// Probe requests in flight while half-open.
    probes: AtomicU32,
    /// The breaker is out because the endpoint refused a connection (nothing listened).
    refused: AtomicBool,
    /// Attempts at this endpoint now (each holds an [`Attempt`]), for the status page.
    in_flight: AtomicU32,
    /// Moving average of its time to answer (to the response header), in microseconds;
    /// 0 until the first answer. For the status page.
    answer_micros: AtomicU64,
}

/// One attempt at an endpoint, counted in its `in_flight` until dropped (however the
/// request ends).
pub(crate) struct Attempt(Arc<Endpoint>);

impl Attempt {
    pub(crate) fn new(endpoint: &Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Relaxed);
        Self(Arc::clone(endpoint))
    }

    /// The endpoint answered after `took` (through the guard: no lookup of the endpoint).
    pub(crate) fn observe_answer(&self, took: Duration) {
        self.0.observe_answer(took);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A breaker's state, as `/metrics` shows it (`gateway_breaker_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// What the breaker says to one request.
pub(crate) enum Admit {
    Yes,
    /// Half-open: this request is one of the probes; the guard frees its place.
    Probe(Probe),
    No,
}

/// A half-open endpoint's probe in flight; dropping it (however the request ends) frees
/// its place.
pub(crate) struct Probe(Arc<Endpoint>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.probes.fetch_sub(1, Relaxed);
    }
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
            openings: AtomicU32::new(0),
            probes: AtomicU32::new(0),
            refused: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            answer_micros: AtomicU64::new(0),
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
            openings: AtomicU32::new(self.openings.load(Relaxed)),
            probes: AtomicU32::new(0),
            refused: AtomicBool::new(self.refused.load(Relaxed)),
            // Attempts under the old pool stay counted there; they end soon.
            in_flight: AtomicU32::new(0),
            answer_micros: AtomicU64::new(self.answer_micros.load(Relaxed)),
        }
    }

    /// Fold one time to answer into the moving average (weight 1/8: about the last dozen
    /// answers). Racing updates may lose one sample; the average is for people to read.
    pub(crate) fn observe_answer(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.answer_micros.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.answer_micros.store(new.max(1), Relaxed);
    }

    /// The moving average of its time to answer, once it has answered.
    pub(crate) fn answer_time(&self) -> Option<Duration> {
        match self.answer_micros.load(Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    /// The active verdict: `passing`, `failing`, or `unknown` before the first check.
    pub(crate) fn verdict(&self) -> &'static str {
        match self.active.load(Relaxed) {
            HEALTHY => "passing",
            UNHEALTHY => "failing",
            _ => "unknown",
        }
    }

    /// Whether the active verdict is healthy.
    pub(crate) fn active_healthy(&self) -> bool {
        self.active.load(Relaxed) == HEALTHY
    }

    /// Whether its breaker is open at `now` (a `now_ms()` value).
    pub(crate) fn ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) > now
    }

    /// The `now_ms()` at which its breaker's opening ends (in the past when it is not open).
    pub(crate) fn ejected_until(&self) -> u64 {
        self.ejected_until_ms.load(Relaxed)
    }

    pub(crate) fn breaker(&self, now: u64) -> BreakerState {
        if self.ejected(now) {
            BreakerState::Open
        } else if self.openings.load(Relaxed) > 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        }
    }

    /// Whether it may take traffic at `now`, leaving aside half-open probe places.
    pub(crate) fn routable(&self, now: u64) -> bool {
        self.active_healthy() && !self.ejected(now)
    }

    /// Whether a request may go to it at `now`: its verdict is healthy and its breaker is
    /// closed, or half-open with a probe place free (which the request then holds).
    pub(crate) fn admit(self: &Arc<Self>, now: u64, max_probes: u32) -> Admit {
        if !self.active_healthy() {
            return Admit::No;
        }
        match self.breaker(now) {
            BreakerState::Closed => Admit::Yes,
            BreakerState::Open => Admit::No,
            BreakerState::HalfOpen => {
                if self.probes.fetch_add(1, Relaxed) < max_probes {
                    Admit::Probe(Probe(Arc::clone(self)))
                } else {
                    self.probes.fetch_sub(1, Relaxed);
                    Admit::No
                }
            }
        }
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

    /// A failure seen by traffic; returns the failures in a row so far.
    pub(crate) fn record_failure(&self) -> u32 {
        self.failures.fetch_add(1, Relaxed) + 1
    }

    /// Open the breaker at `now`: for `open_for`, doubled for each opening since it was last
    /// closed, at most `max_open_for`. `refused`: because nothing listened.
    pub(crate) fn eject(&self, open_for: Duration, max_open_for: Duration, now: u64) -> Duration {
        self.refused.store(false, Relaxed);
        self.failures.store(0, Relaxed);
        let openings = self.openings.fetch_add(1, Relaxed);
        let length = open_for
            .saturating_mul(1 << openings.min(16))
            .min(max_open_for);
        let ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until_ms.store(now.saturating_add(ms), Relaxed);
        length
    }

    /// Note that the breaker just opened because the endpoint refused a connection.
    pub(crate) fn mark_refused(&self) {
        self.refused.store(true, Relaxed);
    }

    /// A passing active check on an endpoint whose breaker is out only because it refused a
    /// connection: it listens again (a replica that restarted), so the breaker closes.
    /// Returns whether it closed. A breaker opened by failed requests stays: a health
    /// endpoint that answers says nothing about the requests that failed.
    pub(crate) fn listening_again(&self) -> bool {
        if !self.refused.swap(false, Relaxed) {
            return false;
        }
        self.failures.store(0, Relaxed);
        self.ejected_until_ms.store(0, Relaxed);
        self.openings.swap(0, Relaxed) != 0
    }

    /// An answer that is not a failure: the failure streak ends, and a half-open breaker
    /// closes. Returns whether it closed.
    pub(crate) fn record_success(&self, now: u64) -> bool {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.openings.load(Relaxed) != 0 && !self.ejected(now) {
            self.refused.store(false, Relaxed);
            return self.openings.swap(0, Relaxed) != 0;
        }
        false
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
    fn an_open_breaker_turns_half_open_and_a_probe_decides() {
        // Arrange: opened at t=1000 for 500 ms.
        let e = Arc::new(endpoint(false));
        let second = Duration::from_millis(500);
        assert_eq!(e.record_failure(), 1);
        assert_eq!(e.record_failure(), 2);
        e.eject(second, Duration::from_secs(60), 1000);

        // Act + Assert: open, then one probe at a time, then closed by a success.
        assert_eq!(e.breaker(1499), BreakerState::Open);
        assert!(matches!(e.admit(1499, 1), Admit::No));
        assert_eq!(e.breaker(1500), BreakerState::HalfOpen);
        let probe = e.admit(1500, 1);
        assert!(matches!(probe, Admit::Probe(_)));
        assert!(matches!(e.admit(1500, 1), Admit::No), "one probe at a time");
        drop(probe);
        assert!(
            matches!(e.admit(1500, 1), Admit::Probe(_)),
            "its place is free again"
        );
        assert!(e.record_success(1600));
        assert_eq!(e.breaker(1600), BreakerState::Closed);
        assert!(matches!(e.admit(1600, 1), Admit::Yes));
    }

    #[test]
    fn each_opening_in_a_row_lasts_twice_as_long_up_to_the_maximum() {
        let e = endpoint(false);
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(3);

        assert_eq!(e.eject(base, max, 0), Duration::from_secs(1));
        assert_eq!(
            e.eject(base, max, 0),
            Duration::from_secs(2),
            "a failed probe"
        );
        assert_eq!(e.eject(base, max, 0), Duration::from_secs(3));
        assert!(e.record_success(5_000), "closed");
        assert_eq!(
            e.eject(base, max, 5_000),
            Duration::from_secs(1),
            "counted afresh"
        );
    }

    #[test]
    fn a_passing_check_closes_only_a_breaker_opened_by_a_refusal() {
        let refused = endpoint(false);
        refused.eject(Duration::from_secs(60), Duration::from_secs(60), 0);
        refused.mark_refused();
        let failing = endpoint(false);
        failing.eject(Duration::from_secs(60), Duration::from_secs(60), 0);

        assert!(refused.listening_again());
        assert_eq!(refused.breaker(1), BreakerState::Closed);
        assert!(!failing.listening_again());
        assert_eq!(failing.breaker(1), BreakerState::Open);
    }

    #[test]
    fn a_success_ends_the_failure_streak() {
        let e = endpoint(false);
        e.record_failure();
        e.record_failure();
        assert!(!e.record_success(0), "it was not open");
        assert_eq!(e.record_failure(), 1);
    }

    #[test]
    fn a_successor_inherits_verdict_and_ejection_unless_it_has_no_checks() {
        let e = endpoint(true);
        e.observe_check(false, 1, 1);
        e.eject(Duration::from_secs(10), Duration::from_secs(10), 0);

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
        assert_eq!(unchecked.breaker(10_000), BreakerState::HalfOpen);
    }
}
