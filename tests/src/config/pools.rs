//! `pools:`.

use std::fmt::Display;
use std::path::Path;

use serde::Serialize;

use super::{path_text, setters, strings, Dur};
use crate::upstream::Upstream;

/// One entry of `pools:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pool {
    /// `"host:port"` strings, or `{ address, weight }` maps.
    pub endpoints: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_interval: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_grace: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<Queue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight_per_endpoint: Option<usize>,
    /// `{ min_in_flight, latency }`, as in gateway.yaml.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_limit: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_secret: Option<ForwardSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PoolTls>,
}

/// `pools.<name>.tls`: the endpoints speak HTTPS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl PoolTls {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(verify: bool);
    setters!(into sni: String, ca_file: std::path::PathBuf);
}

impl Pool {
    /// A pool of `host:port` endpoints (addresses or names to resolve).
    pub fn endpoints<A: Display>(addrs: impl IntoIterator<Item = A>) -> Self {
        Self {
            endpoints: strings(addrs).into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// A pool of the test upstreams' addresses, each with its weight.
    pub fn weighted(upstreams: &[(&Upstream, u32)]) -> Self {
        Self {
            endpoints: upstreams
                .iter()
                .map(|(u, weight)| {
                    serde_json::json!({ "address": u.addr.to_string(), "weight": weight })
                })
                .collect(),
            ..Self::default()
        }
    }

    /// A pool of the test upstreams' addresses.
    pub fn upstreams(upstreams: &[&Upstream]) -> Self {
        Self::endpoints(upstreams.iter().map(|u| u.addr))
    }

    setters!(
        balance: Balance,
        timeouts: Timeouts,
        health_check: HealthCheck,
        circuit_breaker: CircuitBreaker,
        retries: Retries,
        max_in_flight: usize,
        queue: Queue,
        max_in_flight_per_endpoint: usize,
        adaptive_limit: serde_json::Value,
        forward_secret: ForwardSecret,
        tls: PoolTls,
    );
    setters!(into resolve_interval: Dur, dns_grace: Dur, hash_key: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    Random,
    ConsistentHash,
}

/// `pools.<name>.timeouts`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Dur>,
}

impl Timeouts {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(into connect: Dur, read: Dur, write: Dur, idle: Dur);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

/// `pools.<name>.health_check`: active checks.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<usize>,
}

impl HealthCheck {
    /// A check that only connects.
    pub fn tcp() -> Self {
        Self::of(HealthCheckKind::Tcp)
    }

    /// A `GET path` check.
    pub fn http(path: &str) -> Self {
        Self {
            path: Some(path.to_owned()),
            ..Self::of(HealthCheckKind::Http)
        }
    }

    fn of(kind: HealthCheckKind) -> Self {
        Self {
            kind,
            path: None,
            host: None,
            expect_status: None,
            interval: None,
            timeout: None,
            healthy_threshold: None,
            unhealthy_threshold: None,
        }
    }

    /// Set `expect_status`: the statuses that count as healthy.
    pub fn expect_status(mut self, statuses: &[u16]) -> Self {
        self.expect_status = Some(statuses.to_vec());
        self
    }

    setters!(healthy_threshold: usize, unhealthy_threshold: usize);
    setters!(into host: String, interval: Dur, timeout: Dur);
}

/// `pools.<name>.circuit_breaker`: one breaker per endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CircuitBreaker {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_for: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_for: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_statuses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejected_percent: Option<u8>,
}

impl CircuitBreaker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A breaker that never opens.
    pub fn off() -> Self {
        Self::new().consecutive_failures(0)
    }

    setters!(
        consecutive_failures: u32,
        failure_ratio: f64,
        min_requests: u32,
        half_open_probes: u32,
        max_ejected_percent: u8,
    );
    setters!(into window: Dur, open_for: Dur, max_open_for: Dur);
}

/// `pools.<name>.retries`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Retries {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_on_reset: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_status: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudget>,
}

impl Retries {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `on_status`: the upstream statuses retried.
    pub fn on_status(mut self, statuses: &[u16]) -> Self {
        self.on_status = Some(statuses.to_vec());
        self
    }

    setters!(attempts: usize, idempotent_on_reset: bool, budget: RetryBudget);
    setters!(into backoff: Dur, max_backoff: Dur, replay_body: String);
}

/// `pools.<name>.retries.budget`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryBudget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_per_second: Option<u32>,
}

impl RetryBudget {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(percent: f64, min_per_second: u32);
}

/// `pools.<name>.queue`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Queue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl Queue {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(size: usize);
    setters!(into timeout: Dur);
}

/// `pools.<name>.forward_secret`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForwardSecret {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

impl ForwardSecret {
    /// The secret is the content of `path`.
    pub fn secret_file(path: impl AsRef<Path>) -> Self {
        Self {
            secret_file: Some(path_text(path)),
            ..Self::default()
        }
    }

    /// The secret is the value of the environment variable `var`.
    pub fn secret_env(var: &str) -> Self {
        Self {
            secret_env: Some(var.to_owned()),
            ..Self::default()
        }
    }

    setters!(into header: String);
}
