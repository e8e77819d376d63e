//! `pools:`.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, ByteSize};

/// One entry of `pools:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolFile {
    pub(crate) endpoints: Vec<EndpointFile>,
    #[serde(default = "default_resolve_interval", deserialize_with = "duration")]
    pub(crate) resolve_interval: Duration,
    #[serde(default = "default_dns_grace", deserialize_with = "duration")]
    pub(crate) dns_grace: Duration,
    #[serde(default)]
    pub(crate) balance: BalanceFile,
    #[serde(default)]
    pub(crate) hash_key: Option<String>,
    #[serde(default)]
    pub(crate) timeouts: TimeoutsFile,
    #[serde(default)]
    pub(crate) health_check: Option<HealthCheckFile>,
    /// `passive_health` is the older name of the same section.
    #[serde(default, alias = "passive_health")]
    pub(crate) circuit_breaker: CircuitBreakerFile,
    #[serde(default)]
    pub(crate) retries: RetriesFile,
    /// Requests this pool takes at once; beyond it they queue, then get 503.
    #[serde(default)]
    pub(crate) max_in_flight: Option<usize>,
    #[serde(default)]
    pub(crate) queue: Option<QueueFile>,
    /// With `max_in_flight`: lower the limit while the pool answers slowly.
    #[serde(default)]
    pub(crate) adaptive_limit: Option<AdaptiveLimitFile>,
    /// Requests one endpoint takes at once; an endpoint at it is skipped.
    #[serde(default)]
    pub(crate) max_in_flight_per_endpoint: Option<usize>,
    /// A secret sent to this pool with forwarded claims, so its endpoints can tell the
    /// gateway from a client that reached them directly.
    #[serde(default)]
    pub(crate) forward_secret: Option<ForwardSecretFile>,
    #[serde(default)]
    pub(crate) tls: Option<UpstreamTlsFile>,
}

/// One entry of `pools.<name>.endpoints`: `"host:port"`, or
/// `{ address: "host:port", weight: 3 }`.
#[derive(Debug)]
pub(crate) struct EndpointFile {
    pub(crate) address: String,
    pub(crate) weight: u32,
}

impl<'de> Deserialize<'de> for EndpointFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The long form, with its own unknown-key errors.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Weighted {
            address: String,
            #[serde(default = "one_u32")]
            weight: u32,
        }

        struct Either;

        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = EndpointFile;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an endpoint such as \"backend:8080\" or { address: \"backend:8080\", weight: 3 }")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<EndpointFile, E> {
                Ok(EndpointFile {
                    address: text.to_owned(),
                    weight: 1,
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EndpointFile, A::Error> {
                let w = Weighted::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(EndpointFile {
                    address: w.address,
                    weight: w.weight,
                })
            }
        }

        d.deserialize_any(Either)
    }
}

fn one_u32() -> u32 {
    1
}

/// `pools.<name>.tls`: the endpoints speak HTTPS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamTlsFile {
    #[serde(default)]
    pub(crate) sni: Option<String>,
    #[serde(default = "yes")]
    pub(crate) verify: bool,
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_resolve_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_dns_grace() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BalanceFile {
    #[default]
    RoundRobin,
    Random,
    ConsistentHash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TimeoutsFile {
    #[serde(deserialize_with = "duration")]
    pub(crate) connect: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) read: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) write: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) idle: Duration,
}

impl Default for TimeoutsFile {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckFile {
    pub(crate) kind: HealthCheckKind,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) expect_status: Option<Vec<u16>>,
    #[serde(default = "default_check_interval", deserialize_with = "duration")]
    pub(crate) interval: Duration,
    #[serde(default = "default_check_timeout", deserialize_with = "duration")]
    pub(crate) timeout: Duration,
    #[serde(default = "one")]
    pub(crate) healthy_threshold: usize,
    #[serde(default = "two")]
    pub(crate) unhealthy_threshold: usize,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}

fn one() -> usize {
    1
}

fn two() -> usize {
    2
}

/// `pools.<name>.circuit_breaker`: one breaker per endpoint, fed by real traffic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CircuitBreakerFile {
    /// Failures in a row that open an endpoint's breaker; 0 disables this rule.
    pub(crate) consecutive_failures: u32,
    /// The share of failed requests over `window` that opens it, with `min_requests`.
    pub(crate) failure_ratio: Option<f64>,
    #[serde(deserialize_with = "duration")]
    pub(crate) window: Duration,
    pub(crate) min_requests: u32,
    /// How long a breaker stays open the first time; `cooldown` is the older name.
    #[serde(alias = "cooldown", deserialize_with = "duration")]
    pub(crate) open_for: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) max_open_for: Duration,
    pub(crate) half_open_probes: u32,
    /// Statuses that count as failures: codes, or `5xx`.
    pub(crate) failure_statuses: Vec<StatusPattern>,
    pub(crate) max_ejected_percent: u8,
}

impl Default for CircuitBreakerFile {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: None,
            window: Duration::from_secs(10),
            min_requests: 20,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(300),
            half_open_probes: 1,
            failure_statuses: vec![StatusPattern::Text("5xx".to_owned())],
            max_ejected_percent: 50,
        }
    }
}

/// A status code, or a class such as `5xx`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StatusPattern {
    Code(u16),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetriesFile {
    /// Further attempts after the first one, each on a different endpoint when possible.
    pub(crate) attempts: usize,
    /// Retry idempotent methods after a reset before any response byte.
    pub(crate) idempotent_on_reset: bool,
    /// Upstream statuses that are retried for idempotent methods.
    pub(crate) on_status: Vec<u16>,
    #[serde(deserialize_with = "duration")]
    pub(crate) backoff: Duration,
    #[serde(deserialize_with = "duration")]
    pub(crate) max_backoff: Duration,
    /// Largest request body kept to replay on a retry.
    pub(crate) replay_body: ByteSize,
    pub(crate) budget: RetryBudgetFile,
    /// A request header that makes any method safe to retry (the upstream deduplicates by
    /// it), e.g. `Idempotency-Key`.
    pub(crate) idempotency_header: Option<String>,
}

impl Default for RetriesFile {
    fn default() -> Self {
        Self {
            attempts: 2,
            idempotent_on_reset: true,
            on_status: Vec::new(),
            backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(250),
            replay_body: ByteSize(64 * 1024),
            budget: RetryBudgetFile::default(),
            idempotency_header: None,
        }
    }
}

/// `pools.<name>.retries.budget`: retries as a share of the pool's request rate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetryBudgetFile {
    pub(crate) percent: f64,
    pub(crate) min_per_second: u32,
}

impl Default for RetryBudgetFile {
    fn default() -> Self {
        Self {
            percent: 20.0,
            min_per_second: 10,
        }
    }
}

/// `pools.<name>.adaptive_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdaptiveLimitFile {
    #[serde(default = "one_usize")]
    pub(crate) min_in_flight: usize,
    #[serde(deserialize_with = "duration")]
    pub(crate) latency: Duration,
}

fn one_usize() -> usize {
    1
}

/// `pools.<name>.queue`: where requests wait when `max_in_flight` is reached.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QueueFile {
    pub(crate) size: usize,
    #[serde(deserialize_with = "duration")]
    pub(crate) timeout: Duration,
}

impl Default for QueueFile {
    fn default() -> Self {
        Self {
            size: 100,
            timeout: Duration::from_secs(1),
        }
    }
}

/// `pools.<name>.forward_secret`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardSecretFile {
    #[serde(default = "default_secret_header")]
    pub(crate) header: String,
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
}

fn default_secret_header() -> String {
    "X-Gateway-Secret".to_owned()
}
