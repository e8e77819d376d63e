//! `pools:`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ByteSize, Human};

/// One entry of `pools:`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolFile {
    /// `ip:port`, `[v6]:port` or `hostname:port` (a hostname expands to every address it
    /// resolves to), or `{ address, weight }`.
    #[schemars(length(min = 1))]
    pub(crate) endpoints: Vec<EndpointFile>,
    /// How often host names are resolved again (DNS TTLs are ignored).
    #[serde(default = "default_resolve_interval", with = "Human")]
    pub(crate) resolve_interval: Duration,
    /// How long a name that stops resolving keeps its last addresses.
    #[serde(default = "default_dns_grace", with = "Human")]
    pub(crate) dns_grace: Duration,
    /// How an endpoint is picked for each request.
    #[serde(default)]
    pub(crate) balance: BalanceFile,
    /// With `balance: consistent_hash`: `client_ip`, `path` or `header:<name>`.
    #[serde(default)]
    pub(crate) hash_key: Option<String>,
    /// Timeouts of each upstream connection.
    #[serde(default)]
    pub(crate) timeouts: TimeoutsFile,
    /// Active checks; without them every endpoint counts as healthy.
    #[serde(default)]
    pub(crate) health_check: Option<HealthCheckFile>,
    /// One breaker per endpoint, fed by real traffic (`passive_health` is the older name).
    #[serde(default, alias = "passive_health")]
    pub(crate) circuit_breaker: CircuitBreakerFile,
    /// When a failed attempt is tried again, on another endpoint.
    #[serde(default)]
    pub(crate) retries: RetriesFile,
    /// Requests this pool takes at once (per gateway process); beyond it they queue, then
    /// get 503.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub(crate) max_in_flight: Option<usize>,
    /// With `max_in_flight`: how many requests wait for a place, and how long
    /// (`{ size: 100, timeout: 1s }` when left out).
    #[serde(default)]
    pub(crate) queue: Option<QueueFile>,
    /// With `max_in_flight`: lower the limit while the pool answers slowly.
    #[serde(default)]
    pub(crate) adaptive_limit: Option<AdaptiveLimitFile>,
    /// Requests one endpoint takes at once; an endpoint at it is skipped.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub(crate) max_in_flight_per_endpoint: Option<usize>,
    /// A secret sent to this pool with forwarded claims, so its endpoints can tell the
    /// gateway from a client that reached them directly.
    #[serde(default)]
    pub(crate) forward_secret: Option<ForwardSecretFile>,
    /// The endpoints speak HTTPS; plain HTTP when left out.
    #[serde(default)]
    pub(crate) tls: Option<UpstreamTlsFile>,
}

/// One entry of `pools.<name>.endpoints`: `"host:port"`, or
/// `{ address: "host:port", weight: 3 }`.
#[derive(Debug, Serialize)]
pub(crate) struct EndpointFile {
    pub(crate) address: String,
    pub(crate) weight: u32,
}

/// The long form of an endpoint.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WeightedEndpointFile {
    /// `ip:port`, `[v6]:port` or `hostname:port`.
    address: String,
    /// Shares of the pool's traffic each of its addresses gets (1 to 1000).
    #[serde(default = "one_u32")]
    #[schemars(range(min = 1, max = 1000))]
    weight: u32,
}

impl JsonSchema for EndpointFile {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "string", "description": "`ip:port`, `[v6]:port` or `hostname:port`." },
                generator.subschema_for::<WeightedEndpointFile>(),
            ],
        })
    }
}

impl<'de> Deserialize<'de> for EndpointFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
                let w = WeightedEndpointFile::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamTlsFile {
    /// The name sent as SNI and checked against the endpoint's certificate; the first
    /// endpoint's host when left out.
    #[serde(default)]
    pub(crate) sni: Option<String>,
    /// Verify the chain and the name (a failure is a 502); `false` only for testing.
    #[serde(default = "yes")]
    pub(crate) verify: bool,
    /// A PEM bundle of roots trusted for this pool (a private CA); the system's roots when
    /// left out.
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

/// `round_robin`, `random`, or `consistent_hash` (by `hash_key`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BalanceFile {
    #[default]
    RoundRobin,
    Random,
    ConsistentHash,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TimeoutsFile {
    /// TCP (and TLS) connect timeout; 504 when hit.
    #[serde(with = "Human")]
    pub(crate) connect: Duration,
    /// Longest wait for upstream bytes; 504 when hit.
    #[serde(with = "Human")]
    pub(crate) read: Duration,
    /// Longest wait to send to the upstream.
    #[serde(with = "Human")]
    pub(crate) write: Duration,
    /// Idle keep-alive connections are closed after this; keep it below the upstream's own
    /// keep-alive timeout.
    #[serde(with = "Human")]
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

/// `tcp` (a connect) or `http` (a GET of `path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckFile {
    /// `tcp` (a connect) or `http` (a GET of `path`).
    pub(crate) kind: HealthCheckKind,
    /// `http` only: the path checked (`/` when left out).
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// `http` only: the `Host` header sent (`localhost` when left out).
    #[serde(default)]
    pub(crate) host: Option<String>,
    /// `http` only: the statuses that pass (any 2xx when left out).
    #[serde(default)]
    pub(crate) expect_status: Option<Vec<u16>>,
    /// Time between checks.
    #[serde(default = "default_check_interval", with = "Human")]
    pub(crate) interval: Duration,
    /// A check that takes longer fails.
    #[serde(default = "default_check_timeout", with = "Human")]
    pub(crate) timeout: Duration,
    /// Passes in a row that bring an unhealthy endpoint back.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub(crate) healthy_threshold: usize,
    /// Failures in a row that take a healthy endpoint out.
    #[serde(default = "two")]
    #[schemars(range(min = 1))]
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CircuitBreakerFile {
    /// Failures in a row that open an endpoint's breaker; 0 disables this rule.
    pub(crate) consecutive_failures: u32,
    /// The share of failed requests over `window` that opens it, once there were
    /// `min_requests` (above 0, at most 1).
    #[schemars(range(max = 1.0))]
    pub(crate) failure_ratio: Option<f64>,
    /// The sliding window of `failure_ratio`.
    #[serde(with = "Human")]
    pub(crate) window: Duration,
    /// Requests an endpoint must have had over `window` before `failure_ratio` applies.
    pub(crate) min_requests: u32,
    /// How long a breaker stays open the first time; `cooldown` is the older name.
    #[serde(alias = "cooldown", with = "Human")]
    pub(crate) open_for: Duration,
    /// Each opening in a row doubles the time open, up to this.
    #[serde(with = "Human")]
    pub(crate) max_open_for: Duration,
    /// Requests let through at once to a half-open endpoint.
    #[schemars(range(min = 1))]
    pub(crate) half_open_probes: u32,
    /// Statuses that count as failures: codes, or classes such as `5xx`.
    pub(crate) failure_statuses: Vec<StatusPattern>,
    /// At most this share of the pool's endpoints is open at once (never all of them).
    #[schemars(range(max = 100))]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum StatusPattern {
    Code(u16),
    Text(String),
}

impl JsonSchema for StatusPattern {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusPattern".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A status code such as `503`, or a class such as `5xx`.",
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^[1-5]xx$" },
            ],
        })
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetriesFile {
    /// Further attempts after the first one, each on a different endpoint when possible
    /// (at most 10).
    #[schemars(range(max = 10))]
    pub(crate) attempts: usize,
    /// Retry idempotent methods after a reset before any response byte.
    pub(crate) idempotent_on_reset: bool,
    /// Upstream statuses (4xx or 5xx) that are retried for idempotent methods.
    pub(crate) on_status: Vec<u16>,
    /// A retry after an answer or a reset first waits a random time up to
    /// `backoff × 2^(n-1)`.
    #[serde(with = "Human")]
    pub(crate) backoff: Duration,
    /// The longest wait before a retry.
    #[serde(with = "Human")]
    pub(crate) max_backoff: Duration,
    /// Largest request body kept to replay on a retry (at most 64KiB).
    pub(crate) replay_body: ByteSize,
    /// Retries as a share of the pool's request rate, so retries cannot multiply an outage.
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetryBudgetFile {
    /// Retries may add at most this percentage of the pool's request rate over the last
    /// second.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub(crate) percent: f64,
    /// Retries allowed per second whatever the request rate.
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdaptiveLimitFile {
    /// The limit never goes below this.
    #[serde(default = "one_usize")]
    #[schemars(range(min = 1))]
    pub(crate) min_in_flight: usize,
    /// An answer slower than this (or a read timeout, or a 503 shedding load) cuts the
    /// limit by a tenth.
    #[serde(with = "Human")]
    pub(crate) latency: Duration,
}

fn one_usize() -> usize {
    1
}

/// `pools.<name>.queue`: where requests wait when `max_in_flight` is reached.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct QueueFile {
    /// Requests that may wait at once; more get 503 with `Retry-After: 1`.
    pub(crate) size: usize,
    /// Longest wait for a place; then 503 with `Retry-After: 1`.
    #[serde(with = "Human")]
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardSecretFile {
    /// The request header that carries the secret.
    #[serde(default = "default_secret_header")]
    pub(crate) header: String,
    /// A file holding the secret (16 or more bytes of visible ASCII), relative to the
    /// config file.
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
}

fn default_secret_header() -> String {
    "X-Gateway-Secret".to_owned()
}
