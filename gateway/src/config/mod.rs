//! Configuration: `gateway.yaml` on disk -> a validated [`Config`] the proxy runs on.
//!
//! Loading happens in three steps, each collecting every error it can find:
//! 1. YAML syntax (serde_yaml, with its own line and column);
//! 2. shape: each section, pool and route is deserialized on its own through
//!    `serde_path_to_error`, so one typo does not hide the next;
//! 3. meaning (`validate`): unknown pools, duplicate routes, zero timeouts, bad addresses.
//!
//! Every error carries the file, the line and column (from [`spans::SpanIndex`]), the key path
//! and the offending value.

pub mod edge;
mod file;
mod keys;
mod schema;
mod spans;
mod summary;
mod tls;
mod validate;

pub(crate) use keys::decoding_key;
pub(crate) use keys::secret;
pub use keys::{KeyMaterial, Secret};
pub(crate) use schema::render_schema;
pub use schema::schema;
pub(crate) use tls::load_certificate;
pub use tls::{AcmeConfig, Certificate, SelfSigned, TlsConfig, TlsVersion, UpstreamTls};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, StatusCode};
use ipnet::IpNet;

/// The validated configuration. Built only by [`load`] / [`parse`], so holding one means
/// every cross-reference (route -> pool) resolves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, for messages and reloads.
    pub source: PathBuf,
    /// The first 16 hex digits of the SHA-256 of the file's text: logged with every config
    /// applied, so an operator can tell which version of the file is live.
    pub source_hash: String,
    pub server: ServerSettings,
    pub listeners: Listeners,
    pub limits: Limits,
    /// Peers whose `X-Forwarded-For` is believed when finding the client IP.
    pub trusted_proxies: Vec<IpNet>,
    /// DNS servers for pool host names; empty means the system resolver configuration.
    pub dns_nameservers: Vec<SocketAddr>,
    /// Token verification, when any route asks for auth.
    pub jwt: Option<JwtConfig>,
    pub rate_limiting: RateLimiting,
    /// The HTTPS listener's certificates and TLS settings.
    pub tls: Option<TlsConfig>,
    pub pools: Vec<PoolConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub shutdown_grace: Duration,
    pub upstream_keepalive_pool_size: usize,
    pub downstream_read_buffer_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// TLS (HTTP/1.1 and HTTP/2) with the certificates of `tls:`, when set.
    pub https: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    /// From the first byte of a request to the end of its header.
    pub header_timeout: Duration,
    /// Idle time allowed before the first request and between requests.
    pub idle_timeout: Duration,
    /// Open client connections on the public listener.
    pub max_connections: usize,
    /// Open client connections from one client address, if capped.
    pub max_connections_per_client: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    pub endpoints: Vec<WeightedEndpoint>,
    pub resolve_interval: Duration,
    pub dns_grace: Duration,
    pub balance: Balance,
    pub timeouts: Timeouts,
    pub health_check: Option<HealthCheck>,
    pub breaker: CircuitBreaker,
    pub retries: Retries,
    /// `max_in_flight` with its queue, when the pool has one.
    pub admission: Option<Admission>,
    /// Requests one endpoint takes at once; the balancer skips an endpoint at it, and a
    /// request finding every endpoint there gets 503.
    pub max_in_flight_per_endpoint: Option<usize>,
    /// Sent to this pool on requests that carry forwarded claims.
    pub forward_secret: Option<ForwardSecret>,
    /// The endpoints speak HTTPS.
    pub tls: Option<UpstreamTls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimiting {
    pub redis_url: Option<String>,
    pub redis_timeout: Duration,
    pub key_prefix: String,
    pub headers_on_success: bool,
    pub max_local_keys: usize,
    /// Bits of an IPv6 client address that identify the client for limits.
    pub ipv6_prefix: u8,
}

/// One rate limit of a route: `rate` requests per `per`, bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub key: LimitKey,
    pub rate: u64,
    pub per: Duration,
    pub burst: u64,
    pub scope: LimitScope,
    pub fail_open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    ClientIp,
    /// The verified token's `sub`; the client IP for anonymous requests.
    Subject,
    /// A request header's value; the client IP when the header is absent.
    Header(HeaderName),
    /// One bucket for the whole route.
    Route,
    /// The name of the API key `api_keys` matched; the client IP without one.
    ApiKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    Local,
    Cluster,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub required_claims: Vec<String>,
    /// `(claim, header)` pairs copied from verified tokens into upstream requests.
    pub forward_claims: Vec<(String, HeaderName)>,
    pub jwks: Option<JwksConfig>,
    pub keys: Vec<StaticKey>,
    /// Signature checks per client; always `client_ip` keyed and local.
    pub verification_limit: Option<RateLimit>,
}

/// A header with a shared secret, set on requests to a pool that carry forwarded claims.
#[derive(Clone, PartialEq)]
pub struct ForwardSecret {
    pub header: HeaderName,
    pub value: http::HeaderValue,
}

impl fmt::Debug for ForwardSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a secret: never in logs or `Debug` output.
        write!(
            f,
            "ForwardSecret {{ header: {:?}, value: .. }}",
            self.header
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JwksConfig {
    pub source: JwksSource,
    pub refresh_interval: Duration,
    pub min_refresh_interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    Url(String),
    /// A path fetched from a healthy endpoint of `Config::pools[pool]`.
    Pool {
        pool: usize,
        path: String,
    },
}

/// A key given in the config, with its material read (and checked) at validation.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticKey {
    pub alg: jsonwebtoken::Algorithm,
    pub kid: Option<String>,
    pub material: KeyMaterial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Optional,
    Required,
}

/// An endpoint with its share of the pool's traffic: each address it stands for gets
/// `weight` times what an endpoint of weight 1 gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedEndpoint {
    pub spec: EndpointSpec,
    pub weight: u16,
}

impl fmt::Display for WeightedEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weight == 1 {
            write!(f, "{}", self.spec)
        } else {
            write!(f, "{} (weight {})", self.spec, self.weight)
        }
    }
}

/// An endpoint as written: a literal address, or a name re-resolved on the pool's timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSpec {
    Addr(SocketAddr),
    Name { host: String, port: u16 },
}

impl fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => write!(f, "{addr}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    Random,
    ConsistentHash(HashKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    Path,
    Header(HeaderName),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Tcp,
    Http {
        path: String,
        host: String,
        expect_status: Vec<StatusCode>,
    },
}

/// One circuit breaker per endpoint: closed, open for a while after failures, then
/// half-open, letting `half_open_probes` requests through to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    /// Failures in a row that open it; 0 disables this rule (and, with no ratio, the
    /// breaker).
    pub consecutive_failures: u32,
    /// Open when at least this share of the requests over `window` failed, once there were
    /// `min_requests` of them.
    pub failure_ratio: Option<FailureRatio>,
    /// The first opening lasts this long; each further opening in a row doubles it, up to
    /// `max_open_for`.
    pub open_for: Duration,
    pub max_open_for: Duration,
    pub half_open_probes: u32,
    /// Upstream statuses that count as failures.
    pub failure_statuses: StatusSet,
    /// At most this share of a pool's endpoints is open at once (at least one endpoint of a
    /// pool of two or more may be; never all).
    pub max_ejected_percent: u8,
}

impl CircuitBreaker {
    /// Whether the breaker judges anything at all.
    pub fn enabled(&self) -> bool {
        self.consecutive_failures > 0 || self.failure_ratio.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRatio {
    pub ratio: f64,
    pub window: Duration,
    pub min_requests: u32,
}

/// A set of HTTP statuses, as a bit per code from 100 to 599.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    pub fn insert(&mut self, code: u16) {
        if (100..600).contains(&code) {
            self.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }

    pub fn contains(&self, code: u16) -> bool {
        (100..600).contains(&code) && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries((100..600).filter(|c| self.contains(*c)))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    pub attempts: usize,
    pub idempotent_on_reset: bool,
    /// Upstream statuses retried for idempotent methods.
    pub on_status: StatusSet,
    /// Retries after an answer wait a random time up to `backoff * 2^(n-1)`, at most
    /// `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A request whose body is larger is not retried once any of it was sent (at most the
    /// 64 KiB Pingora keeps).
    pub replay_body: u64,
    pub budget: RetryBudget,
    /// A request carrying this header may be retried whatever its method: the upstream
    /// applies a request with the same key once (IETF draft `Idempotency-Key`).
    pub idempotency_header: Option<HeaderName>,
}

/// Retries may add at most `percent` of the pool's request rate, or `min_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    pub percent: f64,
    pub min_per_second: u32,
}

/// `max_in_flight` requests at once; up to `queue` more wait at most `queue_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub max_in_flight: usize,
    pub queue: usize,
    pub queue_timeout: Duration,
    /// Lower the limit while the pool answers slowly, down to a floor (AIMD).
    pub adaptive: Option<AdaptiveLimit>,
}

/// The adaptive limit: each answer slower than `latency` (or a timeout, or a 503 shedding
/// load) cuts the limit by a tenth, at most once per `latency`, down to `min_in_flight`;
/// each timely answer while the limit is in use adds `1/limit`, up to `max_in_flight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveLimit {
    pub min_in_flight: usize,
    pub latency: Duration,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Metric and log label; defaults to the path.
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Largest request body accepted, in bytes (route override or `limits.max_body_bytes`).
    pub body_limit: u64,
    pub auth: AuthMode,
    pub rate_limits: Vec<RateLimit>,
    /// Whether `tls.redirect_http` sends this route's plain-HTTP requests to HTTPS.
    pub https_redirect: bool,
    /// Addresses, header rules, CORS, basic auth, rewrites: `route_defaults:` overridden by
    /// the route's own keys.
    pub policies: edge::EdgePolicies,
    pub timeouts: RouteTimeouts,
    /// Traffic shared between pools (the action's pool is the first of them).
    pub split: Option<std::sync::Arc<Split>>,
    pub mirror: Option<Mirror>,
}

/// `routes[].mirror`: a sampled copy of each request, sent to another pool after the
/// client's answer and never waited for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirror {
    /// Index into [`Config::pools`].
    pub pool: usize,
    /// The share of requests copied, 0 to 100.
    pub percent: f64,
    /// Copies in flight at once; beyond it a copy is dropped.
    pub max_in_flight: usize,
    /// A request with a larger body is not copied.
    pub max_body: u64,
}

/// `routes[].split` with its `sticky` and `override_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `(index into Config::pools, weight)`, in the order written.
    pub pools: Vec<(usize, u32)>,
    pub sticky: Option<StickyKey>,
    pub override_header: Option<HeaderName>,
}

/// What assigns a client to the same pool on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The verified token's `sub`.
    Subject,
    ClientIp,
    Header(HeaderName),
    Cookie(String),
}

/// `routes[].timeouts`: the request's deadline and overrides of the pool's timeouts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTimeouts {
    /// From the request's arrival: attempts, retries and backoff stop at it, and each
    /// attempt's timeouts are cut to what remains (504 when it passes).
    pub request: Option<Duration>,
    /// Longest wait for the upstream's bytes (its response header first), instead of the
    /// pool's `timeouts.read`.
    pub upstream_response: Option<Duration>,
    /// Sent upstream with the milliseconds left before the deadline.
    pub deadline_header: Option<HeaderName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Lower-case host without port.
    pub host: Option<String>,
    /// `None` matches every method.
    pub methods: Option<Vec<Method>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Matches the prefix itself and anything below it at a `/` boundary.
    Prefix(String),
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    Proxy {
        /// Index into [`Config::pools`].
        pool: usize,
        strip_prefix: bool,
    },
    Respond {
        status: StatusCode,
        body: Bytes,
        content_type: String,
    },
    Redirect(edge::Redirect),
}

/// Identity header that is never accepted from clients, even without `forward_claims`,
/// because backends may trust it (the backend's `TRUST_GATEWAY_IDENTITY`).
const ALWAYS_OWNED: &str = "x-user-id";

impl Config {
    /// Headers only the gateway may set upstream: a client's copies are always removed.
    /// `X-User-Id`, every `forward_claims` header, every pool's `forward_secret` header, and
    /// what basic auth, API keys and forward auth forward.
    pub fn identity_headers(&self) -> Vec<HeaderName> {
        let mut owned = vec![HeaderName::from_static(ALWAYS_OWNED)];
        let claims = self
            .jwt
            .iter()
            .flat_map(|j| &j.forward_claims)
            .map(|(_, h)| h.clone());
        let secrets = self
            .pools
            .iter()
            .filter_map(|p| p.forward_secret.as_ref())
            .map(|s| s.header.clone());
        let users = self.routes.iter().flat_map(|r| {
            let p = &r.policies;
            let user = p.basic_auth.as_ref().and_then(|b| b.forward_user.clone());
            let key = p.api_keys.as_ref().map(|k| k.forward_name.clone());
            let copied = p
                .forward_auth
                .iter()
                .flat_map(|f| f.copy_headers.iter().cloned());
            user.into_iter().chain(key).chain(copied)
        });
        for header in claims.chain(secrets).chain(users) {
            if !owned.contains(&header) {
                owned.push(header);
            }
        }
        owned
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `routes[2].pool`; empty for the whole document.
    pub path: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Every problem found in one config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let (Some(line), Some(column)) = (e.line, e.column) {
                write!(f, ":{line}:{column}")?;
            }
            if e.path.is_empty() {
                write!(f, ": {}", e.message)?;
            } else {
                write!(f, ": {}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The first 16 hex digits of the SHA-256 of a config file's text: how logs and
/// `gateway_config_info` name the version of the file that is live.
pub(crate) fn content_hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Read and validate `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(ConfigErrors {
            file: path.to_owned(),
            errors: vec![ConfigError {
                path: String::new(),
                message: format!("cannot read the file: {e}"),
                line: None,
                column: None,
            }],
        }),
    }
}

/// Validate `text` as if it were the contents of `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let spans = spans::SpanIndex::build(text);
    validate::validate(path, text, &spans).map_err(|errors| ConfigErrors {
        file: path.to_owned(),
        errors,
    })
}

#[cfg(test)]
mod tests;
