//! The backend's Prometheus metrics, in a registry of its own.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Cache lookups by result: hit, miss, error.
    pub cache: IntCounterVec,
    /// Job events: enqueued, processed, failed, retried, dead_lettered, skipped.
    pub jobs: IntCounterVec,
    /// Stream backlog: pending (delivered, unacknowledged) and lag (not yet delivered).
    pub stream: IntGaugeVec,
    /// Database pool connections by state: in_use, idle.
    pub db_pool: IntGaugeVec,
    /// Password hashes and verifications by outcome: done, busy (refused: replica saturated).
    pub password_hashes: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request duration by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new(
                "cache_operations_total",
                "Todo-list cache lookups by result (hit|miss|error)",
            ),
            &["result"],
        )?;
        let jobs = IntCounterVec::new(
            Opts::new(
                "jobs_total",
                "Job events (enqueued|processed|failed|retried|dead_lettered|skipped)",
            ),
            &["event"],
        )?;
        let stream = IntGaugeVec::new(
            Opts::new(
                "job_stream_entries",
                "Job stream backlog by kind (pending|lag)",
            ),
            &["kind"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by state (in_use|idle)",
            ),
            &["state"],
        )?;
        let password_hashes = IntCounterVec::new(
            Opts::new(
                "password_hashes_total",
                "Argon2id operations by op (hash|verify) and outcome (done|busy)",
            ),
            &["op", "outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(stream.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        registry.register(Box::new(password_hashes.clone()))?;
        // Known label values start at 0, so ratios and alert rules over them have a series
        // before the first event (a counter that appears only at its first error makes
        // `rate()` of it empty, not 0).
        for result in ["hit", "miss", "error"] {
            cache.with_label_values(&[result]);
        }
        for event in [
            "enqueued",
            "processed",
            "failed",
            "retried",
            "dead_lettered",
            "skipped",
        ] {
            jobs.with_label_values(&[event]);
        }
        Ok(Self {
            registry,
            requests,
            duration,
            cache,
            jobs,
            stream,
            db_pool,
            password_hashes,
        })
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    pub fn render(&self) -> Vec<u8> {
        use prometheus::Encoder as _;
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// A method as a metric label with bounded cardinality: the standard methods by name,
/// anything else `OTHER` (a client can send any token as a method; each would otherwise
/// become a new time series).
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_map_to_other() {
        let made_up = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
    }
}
