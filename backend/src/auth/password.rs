//! Argon2id password hashes (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane), run
//! with bounded concurrency.
//!
//! Each hash or verification costs tens of milliseconds of one core and 19 MiB by design, so
//! unbounded, a flood of logins or registrations would take every core and a lot of memory.
//! [`Hashing`] caps how many run at once per replica (default: one per core), keeps a short
//! bounded queue behind that, and answers `503` with `Retry-After` at once when the queue is
//! full. Registrations may hold at most half of the permits, so logins of existing users keep
//! working through a registration flood.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use prometheus::IntCounterVec;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::domain::Password;
use crate::error::ApiError;

/// How long a request waits in the queue for a hashing slot before it gets 503.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// One class of callers waiting for a semaphore, with a bound on how many may wait.
struct Gate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Decrements a gate's waiting count however the wait ends (acquired, timed out, cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    fn new(permits: usize, max_waiting: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A permit now, or after a bounded wait; `None` when the queue is full or the wait ends.
    async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let _waiting = Waiting(&self.waiting);
        tokio::time::timeout(MAX_WAIT, Arc::clone(&self.permits).acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// The replica's password-hashing capacity.
pub struct Hashing {
    /// Every hash and verification holds one of these while it runs.
    all: Gate,
    /// Registrations hold one of these too: at most half of `all`, so logins always have
    /// the other half.
    registrations: Gate,
    /// `password_hashes_total{op, outcome}`: hashes and verifications run (`done`) or refused
    /// because the replica was saturated (`busy`).
    counter: IntCounterVec,
}

impl Hashing {
    /// `concurrency` hashes at once (at least 1), and a queue of four times that.
    pub fn new(concurrency: usize, counter: IntCounterVec) -> Self {
        let concurrency = concurrency.max(1);
        let registrations = concurrency.div_ceil(2);
        Self {
            all: Gate::new(concurrency, concurrency * 4),
            registrations: Gate::new(registrations, registrations * 4),
            counter,
        }
    }

    fn busy(&self, op: &str) -> ApiError {
        self.counter.with_label_values(&[op, "busy"]).inc();
        ApiError::Busy("too many password checks in progress")
    }

    /// Hash a new password (registration).
    pub async fn hash(&self, password: Password) -> Result<String, ApiError> {
        let Some(registration) = self.registrations.enter().await else {
            return Err(self.busy("hash"));
        };
        let Some(permit) = self.all.enter().await else {
            return Err(self.busy("hash"));
        };
        let hashed = hash(password, (permit, registration)).await?;
        self.counter.with_label_values(&["hash", "done"]).inc();
        Ok(hashed)
    }

    /// Check a password against a stored hash (login); see [`verify`].
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, ApiError> {
        let Some(permit) = self.all.enter().await else {
            return Err(self.busy("verify"));
        };
        let valid = verify(password, stored, permit).await?;
        self.counter.with_label_values(&["verify", "done"]).inc();
        Ok(valid)
    }
}

/// Hash on a blocking thread, holding `permits` until the hash is done (even if the request
/// that asked is dropped meanwhile: the work cannot be cancelled, so it must stay counted).
async fn hash<P: Send + 'static>(password: Password, permits: P) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let _permits = permits;
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("Failed to hash a password: {e}"))
    })
    .await
    .context("Failed to join the hashing task")?
}

/// Check `password` against `stored`. With no stored hash (unknown user) a dummy hash is
/// checked anyway, so the answer takes as long whether the user exists or not.
async fn verify(
    password: Password,
    stored: Option<String>,
    permit: OwnedSemaphorePermit,
) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let dummy = dummy_hash();
        let known = stored.is_some();
        let text = stored.unwrap_or(dummy);
        let parsed = PasswordHash::new(&text)
            .map_err(|e| anyhow::anyhow!("Failed to parse a stored hash: {e}"))?;
        let matches = Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
    .context("Failed to join the verification task")?
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"not a real password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("t", "t"), &["op", "outcome"]).unwrap()
    }

    #[tokio::test]
    async fn a_full_gate_refuses_at_once_instead_of_queueing_without_bound() {
        // Arrange: one permit, taken, and a queue of one, taken by a waiter.
        let gate = Arc::new(Gate::new(1, 1));
        let held = gate.enter().await.unwrap();
        let waiter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.enter().await.is_some() })
        };
        while gate.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }

        // Act
        let refused = gate.enter().await;

        // Assert
        assert!(refused.is_none(), "the queue is full");
        drop(held);
        assert!(waiter.await.unwrap(), "the queued waiter gets the permit");
        assert_eq!(gate.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn registrations_get_at_most_half_of_the_permits() {
        let hashing = Hashing::new(4, counter());
        let mut held = Vec::new();
        while let Ok(p) = Arc::clone(&hashing.registrations.permits).try_acquire_owned() {
            held.push(p);
        }
        assert_eq!(held.len(), 2);
        assert_eq!(hashing.all.permits.available_permits(), 4);
    }
}
