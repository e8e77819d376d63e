//! The serde mirror of `gateway.yaml`.
//!
//! These types exist only to be deserialized and handed to `validate`; nothing outside
//! `config` sees them. Every struct rejects unknown keys, and defaults live here so the
//! README reference and the code cannot drift apart silently.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The top level of `gateway.yaml`.
///
/// Sections stay untyped here so that one broken route or pool does not hide the errors of
/// the others: `config::load` deserializes each section (and each list element) on its own
/// and collects every failure.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopFile {
    #[serde(default)]
    pub(crate) server: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) listeners: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) limits: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) trusted_proxies: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) dns: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) jwt: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) rate_limiting: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) pools: Option<serde_yaml::Mapping>,
    #[serde(default)]
    pub(crate) routes: Option<Vec<serde_yaml::Value>>,
}

/// `server:`: process-level settings, translated into Pingora's `ServerConf`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerFile {
    /// Worker threads for the proxy service.
    pub(crate) threads: usize,
    /// Upper bound on how long SIGTERM waits for in-flight requests.
    #[serde(deserialize_with = "duration")]
    pub(crate) shutdown_grace: Duration,
    /// Idle upstream connections kept per worker thread (all pools together).
    pub(crate) upstream_keepalive_pool_size: usize,
    /// Read buffer per client connection. Pingora's default is 64 KiB, which makes 10k
    /// idle keep-alive clients cost 640 MiB.
    pub(crate) downstream_read_buffer: ByteSize,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            threads: 1,
            shutdown_grace: Duration::from_secs(8),
            upstream_keepalive_pool_size: 1024,
            downstream_read_buffer: ByteSize(8 * 1024),
        }
    }
}

/// `listeners:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ListenersFile {
    pub(crate) http: String,
    pub(crate) admin: String,
}

impl Default for ListenersFile {
    fn default() -> Self {
        Self {
            http: "0.0.0.0:80".into(),
            admin: "127.0.0.1:9091".into(),
        }
    }
}

/// `limits:`: request-shape limits enforced before routing, and client connection limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsFile {
    pub(crate) max_uri_bytes: usize,
    pub(crate) max_header_bytes: usize,
    /// Default request-body limit for every route.
    pub(crate) max_body_bytes: ByteSize,
    /// Longest time from the first byte of a request to the end of its header.
    #[serde(deserialize_with = "duration")]
    pub(crate) header_timeout: Duration,
    /// Longest a client connection may sit idle before (or between) requests.
    #[serde(deserialize_with = "duration")]
    pub(crate) idle_timeout: Duration,
    /// Client connections open at once on the public listener; more are closed at accept.
    pub(crate) max_connections: usize,
    /// Client connections open at once from one client address (IPv6: one
    /// `rate_limiting.ipv6_prefix` network); unset means no per-client cap.
    pub(crate) max_connections_per_client: Option<usize>,
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            // "10mb", as Express' body parser and the original stack's gateway had it.
            max_body_bytes: ByteSize(10 * 1024 * 1024),
            // nginx's client_header_timeout is 60 s; HAProxy's docs suggest 10 s for
            // `timeout http-request`, which slowloris protection needs.
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16_384,
            max_connections_per_client: None,
        }
    }
}

/// `dns:`: how pool host names are resolved.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DnsFile {
    /// `ip:port` of DNS servers to ask; empty means the system's resolv.conf.
    pub(crate) nameservers: Vec<String>,
}

/// `jwt:`: how bearer tokens are verified on routes with `auth: required | optional`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtFile {
    /// Accepted `iss` values; a token must carry one of them.
    pub(crate) issuers: Vec<String>,
    /// Accepted `aud` values; a token must name at least one of them.
    pub(crate) audiences: Vec<String>,
    #[serde(default = "default_leeway", deserialize_with = "duration")]
    pub(crate) leeway: Duration,
    /// Claims that must be present besides `exp`.
    #[serde(default = "default_required_claims")]
    pub(crate) required_claims: Vec<String>,
    /// Claim -> upstream header, e.g. `sub: X-User-Id`.
    #[serde(default)]
    pub(crate) forward_claims: serde_yaml::Mapping,
    #[serde(default)]
    pub(crate) jwks: Option<JwksFile>,
    #[serde(default)]
    pub(crate) keys: Vec<StaticKeyFile>,
    /// Signature checks allowed per client (tokens verified before are free).
    #[serde(default)]
    pub(crate) verification_limit: Option<VerificationLimitFile>,
}

/// `jwt.verification_limit`: like a rate limit, always per client address and local.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerificationLimitFile {
    pub(crate) rate: u64,
    #[serde(deserialize_with = "duration")]
    pub(crate) per: Duration,
    #[serde(default)]
    pub(crate) burst: Option<u64>,
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

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_required_claims() -> Vec<String> {
    vec!["sub".to_owned()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwksFile {
    /// `http://host:port/path`; or leave out and name a `pool` and `path`.
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) pool: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default = "default_jwks_refresh", deserialize_with = "duration")]
    pub(crate) refresh_interval: Duration,
    /// Shortest time between two fetches triggered by unknown key ids.
    #[serde(default = "default_jwks_cooldown", deserialize_with = "duration")]
    pub(crate) min_refresh_interval: Duration,
    #[serde(default = "default_jwks_timeout", deserialize_with = "duration")]
    pub(crate) timeout: Duration,
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_cooldown() -> Duration {
    Duration::from_secs(10)
}

fn default_jwks_timeout() -> Duration {
    Duration::from_secs(2)
}

/// A key given directly: a PEM or JWK public key file, or an HMAC secret (never the default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticKeyFile {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) pem_file: Option<String>,
    /// A JSON file holding one public JWK.
    #[serde(default)]
    pub(crate) jwk_file: Option<String>,
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
}

/// `rate_limiting:`: settings shared by every route's `rate_limits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RateLimitingFile {
    /// `redis://host:port[/db]` for `scope: cluster` limits.
    pub(crate) redis_url: Option<String>,
    /// Longest wait for Redis per decision before `fail_open` applies.
    #[serde(deserialize_with = "duration")]
    pub(crate) redis_timeout: Duration,
    pub(crate) key_prefix: String,
    /// Send `RateLimit-*` headers on allowed responses too (always on 429).
    pub(crate) headers_on_success: bool,
    /// Keys remembered per local limit; full buckets are forgotten first.
    pub(crate) max_local_keys: usize,
    /// IPv6 clients are counted per network of this many bits (a subscriber usually holds a
    /// whole /64 and can rotate through it).
    pub(crate) ipv6_prefix: u8,
}

impl Default for RateLimitingFile {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_timeout: Duration::from_millis(100),
            key_prefix: "gateway:rl:".to_owned(),
            headers_on_success: true,
            max_local_keys: 100_000,
            ipv6_prefix: 64,
        }
    }
}

/// One entry of a route's `rate_limits:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitFile {
    /// `client_ip`, `subject`, `header:<name>` or `route` (one bucket for the route).
    #[serde(default = "default_limit_key")]
    pub(crate) key: String,
    pub(crate) rate: u64,
    #[serde(deserialize_with = "duration")]
    pub(crate) per: Duration,
    /// Requests allowed back to back; defaults to `rate`.
    #[serde(default)]
    pub(crate) burst: Option<u64>,
    #[serde(default)]
    pub(crate) scope: ScopeFile,
    /// With `scope: cluster`, what to do when Redis cannot answer: allow (with a local
    /// fallback limit) or refuse with 503.
    #[serde(default = "yes")]
    pub(crate) fail_open: bool,
}

fn default_limit_key() -> String {
    "client_ip".to_owned()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScopeFile {
    #[default]
    Local,
    Cluster,
}

/// One entry of `pools:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolFile {
    pub(crate) endpoints: Vec<String>,
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
    #[serde(default)]
    pub(crate) passive_health: PassiveHealthFile,
    #[serde(default)]
    pub(crate) retries: RetriesFile,
    /// A secret sent to this pool with forwarded claims, so its endpoints can tell the
    /// gateway from a client that reached them directly.
    #[serde(default)]
    pub(crate) forward_secret: Option<ForwardSecretFile>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PassiveHealthFile {
    /// Consecutive connect failures or 5xx responses that eject an endpoint; 0 disables.
    pub(crate) consecutive_failures: u32,
    #[serde(deserialize_with = "duration")]
    pub(crate) cooldown: Duration,
}

impl Default for PassiveHealthFile {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetriesFile {
    /// Further attempts after the first one, each on a different endpoint when possible.
    pub(crate) attempts: usize,
    /// Retry idempotent methods (GET, HEAD) after a reset before any response byte.
    pub(crate) idempotent_on_reset: bool,
}

impl Default for RetriesFile {
    fn default() -> Self {
        Self {
            attempts: 2,
            idempotent_on_reset: true,
        }
    }
}

/// One entry of `routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(rename = "match")]
    pub(crate) matcher: MatchFile,
    #[serde(default)]
    pub(crate) pool: Option<String>,
    #[serde(default)]
    pub(crate) strip_prefix: bool,
    #[serde(default)]
    pub(crate) respond: Option<RespondFile>,
    /// Overrides `limits.max_body_bytes` for this route.
    #[serde(default)]
    pub(crate) body_limit: Option<ByteSize>,
    #[serde(default)]
    pub(crate) auth: AuthFile,
    #[serde(default)]
    pub(crate) rate_limits: Vec<RateLimitFile>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthFile {
    #[default]
    None,
    Optional,
    Required,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchFile {
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RespondFile {
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) body: String,
    #[serde(default = "default_content_type")]
    pub(crate) content_type: String,
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}

/// A size in bytes: a plain number, or text with a unit such as `512KiB`, `10MiB`, `1MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(n)),
            Raw::Text(text) => text
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| Self(b.as_u64()))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid size {text:?} ({e}); write e.g. 1048576, \"512KiB\" or \"10MiB\""
                    ))
                }),
        }
    }
}

/// Durations are written the human way: `250ms`, `2s`, `1m 30s`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({e}); write e.g. \"500ms\" or \"2s\""
        ))
    })
}
