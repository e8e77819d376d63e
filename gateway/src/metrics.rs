//! Prometheus metrics, registered in the registry that `pingora-prometheus` re-exports.
//!
//! Registering through `pingora_prometheus::prometheus` (not a separately versioned
//! `prometheus` crate) is what makes the metrics appear on `/metrics`: two crate versions mean
//! two default registries, and one of them is never scraped (pingora#636).

use once_cell::sync::Lazy;
use pingora_prometheus::prometheus::{
    self, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};

/// Requests answered, by route, method, status code and who produced the status
/// (`gateway` for the gateway's own responses, `upstream` for proxied ones).
pub(crate) static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_requests_total",
        "Requests answered, by route, method, status code and source (gateway|upstream)",
        &["route", "method", "code", "source"]
    )
    .expect("metric names are unique")
});

/// Whole-request latency as the client saw it.
pub(crate) static REQUEST_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "gateway_request_duration_seconds",
        "Time from request header to the last response byte, by route",
        &["route"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric names are unique")
});

/// 1 when an endpoint may receive traffic (active check passing and not ejected), else 0.
pub(crate) static ENDPOINT_HEALTHY: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "gateway_upstream_endpoint_healthy",
        "Whether an upstream endpoint receives traffic (1) or not (0)",
        &["pool", "endpoint"]
    )
    .expect("metric names are unique")
});

pub(crate) static CONNECT_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_upstream_connect_failures_total",
        "Failed attempts to connect to an upstream endpoint, by pool",
        &["pool"]
    )
    .expect("metric names are unique")
});

pub(crate) static RETRIES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_upstream_retries_total",
        "Requests sent again to another endpoint after a failure, by pool",
        &["pool"]
    )
    .expect("metric names are unique")
});

pub(crate) static EJECTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_upstream_ejections_total",
        "Circuit breakers opened (endpoints ejected), by pool",
        &["pool"]
    )
    .expect("metric names are unique")
});

/// 0 closed, 1 half-open, 2 open.
pub(crate) static BREAKER_STATE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "gateway_breaker_state",
        "Circuit breaker of an upstream endpoint: 0 closed, 1 half-open, 2 open",
        &["pool", "endpoint"]
    )
    .expect("metric names are unique")
});

pub(crate) static BREAKER_TRANSITIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_breaker_transitions_total",
        "Circuit breakers that opened or closed, by pool and new state",
        &["pool", "state"]
    )
    .expect("metric names are unique")
});

/// Requests the balancer would have sent to an endpoint whose breaker did not admit them.
pub(crate) static BREAKER_DIVERTED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_breaker_rejected_total",
        "Endpoint choices refused by an open breaker (or a half-open one with its probes taken), by pool",
        &["pool"]
    )
    .expect("metric names are unique")
});

pub(crate) static RETRY_BUDGET_EXHAUSTED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_retry_budget_exhausted_total",
        "Retries not made because the pool's retry budget was spent, by pool",
        &["pool"]
    )
    .expect("metric names are unique")
});

pub(crate) static SPLIT_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_split_requests_total",
        "Requests of a route with split, by the pool chosen",
        &["route", "pool"]
    )
    .expect("metric names are unique")
});

pub(crate) static MIRROR_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_mirror_requests_total",
        "Copies of requests for a route's mirror pool, by result (sent, failed, dropped, too_large)",
        &["route", "result"]
    )
    .expect("metric names are unique")
});

pub(crate) static MIRROR_IN_FLIGHT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "gateway_mirror_in_flight",
        "Copies of requests on their way to a route's mirror pool",
        &["route"]
    )
    .expect("metric names are unique")
});

/// Requests proxied and waiting under a pool's `max_in_flight`.
pub(crate) static POOL_IN_FLIGHT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "gateway_pool_requests",
        "Requests of a pool with max_in_flight, by state (in_flight, queued), and its limit now (limit)",
        &["pool", "state"]
    )
    .expect("metric names are unique")
});

/// Upstream connections used, split by whether they came from the keep-alive pool.
pub(crate) static UPSTREAM_CONNECTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_upstream_connections_total",
        "Upstream connections used per request attempt, by pool and reused (true|false)",
        &["pool", "reused"]
    )
    .expect("metric names are unique")
});

pub(crate) static IN_FLIGHT: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "gateway_requests_in_flight",
        "Requests received and not yet answered"
    )
    .expect("metric names are unique")
});

/// Client connections open on the public listener.
pub(crate) static DOWNSTREAM_CONNECTIONS: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "gateway_downstream_connections",
        "Client connections open on the public listener"
    )
    .expect("metric names are unique")
});

/// Client connections closed at accept because `limits.max_connections` were open.
pub(crate) static DOWNSTREAM_REJECTED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "gateway_downstream_connections_rejected_total",
        "Client connections closed at once because limits.max_connections were open"
    )
    .expect("metric names are unique")
});

/// HTTPS connections whose TLS handshake failed (`error`: no shared version or suite, no
/// certificate for the name, not TLS at all) or did not finish in time (`timeout`).
pub(crate) static TLS_HANDSHAKE_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_tls_handshake_failures_total",
        "TLS handshakes on the HTTPS listener that failed, by reason (error|timeout)",
        &["reason"]
    )
    .expect("metric names are unique")
});

/// Client connections closed by a deadline: `idle` (no request began in time) or `header`
/// (a request header was not complete in time).
pub(crate) static DOWNSTREAM_TIMEOUTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_downstream_timeouts_total",
        "Client connections closed by a deadline, by phase (idle|header)",
        &["phase"]
    )
    .expect("metric names are unique")
});

/// Log lines dropped because stdout was not drained fast enough.
pub(crate) static LOG_DROPPED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "gateway_log_dropped_total",
        "Log lines dropped because stdout did not keep up (the buffer was full)"
    )
    .expect("metric names are unique")
});

/// Constant 1, labelled with what is loaded (`hash`: of the file's text), for dashboards and
/// alerts on config drift.
pub(crate) static CONFIG_INFO: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "gateway_config_info",
        "The loaded configuration (value is always 1)",
        &["file", "routes", "pools", "hash"]
    )
    .expect("metric names are unique")
});

/// When each certificate the HTTPS listener serves expires (its notAfter), by its first
/// DNS name and file: alert on `gateway_tls_certificate_expiry_timestamp_seconds - time()`.
pub(crate) static ACME_ORDERS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_acme_orders_total",
        "Certificate orders with the ACME CA, by result (ok|error); on error the certificate already loaded keeps serving",
        &["result"]
    )
    .expect("metric names are unique")
});

pub(crate) static TLS_CERTIFICATE_EXPIRY: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "gateway_tls_certificate_expiry_timestamp_seconds",
        "The notAfter of each loaded certificate, in seconds since the Unix epoch",
        &["name", "file"]
    )
    .expect("metric names are unique")
});

/// JWKS fetches by result (`ok` or `error`).
pub(crate) static JWKS_REFRESHES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_jwks_refreshes_total",
        "JWKS fetches, by result (ok|error)",
        &["result"]
    )
    .expect("metric names are unique")
});

/// Requests refused by a policy, by reason (`auth`, `rate_limit`, `body_limit`) and route.
pub(crate) static REJECTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_policy_rejections_total",
        "Requests refused by a gateway policy, by reason (auth|rate_limit|body_limit|ip_access|basic_auth|api_key|forward_auth|overload) and route",
        &["reason", "route"]
    )
    .expect("metric names are unique")
});

/// Requests an edge policy answered or transformed, by action
/// (cors_preflight|redirect|rewrite|compress) and route.
pub(crate) static EDGE_ACTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_edge_actions_total",
        "Requests an edge policy answered or transformed, by action (cors_preflight|redirect|rewrite|compress) and route",
        &["action", "route"]
    )
    .expect("metric names are unique")
});

/// 1 when the last reload attempt applied its config (or none was tried yet), else 0.
pub(crate) static CONFIG_RELOAD_SUCCESS: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "gateway_config_last_reload_success",
        "Whether the last config reload was applied (1) or rejected (0)"
    )
    .expect("metric names are unique")
});

pub(crate) static CONFIG_RELOADS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_config_reloads_total",
        "Config reload attempts, by result (ok|error)",
        &["result"]
    )
    .expect("metric names are unique")
});

/// Redis failures of cluster-wide rate limits, by kind (`connect`, `timeout`, `script`); each
/// one decided a request by the limit's `fail_open`.
pub(crate) static RATE_LIMIT_REDIS_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_rate_limit_redis_errors_total",
        "Redis failures of cluster rate limits, by kind (connect|timeout|script); fail_open decided those requests",
        &["kind"]
    )
    .expect("metric names are unique")
});

/// Every series of `gateway_requests_total` as (route, code, count), for the status page.
pub(crate) fn requests_by_route_and_code() -> Vec<(String, String, u64)> {
    use prometheus::core::Collector as _;
    let mut out = Vec::new();
    for family in REQUESTS.collect() {
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_owned())
            };
            if let (Some(route), Some(code)) = (label("route"), label("code")) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a count
                out.push((route, code, metric.get_counter().value() as u64));
            }
        }
    }
    out
}

/// Render every registered metric in the text exposition format.
pub(crate) fn render() -> Vec<u8> {
    use prometheus::Encoder as _;
    let encoder = prometheus::TextEncoder::new();
    let mut buffer = Vec::new();
    // Encoding into a Vec cannot fail for well-formed families.
    let _ = encoder.encode(&prometheus::gather(), &mut buffer);
    buffer
}

/// Touch every metric once so that `/metrics` lists them all from the first scrape.
pub(crate) fn init() {
    Lazy::force(&REQUESTS);
    Lazy::force(&REQUEST_DURATION);
    Lazy::force(&ENDPOINT_HEALTHY);
    Lazy::force(&CONNECT_FAILURES);
    Lazy::force(&RETRIES);
    Lazy::force(&EJECTIONS);
    Lazy::force(&BREAKER_STATE);
    Lazy::force(&BREAKER_TRANSITIONS);
    Lazy::force(&BREAKER_DIVERTED);
    Lazy::force(&RETRY_BUDGET_EXHAUSTED);
    Lazy::force(&POOL_IN_FLIGHT);
    Lazy::force(&SPLIT_REQUESTS);
    Lazy::force(&MIRROR_REQUESTS);
    Lazy::force(&MIRROR_IN_FLIGHT);
    Lazy::force(&UPSTREAM_CONNECTIONS);
    Lazy::force(&IN_FLIGHT);
    Lazy::force(&CONFIG_INFO);
    Lazy::force(&DOWNSTREAM_CONNECTIONS);
    Lazy::force(&DOWNSTREAM_REJECTED);
    Lazy::force(&LOG_DROPPED);
    for phase in ["idle", "header"] {
        DOWNSTREAM_TIMEOUTS.with_label_values(&[phase]);
    }
    for reason in ["error", "timeout"] {
        TLS_HANDSHAKE_FAILURES.with_label_values(&[reason]);
    }
    Lazy::force(&JWKS_REFRESHES);
    for result in ["ok", "error"] {
        ACME_ORDERS.with_label_values(&[result]);
    }
    Lazy::force(&REJECTIONS);
    Lazy::force(&EDGE_ACTIONS);
    CONFIG_RELOAD_SUCCESS.set(1);
    Lazy::force(&CONFIG_RELOADS);
}

/// Method label with bounded cardinality: standard methods by name, anything else `OTHER`.
pub(crate) fn method_label(method: &http::Method) -> &'static str {
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
