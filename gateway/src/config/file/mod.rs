//! The serde mirror of `gateway.yaml`.
//!
//! These types exist only to be deserialized and handed to `validate`; nothing outside
//! `config` sees them. Every struct rejects unknown keys, and defaults live here so the
//! README reference and the code cannot drift apart silently.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod edge;
mod jwt;
mod limits;
mod pools;
mod routes;
mod tls;

pub(crate) use edge::{
    ApiKeysFile, BasicAuthFile, CompressionFile, CompressionSpec, CorsFile, ForwardAuthFile,
    HeaderRulesFile, PresetFile, RedirectFile, RewriteFile, RouteDefaultsFile, SecurityHeadersFile,
    SecurityHeadersSpec,
};
pub(crate) use jwt::JwtFile;
pub(crate) use limits::{RateLimitFile, RateLimitingFile, ScopeFile};
pub(crate) use pools::{
    AdaptiveLimitFile, BalanceFile, CircuitBreakerFile, ForwardSecretFile, HealthCheckFile,
    HealthCheckKind, PoolFile, QueueFile, RetriesFile, StatusPattern,
};
pub(crate) use routes::{
    AuthFile, MatchFile, MirrorFile, RespondFile, RouteFile, RouteTimeoutsFile, SplitFile,
};
pub(crate) use tls::{AcmeFile, CertificateFile, SelfSignedFile, TlsFile, TlsVersionFile};

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
    pub(crate) tls: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(crate) pools: Option<serde_yaml::Mapping>,
    #[serde(default)]
    pub(crate) route_defaults: Option<serde_yaml::Value>,
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
    /// Read buffer in front of each client connection's socket, held for the connection's
    /// life; 0 (the default) reads straight from the socket. Pingora's HTTP/1 parser and
    /// rustls buffer what they read themselves, so a buffer here only costs memory per idle
    /// client (Pingora's default of 64 KiB makes 10k of them cost 640 MiB); bench/README.md
    /// has the measurements.
    pub(crate) downstream_read_buffer: ByteSize,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            threads: 1,
            shutdown_grace: Duration::from_secs(8),
            upstream_keepalive_pool_size: 1024,
            downstream_read_buffer: ByteSize(0),
        }
    }
}

/// `listeners:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ListenersFile {
    pub(crate) http: String,
    pub(crate) admin: String,
    pub(crate) https: Option<String>,
}

impl Default for ListenersFile {
    fn default() -> Self {
        Self {
            http: "0.0.0.0:80".into(),
            admin: "127.0.0.1:9091".into(),
            https: None,
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

/// An optional key holding a duration (absent: `None`, with `#[serde(default)]`).
fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Durations are written the human way: `250ms`, `2s`, `1m 30s`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    /// Accepts text with a unit; a bare number is refused with a message that says why.
    struct Human;

    impl serde::de::Visitor<'_> for Human {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as 250ms, 2s or 1m")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|e| {
                E::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. \"500ms\" or \"2s\""
                ))
            })
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write e.g. \"{n}s\" or \"{n}ms\", not {n}"
            )))
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write e.g. \"250ms\" or \"2s\", not {n}"
            )))
        }

        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write e.g. \"250ms\" or \"2s\", not {n}"
            )))
        }
    }

    d.deserialize_any(Human)
}
