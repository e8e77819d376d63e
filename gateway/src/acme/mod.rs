//! Certificates from an ACME CA (RFC 8555, the Let's Encrypt way): `tls.acme` names the CA,
//! the domains and a storage directory; this component obtains one certificate for the
//! domains with HTTP-01 challenges (answered by the HTTP listener through [`Acme::answer`]),
//! keeps it in storage, serves it through the TLS listener's certificate choice, and renews
//! it in the background `renew_before` its expiry. A failed order is logged and counted
//! (`gateway_acme_orders_total{result="error"}`), retried with backoff, and the certificate
//! already loaded keeps serving.
//!
//! Replicas may share the storage directory: a lock file makes one of them order at a time,
//! challenge answers are published in storage so whichever replica the CA reaches answers,
//! and every replica picks up the certificate another one stored. See `storage`.

mod order;
mod storage;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use pingora::tls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::config::{load_certificate, AcmeConfig, Certificate};
use crate::metrics;
pub(crate) use storage::write_private;
use storage::Storage;

/// How often storage is looked at (a certificate stored by a replica, a renewal due).
const TICK: Duration = Duration::from_secs(1);
/// After a certificate was obtained, the same names are not ordered again for this long,
/// whatever `renew_before` says: CAs limit duplicate certificates (Let's Encrypt: 5 a week).
const REORDER_AFTER: Duration = Duration::from_secs(3600);
/// After a failed order: one minute, doubling up to an hour.
const FIRST_RETRY: Duration = Duration::from_secs(60);
const LAST_RETRY: Duration = Duration::from_secs(3600);
/// How long the first order waits for this gateway's HTTP listener to accept.
const LISTENER_WAIT: Duration = Duration::from_secs(10);

/// HTTP-01 answers of the orders this process runs: token to key authorization.
#[derive(Default)]
pub(crate) struct Challenges(Mutex<HashMap<String, String>>);

impl Challenges {
    fn insert(&self, token: String, answer: String) {
        self.0.lock().expect("not poisoned").insert(token, answer);
    }

    fn remove(&self, token: &str) {
        self.0.lock().expect("not poisoned").remove(token);
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0.lock().expect("not poisoned").get(token).cloned()
    }
}

/// The ACME certificate of one storage directory, and the task that keeps it current.
pub(crate) struct Acme {
    storage: Storage,
    config: ArcSwap<AcmeConfig>,
    /// Where the CA's validation requests arrive: the HTTP listener.
    http_listener: SocketAddr,
    served: ArcSwapOption<Certificate>,
    challenges: Challenges,
    retired: CancellationToken,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("storage", &self.storage.dir())
            .field("domains", &self.config.load().domains)
            .finish_non_exhaustive()
    }
}

impl Acme {
    pub(crate) fn new(config: AcmeConfig, http_listener: SocketAddr) -> Self {
        Self {
            storage: Storage::new(&config.storage),
            config: ArcSwap::from_pointee(config),
            http_listener,
            served: ArcSwapOption::empty(),
            challenges: Challenges::default(),
            retired: CancellationToken::new(),
        }
    }

    /// Whether a reload with `config` can keep this one (and its certificate and lock).
    pub(crate) fn serves(&self, config: &AcmeConfig) -> bool {
        self.storage.dir() == config.storage
    }

    /// A reload kept this component: `config`'s domains, CA and timing apply from now on.
    pub(crate) fn set_config(&self, config: &AcmeConfig) {
        if **self.config.load() != *config {
            self.config.store(Arc::new(config.clone()));
        }
    }

    /// Stop the background task: the reload that dropped this component is live.
    pub(crate) fn retire(&self) {
        self.retired.cancel();
    }

    /// The certificate for `name` (lowercase), when the ACME certificate has that name.
    pub(crate) fn certificate_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let served = self.served.load();
        let cert = served.as_ref()?;
        cert.names
            .iter()
            .any(|n| n == name)
            .then(|| Arc::clone(&cert.key))
    }

    /// The ACME certificate whatever the name, for clients no other certificate answers.
    pub(crate) fn any_certificate(&self) -> Option<Arc<CertifiedKey>> {
        self.served.load().as_ref().map(|c| Arc::clone(&c.key))
    }

    /// The key authorization for an HTTP-01 `token`: this process's own orders first, then
    /// those a replica sharing the storage published.
    pub(crate) async fn answer(&self, token: &str) -> Option<String> {
        if !storage::is_token(token) {
            return None;
        }
        match self.challenges.get(token) {
            Some(answer) => Some(answer),
            None => self.storage.read_challenge(token).await,
        }
    }

    /// The certificate served now, if one was obtained.
    pub(crate) fn served_certificate(&self) -> Option<Arc<Certificate>> {
        self.served.load_full()
    }

    /// Set the expiry gauge of the certificate served (a reload resets the gauges).
    pub(crate) fn publish_expiry(&self) {
        if let Some(cert) = self.served.load().as_ref() {
            let name = cert.names.first().map_or("", String::as_str);
            metrics::TLS_CERTIFICATE_EXPIRY
                .with_label_values(&[name, &cert.cert_file.display().to_string()])
                .set(cert.not_after);
        }
    }

    /// Keep the certificate current until `stop` (shutdown) or retirement.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut schedule = Schedule::default();
        let mut stamp = None;
        loop {
            self.tick(&mut schedule, &mut stamp).await;
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = stop.cancelled() => return,
                () = self.retired.cancelled() => return,
            }
        }
    }

    async fn tick(&self, schedule: &mut Schedule, stamp: &mut Option<Stamp>) {
        let config = self.config.load_full();
        self.pick_up(&config, stamp);
        let now = Instant::now();
        schedule.follow(&config.domains);
        if !self.due(&config) || !schedule.may_order(now) {
            return;
        }
        // One replica orders at a time; the others pick up what it stores.
        let _lock = match self.storage.try_lock() {
            Ok(Some(lock)) => lock,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(dir = %self.storage.dir().display(), error = %e, "ACME storage cannot be locked; the current certificate keeps serving");
                metrics::ACME_ORDERS.with_label_values(&["error"]).inc();
                schedule.failed(now);
                return;
            }
        };
        // A replica may have renewed while this one waited for the lock.
        self.pick_up(&config, stamp);
        if !self.due(&config) {
            return;
        }
        if !schedule.listener_seen {
            schedule.listener_seen = wait_for_listener(self.http_listener).await;
        }
        tracing::info!(domains = ?config.domains, directory = %config.directory_url, "ACME: ordering a certificate");
        match self.order(&config, stamp).await {
            Ok(not_after) => {
                metrics::ACME_ORDERS.with_label_values(&["ok"]).inc();
                schedule.succeeded(now);
                tracing::info!(domains = ?config.domains, not_after, "ACME: certificate obtained and serving");
                if self.due(&config) {
                    tracing::warn!(renew_before = %humantime::format_duration(config.renew_before), "ACME: renew_before is longer than the certificate's remaining life; the next order waits an hour");
                }
            }
            Err(e) => {
                metrics::ACME_ORDERS.with_label_values(&["error"]).inc();
                let retry = schedule.failed(now);
                tracing::error!(domains = ?config.domains, error = %e, retry_in = %humantime::format_duration(retry), "ACME: order failed; the current certificate keeps serving");
            }
        }
    }

    /// Order, store and serve a certificate; returns its notAfter.
    async fn order(
        &self,
        config: &AcmeConfig,
        stamp: &mut Option<Stamp>,
    ) -> Result<i64, order::OrderError> {
        let issued = order::obtain(config, &self.storage, &self.challenges).await?;
        let paths = self.storage.certificate(config);
        storage::write_private(&paths.key, issued.key_pem.as_bytes())?;
        storage::write_private(&paths.cert, issued.chain_pem.as_bytes())?;
        let cert = load_certificate(&paths.cert, &paths.key).map_err(order::OrderError::Refused)?;
        let not_after = cert.not_after;
        *stamp = Stamp::of(&paths.cert, &paths.key);
        self.serve(cert);
        Ok(not_after)
    }

    /// Serve the stored certificate if its files changed since `stamp` (first start, or a
    /// replica renewed it). A pair caught between the key's rename and the chain's does not
    /// load; the next tick tries again.
    fn pick_up(&self, config: &AcmeConfig, stamp: &mut Option<Stamp>) {
        let paths = self.storage.certificate(config);
        let now = Stamp::of(&paths.cert, &paths.key);
        if now.is_none() || now == *stamp {
            return;
        }
        match load_certificate(&paths.cert, &paths.key) {
            Ok(cert) => {
                *stamp = now;
                let known = self
                    .served
                    .load()
                    .as_ref()
                    .is_some_and(|c| *c.as_ref() == cert);
                if !known {
                    tracing::info!(file = %paths.cert.display(), names = ?cert.names, not_after = cert.not_after, "ACME: serving the stored certificate");
                    self.serve(cert);
                }
            }
            Err(e) => tracing::debug!(error = %e, "ACME: stored certificate not readable yet"),
        }
    }

    fn serve(&self, cert: Certificate) {
        self.served.store(Some(Arc::new(cert)));
        self.publish_expiry();
    }

    /// Whether the certificate served must be replaced: none yet, it lacks a domain, or it
    /// expires within `renew_before`.
    fn due(&self, config: &AcmeConfig) -> bool {
        let served = self.served.load();
        let Some(cert) = served.as_ref() else {
            return true;
        };
        let covers = config.domains.iter().all(|d| cert.names.contains(d));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let renew_at = cert
            .not_after
            .saturating_sub(i64::try_from(config.renew_before.as_secs()).unwrap_or(i64::MAX));
        !covers || i64::try_from(now.as_secs()).unwrap_or(i64::MAX) >= renew_at
    }
}

/// When this process may order next, for the domains it follows.
#[derive(Default)]
struct Schedule {
    domains: Vec<String>,
    not_before: Option<Instant>,
    failures: u32,
    /// The HTTP listener accepted once: later orders need not wait for it.
    listener_seen: bool,
}

impl Schedule {
    /// Other domains (a reload) start afresh: no wait left over from the old ones.
    fn follow(&mut self, domains: &[String]) {
        if self.domains != domains {
            self.domains = domains.to_vec();
            self.not_before = None;
            self.failures = 0;
        }
    }

    fn may_order(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    fn succeeded(&mut self, now: Instant) {
        self.failures = 0;
        self.not_before = Some(now + REORDER_AFTER);
    }

    /// Back off after a failure; returns the wait.
    fn failed(&mut self, now: Instant) -> Duration {
        let wait = FIRST_RETRY
            .saturating_mul(1 << self.failures.min(10))
            .min(LAST_RETRY);
        self.failures += 1;
        self.not_before = Some(now + wait);
        wait
    }
}

/// What the certificate and key files look like (modification time and length): a change
/// means a replica (or an operator) replaced them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([(SystemTime, u64); 2]);

impl Stamp {
    fn of(cert: &std::path::Path, key: &std::path::Path) -> Option<Self> {
        let one = |p: &std::path::Path| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        Some(Self([one(cert)?, one(key)?]))
    }
}

/// Wait (bounded) until the HTTP listener accepts, so the CA's first validation request
/// finds it; the gateway starts its listeners and this task together.
async fn wait_for_listener(addr: SocketAddr) -> bool {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        other => other,
    };
    let deadline = Instant::now() + LISTENER_WAIT;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(target).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(%addr, "ACME: the HTTP listener does not accept yet; ordering anyway");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_from_a_minute_to_an_hour() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.follow(&["a.example".to_owned()]);
        let waits: Vec<u64> = (0..8).map(|_| s.failed(now).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert!(!s.may_order(now));
        assert!(s.may_order(now + LAST_RETRY));
    }

    #[test]
    fn new_domains_order_at_once() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.follow(&["a.example".to_owned()]);
        s.succeeded(now);
        assert!(!s.may_order(now), "the same names wait after a success");
        s.follow(&["a.example".to_owned()]);
        assert!(!s.may_order(now));
        s.follow(&["a.example".to_owned(), "b.example".to_owned()]);
        assert!(s.may_order(now));
    }
}
