//! The serde mirror of `gateway.yaml`.
//!
//! These types exist only to be deserialized and handed to `validate`; nothing outside
//! `config` sees them. Every struct rejects unknown keys, and defaults live here so the
//! README reference and the code cannot drift apart silently.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
/// and collects every failure. The schema describes each section by its own type.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "gateway.yaml",
    description = "The gateway's whole configuration: listeners, limits, pools of upstream \
                   endpoints and the routes that send requests to them. `gateway check FILE` \
                   validates a file in full; this schema checks its shape as you type."
)]
pub(crate) struct TopFile {
    /// Process settings: worker threads, shutdown grace, upstream connection reuse.
    #[serde(default)]
    #[schemars(with = "Option<ServerFile>")]
    pub(crate) server: Option<serde_yaml::Value>,
    /// The addresses the gateway listens on.
    #[serde(default)]
    #[schemars(with = "Option<ListenersFile>")]
    pub(crate) listeners: Option<serde_yaml::Value>,
    /// Request-shape and client connection limits, enforced before routing.
    #[serde(default)]
    #[schemars(with = "Option<LimitsFile>")]
    pub(crate) limits: Option<serde_yaml::Value>,
    /// Addresses or networks (CIDR) of proxies in front of the gateway whose
    /// `X-Forwarded-For` and `X-Forwarded-Proto` are believed; empty trusts none.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) trusted_proxies: Option<serde_yaml::Value>,
    /// How pool host names are resolved.
    #[serde(default)]
    #[schemars(with = "Option<DnsFile>")]
    pub(crate) dns: Option<serde_yaml::Value>,
    /// How bearer tokens are verified on routes with `auth: required` or `auth: optional`.
    #[serde(default)]
    #[schemars(with = "Option<JwtFile>")]
    pub(crate) jwt: Option<serde_yaml::Value>,
    /// Settings shared by every route's `rate_limits`.
    #[serde(default)]
    #[schemars(with = "Option<RateLimitingFile>")]
    pub(crate) rate_limiting: Option<serde_yaml::Value>,
    /// Certificates for `listeners.https` (files, ACME or self-signed) and TLS settings.
    #[serde(default)]
    #[schemars(with = "Option<TlsFile>")]
    pub(crate) tls: Option<serde_yaml::Value>,
    /// Upstream pools by name: their endpoints, balancing, health checks, breakers and
    /// retries.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, PoolFile>>")]
    pub(crate) pools: Option<serde_yaml::Mapping>,
    /// Edge policies every route starts from; a route that sets one of these keys replaces
    /// the default's value.
    #[serde(default)]
    #[schemars(with = "Option<RouteDefaultsFile>")]
    pub(crate) route_defaults: Option<serde_yaml::Value>,
    /// The routes, matched by host, path and method; the most specific match wins.
    #[serde(default)]
    #[schemars(with = "Option<Vec<RouteFile>>")]
    pub(crate) routes: Option<Vec<serde_yaml::Value>>,
}

/// `server:`: process-level settings, translated into Pingora's `ServerConf`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerFile {
    /// Worker threads of the proxy service (1 to 256).
    #[schemars(range(min = 1, max = 256))]
    pub(crate) threads: usize,
    /// On SIGTERM: stop accepting, wait at most this long for in-flight requests, and exit
    /// as soon as none is left.
    #[serde(with = "Human")]
    pub(crate) shutdown_grace: Duration,
    /// Idle upstream connections kept per worker thread (all pools together).
    pub(crate) upstream_keepalive_pool_size: usize,
    /// Read buffer in front of each client connection's socket, held for the connection's
    /// life: 0 or 1KiB to 1MiB. The HTTP/1 parser and TLS buffer what they read themselves,
    /// so the default 0 reads straight from the socket (bench/README.md has the
    /// measurements).
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ListenersFile {
    /// `ip:port` of the public HTTP listener.
    pub(crate) http: String,
    /// `ip:port` of the admin listener (`/`, `/status.json`, `/metrics`, `/healthz`,
    /// `/readyz`); keep it off the public network.
    pub(crate) admin: String,
    /// `ip:port` of the public HTTPS listener (HTTP/2 and HTTP/1.1 through ALPN); needs
    /// `tls:`.
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsFile {
    /// Longer request targets get 414 (at least 16).
    #[schemars(range(min = 16))]
    pub(crate) max_uri_bytes: usize,
    /// Larger request headers (names and values) get 431 (at least 256).
    #[schemars(range(min = 256))]
    pub(crate) max_header_bytes: usize,
    /// Default request-body limit of every route; larger bodies get 413.
    pub(crate) max_body_bytes: ByteSize,
    /// Longest time from the first byte of a request to the end of its header; a slower
    /// client is disconnected. On HTTPS it also bounds the TLS handshake.
    #[serde(with = "Human")]
    pub(crate) header_timeout: Duration,
    /// Longest a client connection may sit idle before (or between) requests.
    #[serde(with = "Human")]
    pub(crate) idle_timeout: Duration,
    /// Client connections open at once on the public listeners; more are closed at accept.
    #[schemars(range(min = 1))]
    pub(crate) max_connections: usize,
    /// Client connections open at once from one client address (IPv6: one
    /// `rate_limiting.ipv6_prefix` network); unset means no per-client cap.
    #[schemars(range(min = 1))]
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
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DnsFile {
    /// `ip:port` of DNS servers to ask; empty means the system's resolv.conf.
    pub(crate) nameservers: Vec<String>,
}

/// A size in bytes: a plain number, or text with a unit such as `512KiB`, `10MiB`, `1MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
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

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a number of bytes, or a number with a unit \
                            (`512KiB`, `10MiB`, `1MB`, `2GiB`).",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": BYTE_SIZE_PATTERN },
            ],
        })
    }
}

/// What `bytesize` parses: a number, optional blanks, an optional unit (SI or IEC, any case).
const BYTE_SIZE_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTtPpEe][Ii]?)?[Bb]?\s*$";

/// A duration written the human way, `250ms`, `2s`, `1m 30s`, for `#[serde(with = "Human")]`:
/// a type rather than a module, so that the schema generator can use it as the field's type.
pub(crate) struct Human;

impl Human {
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        duration(d)
    }

    /// The default's text in the schema: the largest unit that writes it exactly.
    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        const UNITS: [(u128, &str); 5] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1000, "s"),
            (1, "ms"),
        ];
        let millis = value.as_millis();
        let (size, unit) = UNITS
            .into_iter()
            .find(|(size, _)| millis.is_multiple_of(*size))
            .unwrap_or((1, "ms"));
        let text = if millis == 0 {
            "0s".to_owned()
        } else {
            format!("{}{unit}", millis / size)
        };
        s.serialize_str(&text)
    }
}

impl JsonSchema for Human {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with a unit: `250ms`, `2s`, `1m 30s`, `1h`, `30d`.",
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// What `humantime::parse_duration` reads: numbers (fractions allowed) each with a unit.
const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\s*)+$";

/// An optional key holding a duration (absent: `None`, with `#[serde(default)]`).
pub(crate) struct OptionalHuman;

impl OptionalHuman {
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        duration(d).map(Some)
    }

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => Human::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

impl JsonSchema for OptionalHuman {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "OptionalDuration".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<Human>()
    }
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
