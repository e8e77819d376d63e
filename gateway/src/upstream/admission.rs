//! `max_in_flight` of a pool: at most that many requests proxied at once; beyond it a
//! request waits in a bounded queue for at most the queue's timeout, first come first
//! served, and is otherwise refused (503 with `Retry-After`, by the caller).
//!
//! A tokio `Semaphore` rather than `pingora_limits::Inflight`: `Inflight` counts, but cannot
//! make a request wait for a place nor hand a freed place to the oldest waiter, and without
//! that hand-off a newcomer takes the place while queued requests time out, so the latency
//! of admitted requests is no longer bounded by the queue's timeout.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Admission as Settings;

pub(crate) struct Admission {
    pub(crate) settings: Settings,
    places: Arc<Semaphore>,
    queued: AtomicUsize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    QueueFull,
    QueueTimeout,
}

impl Admission {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            places: Arc::new(Semaphore::new(settings.max_in_flight)),
            queued: AtomicUsize::new(0),
            settings,
        }
    }

    /// A place for one request, held until the permit drops.
    pub(crate) async fn admit(&self) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = Arc::clone(&self.places).try_acquire_owned() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, Relaxed) >= self.settings.queue {
            self.queued.fetch_sub(1, Relaxed);
            return Err(Refused::QueueFull);
        }
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

    /// Requests proxied now.
    pub(crate) fn in_flight(&self) -> usize {
        self.settings.max_in_flight - self.places.available_permits()
    }

    /// Requests waiting now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn admission(max: usize, queue: usize) -> Admission {
        Admission::new(Settings {
            max_in_flight: max,
            queue,
            queue_timeout: Duration::from_millis(50),
        })
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
        drop(first);
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
        drop(first);
        assert!(waiter.await.expect("joins"));
    }
}
