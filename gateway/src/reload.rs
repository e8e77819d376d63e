//! Hot reload of `gateway.yaml`: the file is watched (polled, which also works through
//! Docker bind mounts and editors that replace the file) and re-read on SIGHUP.
//!
//! A new config is validated in full first; an invalid one is rejected with every error
//! logged and the old one keeps serving. A valid one is swapped in atomically: requests in
//! flight finish on the runtime they started with, unchanged pools keep their endpoints and
//! health, an unchanged `jwt:` keeps its keys, unchanged rate limits keep their counters.
//! Settings that need new sockets or threads (listeners, `server:`, `dns:`) are reported as
//! needing a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_resolver::TokioAsyncResolver;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use crate::config::{self, Config};
use crate::metrics;
use crate::proxy::Runtime;

/// How often the config file is compared with what was last read.
const POLL_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Reloader {
    pub(crate) path: PathBuf,
    /// The runtime requests load; replaced whole on a successful reload.
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
    /// Pools built by a reload resolve names through the same resolver.
    pub(crate) resolver: Arc<TokioAsyncResolver>,
}

/// Start the timers of every pool and verifier in `next` that `previous` did not run.
fn start_new(next: &Runtime, previous: Option<&Runtime>, stop: &watch::Receiver<bool>) {
    for pool in &next.pools {
        let known = previous.is_some_and(|p| p.pools.iter().any(|old| Arc::ptr_eq(old, pool)));
        if !known {
            tokio::spawn(Arc::clone(pool).run(stop.clone()));
        }
    }
    if let Some(v) = &next.verifier {
        let known = previous
            .and_then(|p| p.verifier.as_ref())
            .is_some_and(|old| Arc::ptr_eq(old, v));
        if !known {
            tokio::spawn(Arc::clone(v).run(stop.clone()));
        }
    }
}

/// Stop the timers of everything in `previous` that `next` no longer uses.
fn retire_old(previous: &Runtime, next: &Runtime) {
    for pool in &previous.pools {
        if !next.pools.iter().any(|p| Arc::ptr_eq(p, pool)) {
            pool.retire();
        }
    }
    if let Some(old) = &previous.verifier {
        if !next.verifier.as_ref().is_some_and(|v| Arc::ptr_eq(v, old)) {
            old.retire();
        }
    }
}

/// Settings a running process cannot change.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listeners != new.listeners {
        out.push("listeners");
    }
    if old.server != new.server {
        out.push("server");
    }
    if old.dns_nameservers != new.dns_nameservers {
        out.push("dns");
    }
    out
}

pub(crate) fn publish_config_info(config: &Config) {
    metrics::CONFIG_INFO.reset();
    metrics::CONFIG_INFO
        .with_label_values(&[
            &config.source.display().to_string(),
            &config.routes.len().to_string(),
            &config.pools.len().to_string(),
        ])
        .set(1);
}

impl Reloader {
    fn apply(&self, text: &str, stop: &watch::Receiver<bool>) {
        let fail = |reason: &str| {
            metrics::CONFIG_RELOAD_SUCCESS.set(0);
            metrics::CONFIG_RELOADS.with_label_values(&["error"]).inc();
            tracing::error!(file = %self.path.display(), reason, "config reload rejected; the previous config keeps serving");
        };
        let new = match config::parse(&self.path, text) {
            Ok(new) => new,
            Err(errors) => {
                for line in errors.to_string().lines() {
                    tracing::error!(error = line, "invalid config");
                }
                fail("invalid config");
                return;
            }
        };
        let previous = self.runtime.load_full();
        let restart = needs_restart(&previous.config, &new);
        let next = match Runtime::build(Arc::new(new), &self.resolver, Some(&previous)) {
            Ok(next) => next,
            Err(e) => {
                fail(&e);
                return;
            }
        };
        start_new(&next, Some(&previous), stop);
        let next = Arc::new(next);
        self.runtime.store(Arc::clone(&next));
        retire_old(&previous, &next);
        publish_config_info(&next.config);
        metrics::CONFIG_RELOAD_SUCCESS.set(1);
        metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
        let reused = next
            .pools
            .iter()
            .filter(|p| previous.pools.iter().any(|old| Arc::ptr_eq(old, p)))
            .count();
        tracing::info!(
            file = %self.path.display(), routes = next.config.routes.len(), pools = next.pools.len(),
            pools_kept = reused, "config reloaded"
        );
        if !restart.is_empty() {
            tracing::warn!(sections = ?restart, "changed settings need a restart to take effect; the rest is applied");
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (stop_tx, stop_rx) = watch::channel(false);
        start_new(&self.runtime.load(), None, &stop_rx);
        let mut last = tokio::fs::read_to_string(&self.path)
            .await
            .unwrap_or_default();
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; file watching still reloads");
                None
            }
        };
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = poll.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
                _ = shutdown.changed() => break,
            };
            match tokio::fs::read_to_string(&self.path).await {
                Ok(text) if forced || text != last => {
                    last.clone_from(&text);
                    self.apply(&text, &stop_rx);
                }
                Err(e) if forced => {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot read the config to reload it");
                }
                // Unchanged, or briefly unreadable while an editor replaces it: next tick.
                Ok(_) | Err(_) => {}
            }
        }
        let _ = stop_tx.send(true);
    }
}
