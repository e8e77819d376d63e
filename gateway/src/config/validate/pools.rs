//! `pools:`: endpoints, balancing, timeouts, health checks, retries, the forward secret, TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, StatusCode};

use super::{is_reserved_header, require_positive, Errors};
use crate::config::file::{
    AdaptiveLimitFile, BalanceFile, CircuitBreakerFile, ForwardSecretFile, HealthCheckFile,
    HealthCheckKind, PoolFile, QueueFile, RetriesFile, StatusPattern,
};
use crate::config::tls::load_ca_file;
use crate::config::{
    AdaptiveLimit, Admission, Balance, CircuitBreaker, EndpointSpec, FailureRatio, ForwardSecret,
    HashKey, HealthCheck, PoolConfig, Probe, Retries, RetryBudget, StatusSet, Timeouts,
    UpstreamTls, WeightedEndpoint,
};

/// The largest endpoint weight: the balancer spreads each endpoint over as many slots as
/// its weight.
const MAX_WEIGHT: u16 = 1000;

/// The most retries a pool may ask for; more only multiplies load on a failing upstream.
pub(super) const MAX_RETRY_ATTEMPTS: usize = 10;

/// `ip:port`, `[v6]:port` or `hostname:port`.
pub(crate) fn parse_endpoint(text: &str) -> Result<EndpointSpec, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(EndpointSpec::Addr(addr));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid endpoint {text:?}, expected ip:port or hostname:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port in endpoint {text:?}, expected 1-65535"))?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid_host {
        return Err(format!("invalid host name in endpoint {text:?}"));
    }
    Ok(EndpointSpec::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}

pub(super) fn check_pool(
    errs: &mut Errors<'_>,
    name: String,
    p: PoolFile,
    base_dir: &Path,
) -> Option<PoolConfig> {
    errs.scoped(|errs| {
        let at = |key: &str| format!("pools.{name}.{key}");

        if p.endpoints.is_empty() {
            errs.push(at("endpoints"), "must list at least one endpoint");
        }
        let mut endpoints: Vec<WeightedEndpoint> = Vec::new();
        for (i, entry) in p.endpoints.iter().enumerate() {
            let text = &entry.address;
            let weight = match u16::try_from(entry.weight) {
                Ok(w) if (1..=MAX_WEIGHT).contains(&w) => w,
                _ => {
                    errs.push(
                        format!("pools.{name}.endpoints[{i}].weight"),
                        format!("must be 1 to {MAX_WEIGHT}, got {}", entry.weight),
                    );
                    continue;
                }
            };
            match parse_endpoint(text) {
                Ok(spec) if endpoints.iter().any(|e| e.spec == spec) => {
                    errs.push(
                        format!("pools.{name}.endpoints[{i}]"),
                        format!("duplicate endpoint {text:?}"),
                    );
                }
                Ok(spec) => endpoints.push(WeightedEndpoint { spec, weight }),
                Err(message) => errs.push(format!("pools.{name}.endpoints[{i}]"), message),
            }
        }
        require_positive(errs, &at("resolve_interval"), p.resolve_interval);
        require_positive(errs, &at("dns_grace"), p.dns_grace);

        let balance = match (p.balance, p.hash_key.as_deref()) {
            (BalanceFile::RoundRobin, None) => Some(Balance::RoundRobin),
            (BalanceFile::Random, None) => Some(Balance::Random),
            (BalanceFile::ConsistentHash, Some(key)) => match parse_hash_key(key) {
                Ok(key) => Some(Balance::ConsistentHash(key)),
                Err(message) => {
                    errs.push(at("hash_key"), message);
                    None
                }
            },
            (BalanceFile::ConsistentHash, None) => {
                errs.push(
                    at("balance"),
                    "consistent_hash needs hash_key: client_ip, path or header:<name>",
                );
                None
            }
            (_, Some(key)) => {
                errs.push(
                    at("hash_key"),
                    format!("hash_key {key:?} is only used with balance: consistent_hash"),
                );
                None
            }
        };

        let t = &p.timeouts;
        for (key, value) in [
            ("connect", t.connect),
            ("read", t.read),
            ("write", t.write),
            ("idle", t.idle),
        ] {
            require_positive(errs, &at(&format!("timeouts.{key}")), value);
        }

        let health_check = p
            .health_check
            .and_then(|hc| check_health(errs, &at("health_check"), hc));

        let breaker = check_breaker(errs, &at("circuit_breaker"), &p.circuit_breaker);
        let retries = check_retries(errs, &at("retries"), &p.retries);
        let admission = check_admission(errs, &at, p.max_in_flight, p.queue, p.adaptive_limit);
        if p.max_in_flight_per_endpoint == Some(0) {
            errs.push(
                at("max_in_flight_per_endpoint"),
                "must be at least 1, got 0",
            );
        }

        let forward_secret = p
            .forward_secret
            .and_then(|f| check_forward_secret(errs, &at("forward_secret"), f, base_dir));
        let tls = p.tls.and_then(|t| {
            // The SNI names the host the certificate must be for: by default the first
            // endpoint's host, which is what a client of that endpoint would ask for.
            let sni = t.sni.or_else(|| {
                endpoints.first().map(|e| match &e.spec {
                    EndpointSpec::Addr(addr) => addr.ip().to_string(),
                    EndpointSpec::Name { host, .. } => host.clone(),
                })
            })?;
            let ca = match t.ca_file {
                Some(file) => match load_ca_file(&base_dir.join(file)) {
                    Ok(ca) => Some(ca),
                    Err(e) => {
                        errs.push(at("tls.ca_file"), e);
                        return None;
                    }
                },
                None => None,
            };
            Some(UpstreamTls {
                sni,
                verify: t.verify,
                ca,
            })
        });

        Some(PoolConfig {
            forward_secret,
            tls,
            name,
            endpoints,
            resolve_interval: p.resolve_interval,
            dns_grace: p.dns_grace,
            balance: balance?,
            timeouts: Timeouts {
                connect: t.connect,
                read: t.read,
                write: t.write,
                idle: t.idle,
            },
            health_check,
            breaker: breaker?,
            retries: retries?,
            admission,
            max_in_flight_per_endpoint: p.max_in_flight_per_endpoint,
        })
    })
}

/// Statuses from codes and classes (`5xx`); every error is pushed under `at[i]`.
fn status_set(errs: &mut Errors<'_>, at: &str, patterns: &[StatusPattern]) -> StatusSet {
    let mut set = StatusSet::default();
    for (i, pattern) in patterns.iter().enumerate() {
        match pattern {
            StatusPattern::Code(code) if (100..600).contains(code) => set.insert(*code),
            StatusPattern::Text(class)
                if class.len() == 3
                    && class.ends_with("xx")
                    && matches!(class.as_bytes()[0], b'1'..=b'5') =>
            {
                let base = u16::from(class.as_bytes()[0] - b'0') * 100;
                for code in base..base + 100 {
                    set.insert(code);
                }
            }
            StatusPattern::Code(code) => errs.push(
                format!("{at}[{i}]"),
                format!("not an HTTP status code: {code}"),
            ),
            StatusPattern::Text(text) => errs.push(
                format!("{at}[{i}]"),
                format!("expected a status code or a class such as 5xx, got {text:?}"),
            ),
        }
    }
    set
}

/// A duration that doubles up to a ceiling: the first must be positive, the ceiling at least
/// the first.
fn require_growth(
    errs: &mut Errors<'_>,
    at: &str,
    (first_key, first): (&str, Duration),
    (max_key, max): (&str, Duration),
) {
    require_positive(errs, &format!("{at}.{first_key}"), first);
    if max < first {
        errs.push(
            format!("{at}.{max_key}"),
            format!("must be at least {first_key} ({first:?}), got {max:?}"),
        );
    }
}

fn check_breaker(
    errs: &mut Errors<'_>,
    at: &str,
    b: &CircuitBreakerFile,
) -> Option<CircuitBreaker> {
    errs.scoped(|errs| {
        let failure_statuses =
            status_set(errs, &format!("{at}.failure_statuses"), &b.failure_statuses);
        let failure_ratio = match b.failure_ratio {
            Some(ratio) if !(ratio > 0.0 && ratio <= 1.0) => {
                errs.push(
                    format!("{at}.failure_ratio"),
                    format!("must be above 0 and at most 1, got {ratio}"),
                );
                None
            }
            Some(ratio) => {
                require_positive(errs, &format!("{at}.window"), b.window);
                if b.min_requests == 0 {
                    errs.push(format!("{at}.min_requests"), "must be at least 1, got 0");
                }
                Some(FailureRatio {
                    ratio,
                    window: b.window,
                    min_requests: b.min_requests,
                })
            }
            None => None,
        };
        require_growth(
            errs,
            at,
            ("open_for", b.open_for),
            ("max_open_for", b.max_open_for),
        );
        if b.half_open_probes == 0 {
            errs.push(
                format!("{at}.half_open_probes"),
                "must be at least 1, got 0",
            );
        }
        if b.max_ejected_percent > 100 {
            errs.push(
                format!("{at}.max_ejected_percent"),
                format!("must be at most 100, got {}", b.max_ejected_percent),
            );
        }
        Some(CircuitBreaker {
            consecutive_failures: b.consecutive_failures,
            failure_ratio,
            open_for: b.open_for,
            max_open_for: b.max_open_for,
            half_open_probes: b.half_open_probes,
            failure_statuses,
            max_ejected_percent: b.max_ejected_percent,
        })
    })
}

/// What Pingora keeps of a request body to replay it (`BODY_BUF_LIMIT`).
const MAX_REPLAY_BODY: u64 = 64 * 1024;

fn check_retries(errs: &mut Errors<'_>, at: &str, r: &RetriesFile) -> Option<Retries> {
    errs.scoped(|errs| {
        if r.attempts > MAX_RETRY_ATTEMPTS {
            errs.push(
                format!("{at}.attempts"),
                format!("must be at most {MAX_RETRY_ATTEMPTS}, got {}", r.attempts),
            );
        }
        let mut on_status = StatusSet::default();
        for (i, code) in r.on_status.iter().enumerate() {
            if (400..600).contains(code) {
                on_status.insert(*code);
            } else {
                errs.push(
                    format!("{at}.on_status[{i}]"),
                    format!("only 4xx and 5xx answers can be retried, got {code}"),
                );
            }
        }
        require_growth(
            errs,
            at,
            ("backoff", r.backoff),
            ("max_backoff", r.max_backoff),
        );
        if r.replay_body.0 > MAX_REPLAY_BODY {
            errs.push(
                format!("{at}.replay_body"),
                format!(
                    "must be at most 64KiB (what the proxy keeps of a body), got {} bytes",
                    r.replay_body.0
                ),
            );
        }
        let percent = r.budget.percent;
        if !(0.0..=100.0).contains(&percent) {
            errs.push(
                format!("{at}.budget.percent"),
                format!("must be between 0 and 100, got {percent}"),
            );
        }
        let idempotency_header = r.idempotency_header.as_ref().and_then(|name| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| {
                    errs.push(
                        format!("{at}.idempotency_header"),
                        format!("invalid header name {name:?}"),
                    );
                })
                .ok()
        });
        Some(Retries {
            idempotency_header,
            attempts: r.attempts,
            idempotent_on_reset: r.idempotent_on_reset,
            on_status,
            backoff: r.backoff,
            max_backoff: r.max_backoff,
            replay_body: r.replay_body.0,
            budget: RetryBudget {
                percent,
                min_per_second: r.budget.min_per_second,
            },
        })
    })
}

fn check_admission(
    errs: &mut Errors<'_>,
    at: &dyn Fn(&str) -> String,
    max_in_flight: Option<usize>,
    queue: Option<QueueFile>,
    adaptive: Option<AdaptiveLimitFile>,
) -> Option<Admission> {
    let Some(max_in_flight) = max_in_flight else {
        for (key, set) in [
            ("queue", queue.is_some()),
            ("adaptive_limit", adaptive.is_some()),
        ] {
            if set {
                errs.push(at(key), "only applies with max_in_flight");
            }
        }
        return None;
    };
    let adaptive = adaptive.and_then(|a| {
        require_positive(errs, &at("adaptive_limit.latency"), a.latency);
        if a.min_in_flight == 0 || a.min_in_flight > max_in_flight {
            errs.push(
                at("adaptive_limit.min_in_flight"),
                format!(
                    "must be 1 to max_in_flight ({max_in_flight}), got {}",
                    a.min_in_flight
                ),
            );
            return None;
        }
        Some(AdaptiveLimit {
            min_in_flight: a.min_in_flight,
            latency: a.latency,
        })
    });
    let queue = queue.unwrap_or_default();
    if max_in_flight == 0 {
        errs.push(at("max_in_flight"), "must be at least 1, got 0");
        return None;
    }
    if queue.size > 0 {
        require_positive(errs, &at("queue.timeout"), queue.timeout);
    }
    Some(Admission {
        max_in_flight,
        queue: queue.size,
        queue_timeout: queue.timeout,
        adaptive,
    })
}

pub(super) fn parse_hash_key(text: &str) -> Result<HashKey, String> {
    match text {
        "client_ip" => Ok(HashKey::ClientIp),
        "path" => Ok(HashKey::Path),
        other => {
            let name = other.strip_prefix("header:").ok_or_else(|| {
                format!("unknown hash_key {other:?}, expected client_ip, path or header:<name>")
            })?;
            HeaderName::from_bytes(name.trim().as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("invalid header name {name:?} in hash_key"))
        }
    }
}

pub(super) fn check_health(
    errs: &mut Errors<'_>,
    at: &str,
    hc: HealthCheckFile,
) -> Option<HealthCheck> {
    errs.scoped(|errs| {
        require_positive(errs, &format!("{at}.interval"), hc.interval);
        require_positive(errs, &format!("{at}.timeout"), hc.timeout);
        for (key, value) in [
            ("healthy_threshold", hc.healthy_threshold),
            ("unhealthy_threshold", hc.unhealthy_threshold),
        ] {
            if value == 0 {
                errs.push(format!("{at}.{key}"), "must be at least 1, got 0");
            }
        }
        let probe = match hc.kind {
            HealthCheckKind::Tcp => {
                for (key, set) in [
                    ("path", hc.path.is_some()),
                    ("host", hc.host.is_some()),
                    ("expect_status", hc.expect_status.is_some()),
                ] {
                    if set {
                        errs.push(format!("{at}.{key}"), "only applies to kind: http");
                    }
                }
                Probe::Tcp
            }
            HealthCheckKind::Http => {
                let path = hc.path.unwrap_or_else(|| "/".to_owned());
                if !path.starts_with('/') {
                    errs.push(
                        format!("{at}.path"),
                        format!("must start with '/', got {path:?}"),
                    );
                }
                let mut expect_status = Vec::new();
                for (i, code) in hc.expect_status.unwrap_or_default().into_iter().enumerate() {
                    match StatusCode::from_u16(code) {
                        Ok(status) if (100..600).contains(&code) => expect_status.push(status),
                        _ => errs.push(
                            format!("{at}.expect_status[{i}]"),
                            format!("not an HTTP status code: {code}"),
                        ),
                    }
                }
                Probe::Http {
                    path,
                    host: hc.host.unwrap_or_else(|| "localhost".to_owned()),
                    expect_status,
                }
            }
        };
        Some(HealthCheck {
            probe,
            interval: hc.interval,
            timeout: hc.timeout,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
        })
    })
}

/// `pools.<name>.forward_secret`: the header and the secret, read now (a missing or short secret is a
/// config error, not a surprise at the first request).
pub(super) fn check_forward_secret(
    errs: &mut Errors<'_>,
    at: &str,
    f: ForwardSecretFile,
    base_dir: &Path,
) -> Option<ForwardSecret> {
    let header = match HeaderName::from_bytes(f.header.as_bytes()) {
        Ok(name) if is_reserved_header(&name) => {
            errs.push(
                format!("{at}.header"),
                format!("{:?} is a header the gateway owns", f.header),
            );
            return None;
        }
        Ok(name) => name,
        Err(_) => {
            errs.push(
                format!("{at}.header"),
                format!("invalid header name {:?}", f.header),
            );
            return None;
        }
    };
    let secret = match (f.secret_file, f.secret_env) {
        (Some(file), None) => match std::fs::read(base_dir.join(&file)) {
            Ok(bytes) => bytes.trim_ascii().to_vec(),
            Err(e) => {
                errs.push(
                    format!("{at}.secret_file"),
                    format!("cannot read {file:?}: {e}"),
                );
                return None;
            }
        },
        (None, Some(var)) => match std::env::var(&var) {
            Ok(value) => value.trim().as_bytes().to_vec(),
            Err(_) => {
                errs.push(
                    format!("{at}.secret_env"),
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
        },
        _ => {
            errs.push(at, "needs exactly one of secret_file or secret_env");
            return None;
        }
    };
    if secret.len() < 16 {
        errs.push(at, "the secret must be at least 16 bytes");
        return None;
    }
    match http::HeaderValue::from_bytes(&secret) {
        Ok(value) => Some(ForwardSecret { header, value }),
        Err(_) => {
            errs.push(
                at,
                "the secret must be visible ASCII (it is sent as a header)",
            );
            None
        }
    }
}
