//! Hot reload of `gateway.yaml`: the file is watched (polled by path, which also works
//! through Docker directory mounts and editors that replace the file) and re-read on SIGHUP.
//!
//! A file is applied only once two reads a poll apart (or, on SIGHUP, a moment apart) give
//! the same text: a reader racing a writer can see a prefix of the new file that still
//! parses (a route cut before its `auth: required`). That closes the race with an ordinary
//! write; a writer that stalls for longer than a poll mid-file can still be caught, which
//! is why the README asks for saves by rename (what editors, `sed -i` and `git` do).
//!
//! A new config is validated in full first; an invalid one is rejected with every error
//! logged and the old one keeps serving. A valid one is built beside the old one, its new
//! pools warmed up (members discovered, first checks run, within a deadline), and then
//! swapped in atomically: requests in flight finish on the runtime they started with; a pool
//! keeps or inherits its endpoints and health; `jwt:` keeps or inherits its keys; unchanged
//! rate limits keep their counters. So an edit of any section fails no request. Settings
//! that need new sockets or threads (listeners, `server:`, `dns:`) are reported as needing a
//! restart. Each applied config is logged with the hash of its text.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_resolver::TokioAsyncResolver;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, TlsConfig};
use crate::metrics;
use crate::runtime::Runtime;

/// How often the config file is compared with what was last read.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// On SIGHUP, the file is read twice this far apart and applied only if both agree.
const SETTLE: Duration = Duration::from_millis(100);

/// Reloads kept for the status page, newest first.
const HISTORY: usize = 10;

/// One attempt to apply the config: the start, or a reload applied or rejected.
#[derive(Debug, Clone)]
pub(crate) struct ReloadEvent {
    pub(crate) at: SystemTime,
    /// `started`, `applied` or `rejected`.
    pub(crate) result: &'static str,
    /// The hash of the text (as `gateway_config_info` and the log show it).
    pub(crate) hash: String,
    /// A rejected text's errors, one per line with file, line, column and key.
    pub(crate) errors: Vec<String>,
}

/// The last reloads, for the status page.
#[derive(Debug, Default)]
pub(crate) struct ReloadHistory {
    events: Mutex<VecDeque<ReloadEvent>>,
}

impl ReloadHistory {
    pub(crate) fn record(&self, result: &'static str, hash: String, errors: Vec<String>) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push_front(ReloadEvent {
            at: SystemTime::now(),
            result,
            hash,
            errors,
        });
        events.truncate(HISTORY);
    }

    /// Newest first.
    pub(crate) fn events(&self) -> Vec<ReloadEvent> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().cloned().collect()
    }
}

pub(crate) struct Reloader {
    /// What the status page shows of reloads.
    pub(crate) history: Arc<ReloadHistory>,
    pub(crate) path: PathBuf,
    /// The runtime requests load; replaced whole on a successful reload.
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
    /// Pools built by a reload resolve names through the same resolver.
    pub(crate) resolver: Arc<TokioAsyncResolver>,
}

/// Start the timers of every pool, JWKS refresher and ACME component in `next` that `previous` did not run.
fn start_new(next: &Runtime, previous: Option<&Runtime>, stop: &CancellationToken) {
    for pool in &next.pools {
        let known = previous.is_some_and(|p| p.pools.iter().any(|old| Arc::ptr_eq(old, pool)));
        if !known {
            tokio::spawn(Arc::clone(pool).run(stop.child_token()));
        }
    }
    if let Some(jwks) = &next.jwks {
        let known = previous
            .and_then(|p| p.jwks.as_ref())
            .is_some_and(|old| Arc::ptr_eq(old, jwks));
        if !known {
            tokio::spawn(Arc::clone(jwks).run(stop.child_token()));
        }
    }
    if let Some(acme) = &next.acme {
        let known = previous
            .and_then(|p| p.acme.as_ref())
            .is_some_and(|old| Arc::ptr_eq(old, acme));
        if !known {
            tokio::spawn(Arc::clone(acme).run(stop.child_token()));
        }
    }
}

/// Stop the timers of everything in `previous` that `next` no longer uses.
fn retire_old(previous: &Runtime, next: &Runtime) {
    for pool in &previous.pools {
        if !next.pools.iter().any(|p| Arc::ptr_eq(p, pool)) {
            let succeeded = next.pools.iter().any(|p| p.name() == pool.name());
            pool.retire(succeeded);
        }
    }
    if let Some(old) = &previous.jwks {
        if !next.jwks.as_ref().is_some_and(|j| Arc::ptr_eq(j, old)) {
            old.retire();
        }
    }
    if let Some(old) = &previous.acme {
        if !next.acme.as_ref().is_some_and(|a| Arc::ptr_eq(a, old)) {
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

/// The runtime-derived gauges: what config runs, and when each certificate it serves
/// expires (listed, default, self-signed and ACME).
pub(crate) fn publish_runtime_info(runtime: &Runtime) {
    let config = &runtime.config;
    metrics::CONFIG_INFO.reset();
    metrics::CONFIG_INFO
        .with_label_values(&[
            &config.source.display().to_string(),
            &config.routes.len().to_string(),
            &config.pools.len().to_string(),
            &config.source_hash,
        ])
        .set(1);
    metrics::TLS_CERTIFICATE_EXPIRY.reset();
    for (_, cert) in runtime.served_certificates() {
        let name = cert.names.first().map_or("", String::as_str);
        metrics::TLS_CERTIFICATE_EXPIRY
            .with_label_values(&[name, &cert.cert_file.display().to_string()])
            .set(cert.not_after);
    }
}

/// Two reads of the config file agreeing, so a file caught mid-write is not applied.
#[derive(Default)]
struct StableReads {
    /// A text seen once that differs from the applied one, waiting for a second read.
    candidate: Option<String>,
    /// The hash of the last text handed out to be applied (a rejected one is not tried
    /// again until the file changes).
    tried: Option<String>,
}

/// What one read of a watched file calls for.
enum Read {
    /// Apply this text: read the same twice, or the running text again after a rejection.
    Apply(String),
    /// The running text, nothing pending: the text is handed back for other checks.
    Running(String),
    /// Wait for the next read.
    Wait,
}

impl StableReads {
    /// Feed one read; returns the text to apply once it has been read twice in a row.
    /// `applied` is the hash of the text the running config was parsed from.
    fn observe(&mut self, text: String, applied: &str) -> Option<String> {
        match self.read(text, applied) {
            Read::Apply(text) => Some(text),
            Read::Running(_) | Read::Wait => None,
        }
    }

    fn read(&mut self, text: String, applied: &str) -> Read {
        let hash = config::content_hash(&text);
        if hash == applied {
            self.candidate = None;
            // Back to what runs after a rejected edit: apply it once more, so that the
            // reload metrics say the file and the running config agree again.
            let rejected_since = self.tried.take().is_some_and(|t| t != hash);
            return if rejected_since {
                Read::Apply(text)
            } else {
                Read::Running(text)
            };
        }
        if self.tried.as_deref() == Some(hash.as_str()) {
            self.candidate = None;
            return Read::Wait;
        }
        if self.candidate.as_deref() == Some(text.as_str()) {
            self.candidate = None;
            self.tried = Some(hash);
            return Read::Apply(text);
        }
        self.candidate = Some(text);
        Read::Wait
    }
}

impl Reloader {
    async fn apply(&self, text: &str, stop: &CancellationToken) {
        let fail = |reason: &str| {
            metrics::CONFIG_RELOAD_SUCCESS.set(0);
            metrics::CONFIG_RELOADS.with_label_values(&["error"]).inc();
            tracing::error!(file = %self.path.display(), reason, "config reload rejected; the previous config keeps serving");
        };
        let new = match config::parse(&self.path, text) {
            Ok(new) => new,
            Err(errors) => {
                let lines: Vec<String> = errors.to_string().lines().map(str::to_owned).collect();
                for line in &lines {
                    tracing::error!(error = line, "invalid config");
                }
                fail("invalid config");
                self.history
                    .record("rejected", config::content_hash(text), lines);
                return;
            }
        };
        let previous = self.runtime.load_full();
        let restart = needs_restart(&previous.config, &new);
        let next = Runtime::build(Arc::new(new), &self.resolver, Some(&previous));
        next.warm(&previous).await;
        start_new(&next, Some(&previous), stop);
        let next = Arc::new(next);
        self.runtime.store(Arc::clone(&next));
        next.activate();
        retire_old(&previous, &next);
        publish_runtime_info(&next);
        self.history
            .record("applied", next.config.source_hash.clone(), Vec::new());
        metrics::CONFIG_RELOAD_SUCCESS.set(1);
        metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
        let reused = next
            .pools
            .iter()
            .filter(|p| previous.pools.iter().any(|old| Arc::ptr_eq(old, p)))
            .count();
        tracing::info!(
            file = %self.path.display(), hash = %next.config.source_hash,
            routes = next.config.routes.len(), pools = next.pools.len(),
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
        // Cancelled at shutdown: ends every pool and refresher timer this reloader started.
        let stop = CancellationToken::new();
        start_new(&self.runtime.load(), None, &stop);
        let mut reads = StableReads::default();
        // The same rule for the certificate files of `tls:`, by their digest.
        let mut certificates = StableReads::default();
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
            let read = tokio::fs::read_to_string(&self.path).await;
            if forced {
                // SIGHUP: reload now, even an unchanged file, but only a settled one.
                let settled = match read {
                    Ok(first) => {
                        tokio::time::sleep(SETTLE).await;
                        match tokio::fs::read_to_string(&self.path).await {
                            Ok(second) if second == first => Some(first),
                            _ => None,
                        }
                    }
                    Err(e) => {
                        tracing::error!(file = %self.path.display(), error = %e, "cannot read the config to reload it");
                        continue;
                    }
                };
                match settled {
                    Some(text) => self.apply(&text, &stop).await,
                    None => {
                        tracing::warn!(file = %self.path.display(), "the config changed while being read; it is applied once it stops changing")
                    }
                }
                continue;
            }
            // Compared with what runs (the text the live config was parsed from, so an edit
            // made while the gateway started is applied too). Unreadable (briefly, while an
            // editor replaces it): next tick.
            if let Ok(text) = read {
                let live = Arc::clone(&self.runtime.load().config);
                match reads.read(text, &live.source_hash) {
                    Read::Apply(text) => self.apply(&text, &stop).await,
                    // The text runs as it is; certificate files renewed on disk (read twice
                    // the same, like the text) reload it.
                    Read::Running(text) if live.tls.is_some() => {
                        let loaded = live.tls.as_ref().map(|t| t.fingerprint.clone());
                        let on_disk = tokio::task::spawn_blocking(move || {
                            live.tls.as_ref().and_then(TlsConfig::fingerprint_on_disk)
                        })
                        .await
                        .ok()
                        .flatten();
                        if let (Some(on_disk), Some(loaded)) = (on_disk, loaded) {
                            if certificates.observe(on_disk, &loaded).is_some() {
                                tracing::info!("certificate files changed; reloading");
                                self.apply(&text, &stop).await;
                            }
                        }
                    }
                    Read::Running(_) | Read::Wait => {}
                }
            }
        }
        stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads of a file that runs v1's text, and v1's hash.
    fn running_v1() -> (StableReads, String) {
        (StableReads::default(), config::content_hash("v1"))
    }

    /// Read `text` twice: the second read offers it for applying.
    fn read_twice(reads: &mut StableReads, text: &str, applied: &str) -> Option<String> {
        reads.observe(text.into(), applied);
        reads.observe(text.into(), applied)
    }

    #[test]
    fn a_text_is_applied_only_after_two_identical_reads() {
        let (mut reads, applied) = running_v1();

        assert_eq!(reads.observe("v1".into(), &applied), None, "unchanged");
        assert_eq!(reads.observe("v2-half".into(), &applied), None, "seen once");
        assert_eq!(reads.observe("v2-more".into(), &applied), None, "moving");
        assert_eq!(reads.observe("v2".into(), &applied), None, "seen once");
        assert_eq!(reads.observe("v2".into(), &applied).as_deref(), Some("v2"));
    }

    #[test]
    fn a_rejected_text_is_not_tried_again_until_the_file_changes() {
        let (mut reads, applied) = running_v1();
        assert_eq!(
            read_twice(&mut reads, "bad", &applied).as_deref(),
            Some("bad")
        );

        // Applying it failed, so `applied` is still v1's hash.
        assert_eq!(reads.observe("bad".into(), &applied), None);
        assert_eq!(reads.observe("bad".into(), &applied), None);
        assert_eq!(
            read_twice(&mut reads, "fixed", &applied).as_deref(),
            Some("fixed")
        );
    }

    #[test]
    fn going_back_to_the_running_text_after_a_rejected_edit_applies_it_once() {
        let (mut reads, applied) = running_v1();
        assert_eq!(
            read_twice(&mut reads, "bad", &applied).as_deref(),
            Some("bad")
        );

        assert_eq!(reads.observe("v1".into(), &applied).as_deref(), Some("v1"));
        assert_eq!(reads.observe("v1".into(), &applied), None);
    }

    #[test]
    fn a_file_that_goes_back_to_the_applied_text_cancels_the_candidate() {
        let (mut reads, applied) = running_v1();

        assert_eq!(reads.observe("v2".into(), &applied), None);
        assert_eq!(reads.observe("v1".into(), &applied), None);
        assert_eq!(reads.observe("v2".into(), &applied), None, "again");
    }
}
