//! `max_in_flight` of a pool: at most that many requests proxied at once; beyond it a
//! request waits in a bounded queue for at most the queue's timeout, first come first
//! served, and is otherwise refused (503 with `Retry-After`, by the caller). With
//! `adaptive_limit`, the limit itself follows the pool's latency (AIMD): each answer slower
//! than the target cuts it by a tenth (at most once per target period, so one burst of slow
//! answers counts once), each timely answer while the limit is in use adds `1/limit`.
//!
//! A tokio `Semaphore` rather than `pingora_limits::Inflight`: `Inflight` counts, but cannot
//! make a request wait for a place nor hand a freed place to the oldest waiter, and without
//! that hand-off a newcomer takes the place while queued requests time out, so the latency
//! of admitted requests is no longer bounded by the queue's timeout.
//!
//! Lowering the limit takes free places out of the semaphore at once; places held by
//! requests are owed (`debt`) and taken out as those requests end.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use pingora_prometheus::prometheus::IntGauge;

use super::health::now_ms;
use crate::config::Admission as Settings;
use crate::metrics;

pub(crate) struct Admission {
    pub(crate) settings: Settings,
    places: Arc<Semaphore>,
    queued: AtomicUsize,
    /// The limit now: `max_in_flight`, or what the adaptive limit made of it.
    limit: AtomicUsize,
    /// Places to take out of circulation as the requests holding them end.
    debt: AtomicUsize,
    /// Fractions of a place gained by timely answers, until they make a whole one.
    growth: Mutex<f64>,
    /// `now_ms()` of the last cut; `NEVER` before the first.
    last_cut_ms: AtomicU64,
    /// `gateway_pool_requests` of this pool: in flight, queued, the limit.
    gauges: [IntGauge; 3],
}

const NEVER: u64 = u64::MAX;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    QueueFull,
    QueueTimeout,
}

impl Admission {
    /// The admission of the pool named `pool`.
    pub(crate) fn new(settings: Settings, pool: &str) -> Self {
        let gauge = |state| metrics::POOL_IN_FLIGHT.with_label_values(&[pool, state]);
        Self {
            gauges: [gauge("in_flight"), gauge("queued"), gauge("limit")],
            places: Arc::new(Semaphore::new(settings.max_in_flight)),
            queued: AtomicUsize::new(0),
            limit: AtomicUsize::new(settings.max_in_flight),
            debt: AtomicUsize::new(0),
            growth: Mutex::new(0.0),
            last_cut_ms: AtomicU64::new(NEVER),
            settings,
        }
    }

    /// A place for one request, held until [`Admission::release`].
    pub(crate) async fn admit(&self) -> Result<OwnedSemaphorePermit, Refused> {
        let admitted = self.wait_for_place().await;
        self.publish();
        admitted
    }

    async fn wait_for_place(&self) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = Arc::clone(&self.places).try_acquire_owned() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, Relaxed) >= self.settings.queue {
            self.queued.fetch_sub(1, Relaxed);
            return Err(Refused::QueueFull);
        }
        // The queue's length shows while requests wait, not only when they leave.
        self.publish();
        let waited = tokio::time::timeout(
            self.settings.queue_timeout,
            Arc::clone(&self.places).acquire_owned(),
        )
        .await;
        self.queued.fetch_sub(1, Relaxed);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a timeout is the only way to get here.
            Ok(Err(_)) | Err(_) => Err(Refused::QueueTimeout),
        }
    }

    /// A request ends: its place goes back, unless a cut of the limit is owed one.
    pub(crate) fn release(&self, permit: OwnedSemaphorePermit) {
        let owed = self
            .debt
            .fetch_update(Relaxed, Relaxed, |d| d.checked_sub(1))
            .is_ok();
        if owed {
            permit.forget();
        } else {
            drop(permit);
        }
        self.publish();
    }

    /// Set this pool's `gateway_pool_requests` to what holds now.
    fn publish(&self) {
        let [in_flight, queued, limit] = &self.gauges;
        let set = |gauge: &IntGauge, value: usize| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(in_flight, self.in_flight());
        set(queued, self.queued());
        set(limit, self.limit());
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    /// Requests proxied now.
    pub(crate) fn in_flight(&self) -> usize {
        (self.limit() + self.debt.load(Relaxed)).saturating_sub(self.places.available_permits())
    }

    /// Requests waiting now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// With `adaptive_limit`: one answer took `latency`; `overloaded` when it was a timeout
    /// or the upstream shedding load.
    pub(crate) fn observe(&self, latency: Duration, overloaded: bool) {
        let Some(adaptive) = self.settings.adaptive else {
            return;
        };
        if overloaded || latency > adaptive.latency {
            let now = now_ms();
            let last = self.last_cut_ms.load(Relaxed);
            let period = u64::try_from(adaptive.latency.as_millis()).unwrap_or(u64::MAX);
            if (last != NEVER && now.saturating_sub(last) < period)
                || self
                    .last_cut_ms
                    .compare_exchange(last, now, Relaxed, Relaxed)
                    .is_err()
            {
                return;
            }
            // A tenth, at least one place, never below the floor.
            let old = self.limit();
            let new = (old - (old / 10).max(1)).max(adaptive.min_in_flight);
            self.cut(old.saturating_sub(new));
            return;
        }
        if self.in_flight() * 2 < self.limit() {
            // The limit is not what holds traffic back; timely answers say nothing of it.
            return;
        }
        let mut growth = self.growth.lock().unwrap_or_else(|p| p.into_inner());
        #[allow(clippy::cast_precision_loss)]
        {
            *growth += 1.0 / self.limit().max(1) as f64;
        }
        if *growth >= 1.0 {
            *growth -= 1.0;
            drop(growth);
            self.grow();
        }
    }

    /// Lower the limit by `by` places.
    fn cut(&self, by: usize) {
        if by == 0 {
            return;
        }
        self.limit.fetch_sub(by, Relaxed);
        let forgotten = self.places.forget_permits(by);
        self.debt.fetch_add(by - forgotten, Relaxed);
        self.publish();
    }

    /// Raise the limit by one place, up to `max_in_flight`.
    fn grow(&self) {
        let raised = self
            .limit
            .fetch_update(Relaxed, Relaxed, |l| {
                (l < self.settings.max_in_flight).then_some(l + 1)
            })
            .is_ok();
        if !raised {
            return;
        }
        // A place still owed to a cut is simply no longer owed; otherwise one is added.
        let forgiven = self
            .debt
            .fetch_update(Relaxed, Relaxed, |d| d.checked_sub(1))
            .is_ok();
        if !forgiven {
            self.places.add_permits(1);
        }
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdaptiveLimit;

    fn admission(max: usize, queue: usize) -> Admission {
        Admission::new(
            Settings {
                max_in_flight: max,
                queue,
                queue_timeout: Duration::from_millis(50),
                adaptive: None,
            },
            "unit-test",
        )
    }

    #[tokio::test]
    async fn beyond_the_limit_requests_queue_then_time_out_or_find_the_queue_full() {
        let a = admission(1, 1);
        let first = a.admit().await.expect("a free place");
        assert_eq!(a.in_flight(), 1);

        let (queued, full) = tokio::join!(a.admit(), async {
            tokio::task::yield_now().await;
            a.admit().await
        });

        assert_eq!(queued.err(), Some(Refused::QueueTimeout));
        assert_eq!(full.err(), Some(Refused::QueueFull));
        a.release(first);
        assert!(a.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_freed_place_goes_to_the_waiting_request() {
        let a = Arc::new(admission(1, 1));
        let first = a.admit().await.expect("a free place");
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.admit().await.is_ok() }
        });
        // The waiter is queued once `queued` says so; then the place is freed.
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        a.release(first);
        assert!(waiter.await.expect("joins"));
    }

    #[tokio::test]
    async fn slow_answers_cut_the_limit_and_timely_ones_grow_it_back() {
        // Arrange: 20 places, at least 4, a 100 ms target; 10 requests hold places.
        let a = Admission::new(
            Settings {
                max_in_flight: 20,
                queue: 0,
                queue_timeout: Duration::from_millis(50),
                adaptive: Some(AdaptiveLimit {
                    min_in_flight: 4,
                    latency: Duration::from_millis(100),
                }),
            },
            "unit-test-adaptive",
        );
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(a.admit().await.unwrap());
        }

        // Act 1: a burst of slow answers counts as one cut.
        for _ in 0..5 {
            a.observe(Duration::from_millis(500), false);
        }
        assert_eq!(a.limit(), 18);
        // Cuts down to the floor, owing the places still held.
        for _ in 0..40 {
            a.last_cut_ms.store(NEVER, Relaxed);
            a.observe(Duration::ZERO, true);
        }
        assert_eq!(a.limit(), 4);
        assert_eq!(
            a.in_flight(),
            10,
            "the ten requests still hold their places"
        );
        assert!(
            a.admit().await.is_err(),
            "no place while over the new limit"
        );
        for permit in held.drain(..7) {
            a.release(permit);
        }
        assert_eq!(a.in_flight(), 3);
        held.push(
            a.admit()
                .await
                .expect("one place free under the limit of 4"),
        );

        // Act 2: timely answers while the limit is in use raise it again, one place per
        // `limit` answers.
        for _ in 0..4 {
            a.observe(Duration::from_millis(10), false);
        }

        // Assert
        assert_eq!(a.limit(), 5);
        assert!(a.admit().await.is_ok(), "the new place is usable");
    }
}
