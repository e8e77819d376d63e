//! Fetching JWKS documents and installing their keys in a [`Verifier`]: at start-up
//! (retrying each second until it works), every `refresh_interval`, and when a token names
//! an unknown `kid` (one fetch at a time, at most one per `min_refresh_interval` once keys
//! have loaded). A failed
//! fetch, or a document with no usable key, keeps the last good keys.
//!
//! The refresher reaches a pool only through [`EndpointPicker`], so this module knows
//! nothing of pools; the runtime hands it one and points it at a successor after a reload.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::keys::MAX_JWKS_BYTES;
use super::{parse_jwks, Key, Verifier};
use crate::config::{JwksConfig, JwksSource};
use crate::metrics;

/// How long a request waits for the first keys of a gateway that has none yet: one DNS
/// resolution and one health check of the JWKS pool, with room to spare.
const FIRST_KEYS_WAIT: Duration = Duration::from_secs(3);

/// Where a JWKS fetch goes when the source is a pool: any endpoint that takes traffic.
pub(crate) trait EndpointPicker: Send + Sync {
    fn pick(&self) -> Option<SocketAddr>;
}

pub(crate) struct JwksRefresher {
    config: JwksConfig,
    /// The verifier the fetched keys go to.
    verifier: Arc<Verifier>,
    client: reqwest::Client,
    /// For `JwksSource::Pool`: who picks the endpoint (a reload may point at a successor).
    picker: Mutex<Option<Arc<dyn EndpointPicker>>>,
    /// Serializes fetches (single flight) and remembers when the last one started.
    fetch_gate: tokio::sync::Mutex<Option<Instant>>,
    /// Cancelled when a reload replaces this refresher, to end its timer.
    retired: CancellationToken,
}

impl JwksRefresher {
    pub(crate) fn new(
        config: JwksConfig,
        verifier: Arc<Verifier>,
        picker: Option<Arc<dyn EndpointPicker>>,
    ) -> Self {
        // Building a client with only a timeout does not fail (no TLS backend to load).
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        Self {
            config,
            verifier,
            client,
            picker: Mutex::new(picker),
            fetch_gate: tokio::sync::Mutex::new(None),
            retired: CancellationToken::new(),
        }
    }

    /// Fetch from `picker`'s endpoints from now on.
    pub(crate) fn set_picker(&self, picker: Option<Arc<dyn EndpointPicker>>) {
        *self.picker.lock().unwrap_or_else(|p| p.into_inner()) = picker;
    }

    /// End the refresh timer (a reload replaced this refresher).
    pub(crate) fn retire(&self) {
        self.retired.cancel();
    }

    /// Fetch now. With `on_demand` (a token named an unknown `kid`), skip if a fetch started
    /// within `min_refresh_interval`, unless no keys have loaded yet: then the request that
    /// asks may be the first the JWKS pool can answer, and it should not fail for the start-up
    /// loop's last miss. Concurrent callers wait for the fetch in progress; once it loaded
    /// keys, they fetch no more.
    pub(crate) async fn refresh(&self, on_demand: bool) -> bool {
        let mut last = self.fetch_gate.lock().await;
        let recent = last.is_some_and(|t| t.elapsed() < self.config.min_refresh_interval);
        if on_demand && recent && self.verifier.has_jwks_keys() {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let count = keys.len();
                let changed = self.verifier.install_jwks(keys);
                tracing::info!(keys = count, changed, on_demand, "JWKS refreshed");
                metrics::JWKS_REFRESHES.with_label_values(&["ok"]).inc();
                true
            }
            Err(error) => {
                tracing::warn!(
                    error,
                    on_demand,
                    "JWKS refresh failed; keeping the last good keys"
                );
                metrics::JWKS_REFRESHES.with_label_values(&["error"]).inc();
                false
            }
        }
    }

    /// What a request whose token names an unknown `kid` does: one on-demand [`refresh`].
    /// While no keys have loaded at all (a gateway that just started, whose pool has not
    /// passed its first health check), it keeps trying for up to [`FIRST_KEYS_WAIT`], so that
    /// a request arriving in the first moments waits them out instead of failing.
    ///
    /// [`refresh`]: Self::refresh
    pub(crate) async fn refresh_on_demand(&self) {
        let deadline = Instant::now() + FIRST_KEYS_WAIT;
        while !self.refresh(true).await
            && !self.verifier.has_jwks_keys()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let url = match &self.config.source {
            JwksSource::Url(url) => url.clone(),
            JwksSource::Pool { path, .. } => {
                let picker = self
                    .picker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .ok_or("JWKS pool is missing")?;
                let addr = picker.pick().ok_or("JWKS pool has no healthy endpoint")?;
                format!("http://{addr}{path}")
            }
        };
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: status {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("GET {url}: larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body).map_err(|e| format!("GET {url}: {e}"))
    }

    /// Fetch at start (retrying each second until it works), then every `refresh_interval`.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let ok = self.refresh(false).await;
            let wait = if ok || self.verifier.has_jwks_keys() {
                self.config.refresh_interval
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
                () = self.retired.cancelled() => return,
            }
        }
    }
}
