//! What the status page shows, as `/status.json`: the process, the config and its last
//! reloads, listeners and certificates, every route with its traffic over the last minute,
//! every pool with each endpoint's state. The types derive a JSON Schema
//! (`config/status.schema.json`, `gateway schema status`), which is the document's contract.
//!
//! Route traffic comes from the `gateway_requests_total` counters, sampled every few seconds
//! by [`Traffic`] (nothing is added to the request path); a request for the page takes one
//! more sample, so its numbers include the last moment.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use schemars::JsonSchema;
use serde::Serialize;

use crate::metrics;
use crate::reload::ReloadHistory;
use crate::runtime::{CertificateSource, Runtime};

/// The gateway's status, as the admin listener serves it at `/status.json`.
#[derive(Serialize, JsonSchema)]
#[schemars(title = "gateway /status.json")]
pub(crate) struct Status {
    /// The gateway's version.
    pub(crate) version: &'static str,
    /// When the process started, in seconds since the Unix epoch.
    pub(crate) started_at: u64,
    pub(crate) uptime_seconds: u64,
    pub(crate) config: ConfigStatus,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) certificates: Vec<CertificateStatus>,
    pub(crate) routes: Vec<RouteStatus>,
    pub(crate) pools: Vec<PoolStatus>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ConfigStatus {
    /// The config file.
    pub(crate) source: String,
    /// SHA-256 of the running text (as `gateway_config_info` and the log show it).
    pub(crate) hash: String,
    /// The start and the last reloads, newest first (at most 10).
    pub(crate) reloads: Vec<Reload>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct Reload {
    /// Seconds since the Unix epoch.
    pub(crate) at: u64,
    /// `started`, `applied` or `rejected` (the previous config kept serving).
    #[schemars(extend("enum" = ["started", "applied", "rejected"]))]
    pub(crate) result: &'static str,
    pub(crate) hash: String,
    /// A rejected text's errors, each with file, line, column and key.
    pub(crate) errors: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct Listener {
    /// `http`, `https` or `admin`.
    pub(crate) name: &'static str,
    pub(crate) address: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct CertificateStatus {
    /// The DNS names it holds.
    pub(crate) names: Vec<String>,
    /// Where it comes from: its file, `self-signed` or `acme`.
    pub(crate) source: String,
    /// Its notAfter, in seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// Days until then (negative once expired).
    pub(crate) days_left: f64,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct RouteStatus {
    pub(crate) name: String,
    /// `host path methods`: `*` any host, `= /exact` or `/prefix*`, `any` method.
    #[serde(rename = "match")]
    pub(crate) matcher: String,
    /// `pool backend`, `split a 90 / b 10`, `respond 200` or `redirect 302`.
    pub(crate) target: String,
    /// The pool a request goes to first, when it is proxied.
    pub(crate) pool: Option<String>,
    /// Its policies in the order the gateway applies them.
    pub(crate) policies: Vec<&'static str>,
    /// `auth`: `none`, `optional` or `required`.
    pub(crate) auth: &'static str,
    /// Its rate limits, e.g. `10 per 1m, burst 5, cluster`.
    pub(crate) rate_limits: Vec<String>,
    /// Requests per second over the last minute (`null` until two samples exist).
    pub(crate) requests_per_second: Option<f64>,
    /// The share of those answered 5xx (`null` without requests).
    pub(crate) error_ratio: Option<f64>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct PoolStatus {
    pub(crate) name: String,
    /// `round_robin`, `random` or `consistent_hash on ...`.
    pub(crate) balance: String,
    /// Whether any endpoint takes traffic.
    pub(crate) ready: bool,
    /// With `max_in_flight`: requests proxied to the pool now.
    pub(crate) in_flight: Option<usize>,
    /// With `max_in_flight`: requests waiting for a place.
    pub(crate) queued: Option<usize>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) endpoints: Vec<EndpointStatus>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct EndpointStatus {
    /// `ip:port`.
    pub(crate) address: String,
    /// It takes traffic: its active check passes and its breaker is not open.
    pub(crate) healthy: bool,
    /// The active check's verdict: `passing`, `failing`, `unknown` before the first, or
    /// `off` when the pool has no active check.
    #[schemars(extend("enum" = ["passing", "failing", "unknown", "off"]))]
    pub(crate) check: &'static str,
    /// The circuit breaker: `closed`, `half_open` or `open` (ejected).
    #[schemars(extend("enum" = ["closed", "half_open", "open"]))]
    pub(crate) breaker: &'static str,
    /// Attempts at it now.
    pub(crate) in_flight: u32,
    /// Moving average of its time to answer, in milliseconds (`null` before an answer).
    pub(crate) latency_ms: Option<f64>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Build the document from the live runtime.
pub(crate) fn status(
    runtime: &Runtime,
    history: &ReloadHistory,
    traffic: &Traffic,
    started: (SystemTime, Instant),
) -> Status {
    let config = &runtime.config;
    let now = SystemTime::now();
    let now_unix = i64::try_from(unix(now)).unwrap_or(i64::MAX);
    let mut listeners = vec![Listener {
        name: "http",
        address: config.listeners.http.to_string(),
    }];
    if let Some(https) = config.listeners.https {
        listeners.push(Listener {
            name: "https",
            address: https.to_string(),
        });
    }
    listeners.push(Listener {
        name: "admin",
        address: config.listeners.admin.to_string(),
    });

    let certificates = runtime
        .served_certificates()
        .into_iter()
        .map(|(source, cert)| {
            #[allow(clippy::cast_precision_loss)] // days, for people
            let days_left = (cert.not_after - now_unix) as f64 / 86_400.0;
            CertificateStatus {
                source: match source {
                    CertificateSource::File => cert.cert_file.display().to_string(),
                    CertificateSource::SelfSigned => "self-signed".to_owned(),
                    CertificateSource::Acme => "acme".to_owned(),
                },
                names: cert.names,
                not_after: cert.not_after,
                days_left,
            }
        })
        .collect();

    let rates = traffic.last_minute();
    let routes = config
        .routes
        .iter()
        .map(|route| {
            let rate = rates.get(&route.name);
            RouteStatus {
                name: route.name.clone(),
                matcher: route.match_text(),
                target: config.route_target(route),
                pool: match &route.action {
                    crate::config::RouteAction::Proxy { pool, .. } => {
                        Some(config.pools[*pool].name.clone())
                    }
                    _ => None,
                },
                policies: route.policies_in_order(),
                auth: match route.auth {
                    crate::config::AuthMode::None => "none",
                    crate::config::AuthMode::Optional => "optional",
                    crate::config::AuthMode::Required => "required",
                },
                rate_limits: route.rate_limit_texts(),
                requests_per_second: rate.map(|r| r.per_second),
                error_ratio: rate.and_then(|r| r.error_ratio),
            }
        })
        .collect();

    let pools = runtime
        .pools
        .iter()
        .map(|pool| PoolStatus {
            endpoints: pool
                .endpoint_health()
                .into_iter()
                .map(|e| EndpointStatus {
                    address: e.addr.to_string(),
                    healthy: e.routable,
                    check: if pool.config.health_check.is_some() {
                        e.verdict
                    } else {
                        "off"
                    },
                    breaker: e.breaker,
                    in_flight: e.in_flight,
                    latency_ms: e.answer_time.map(|d| d.as_secs_f64() * 1000.0),
                })
                .collect(),
            name: pool.name().to_owned(),
            balance: pool.config.balance.spelling(),
            ready: pool.has_healthy_endpoint(),
            in_flight: pool.admission.as_ref().map(|a| a.in_flight()),
            queued: pool.admission.as_ref().map(|a| a.queued()),
            max_in_flight: pool.admission.as_ref().map(|a| a.settings.max_in_flight),
        })
        .collect();

    Status {
        version: env!("CARGO_PKG_VERSION"),
        started_at: unix(started.0),
        uptime_seconds: started.1.elapsed().as_secs(),
        config: ConfigStatus {
            source: config.source.display().to_string(),
            hash: config.source_hash.clone(),
            reloads: history
                .events()
                .into_iter()
                .map(|e| Reload {
                    at: unix(e.at),
                    result: e.result,
                    hash: e.hash,
                    errors: e.errors,
                })
                .collect(),
        },
        listeners,
        certificates,
        routes,
        pools,
    }
}

/// A route's traffic over the last minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RouteRate {
    pub(crate) per_second: f64,
    pub(crate) error_ratio: Option<f64>,
}

/// Requests and 5xx answers so far, by route.
type Totals = HashMap<String, (u64, u64)>;

/// How long samples are kept: a minute, and one sample more.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the background task samples.
const EVERY: Duration = Duration::from_secs(5);

/// Samples of the request counters, the last minute of them.
#[derive(Default)]
pub(crate) struct Traffic {
    samples: Mutex<VecDeque<(Instant, Totals)>>,
}

impl Traffic {
    /// Read the counters now and keep the sample (at most one a second).
    pub(crate) fn sample(&self) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples
            .back()
            .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        let now = Instant::now();
        samples.push_back((now, totals()));
        // Keep the newest sample at least a minute old, so the window spans a minute.
        while samples.len() > 2
            && samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Each route's rate between the oldest sample (at most a minute and a sample old) and
    /// the newest.
    pub(crate) fn last_minute(&self) -> HashMap<String, RouteRate> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (Some((first_at, first)), Some((last_at, last))) = (samples.front(), samples.back())
        else {
            return HashMap::new();
        };
        let seconds = last_at.duration_since(*first_at).as_secs_f64();
        if seconds <= 0.0 {
            return HashMap::new();
        }
        last.iter()
            .map(|(route, (total, errors))| {
                let (total_before, errors_before) = first.get(route).copied().unwrap_or((0, 0));
                let requests = total.saturating_sub(total_before);
                let failed = errors.saturating_sub(errors_before);
                #[allow(clippy::cast_precision_loss)] // rates, for people
                let rate = RouteRate {
                    per_second: requests as f64 / seconds,
                    error_ratio: (requests > 0).then(|| failed as f64 / requests as f64),
                };
                (route.clone(), rate)
            })
            .collect()
    }
}

/// `gateway_requests_total` summed by route: all answers, and the 5xx ones.
fn totals() -> Totals {
    let mut totals = Totals::new();
    for (route, code, count) in metrics::requests_by_route_and_code() {
        let entry = totals.entry(route).or_default();
        entry.0 += count;
        if code.starts_with('5') {
            entry.1 += count;
        }
    }
    totals
}

/// The background task that samples the counters every few seconds.
pub(crate) struct Sampler(pub(crate) std::sync::Arc<Traffic>);

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.0.sample();
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_span_the_samples_and_count_5xx_per_route() {
        let traffic = Traffic::default();
        let t0 = Instant::now();
        let totals = |pairs: &[(&str, u64, u64)]| -> Totals {
            pairs
                .iter()
                .map(|(r, n, e)| ((*r).to_owned(), (*n, *e)))
                .collect()
        };
        {
            let mut samples = traffic.samples.lock().unwrap();
            samples.push_back((t0, totals(&[("api", 100, 0)])));
            samples.push_back((
                t0 + Duration::from_secs(10),
                totals(&[("api", 150, 5), ("new", 20, 0)]),
            ));
        }
        let rates = traffic.last_minute();
        assert_eq!(
            rates["api"],
            RouteRate {
                per_second: 5.0,
                error_ratio: Some(0.1)
            }
        );
        assert_eq!(
            rates["new"].per_second, 2.0,
            "a route new since the first sample"
        );
        assert_eq!(Traffic::default().last_minute(), HashMap::new());
    }
}
