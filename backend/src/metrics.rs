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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(stream.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            cache,
            jobs,
            stream,
            db_pool,
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
