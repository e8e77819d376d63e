//! Typed `gateway.yaml` for the harness: serde structs mirroring the gateway's file model
//! (`gateway/src/config/file`), serialized to YAML, so tests say what they configure instead
//! of counting indentation in `format!` strings.
//!
//! A key appears in the YAML only when a test set it, so the gateway's own defaults apply
//! exactly as with a hand-written file: settings are `Option`s, and lists whose gateway
//! default is empty are `Vec`s left out when empty. Builder methods are named after the keys
//! they set; durations are [`Dur`], sizes [`Size`].
//! Files that are meant to be broken (config-error tests) stay raw text, written with
//! `TestGateway::rewrite_raw` or `std::fs::write`.
//!
//! ```ignore
//! GatewayConfig::new()
//!     .pool("a", Pool::upstreams(&[&a]).retries(Retries::new().attempts(0)))
//!     .route(Route::prefix("/api").pool("a").strip_prefix())
//! ```

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

mod jwt;
mod pools;
mod routes;
#[cfg(test)]
mod tests;

pub use jwt::{Jwks, Jwt, StaticKey, VerificationLimit};
pub use pools::{
    Balance, CircuitBreaker, ForwardSecret, HealthCheck, HealthCheckKind, Pool, PoolTls, Queue,
    Retries, RetryBudget, Timeouts,
};
pub use routes::{Auth, Match, RateLimit, RateLimiting, Respond, Route, Scope};

/// Builder methods that set optional fields, one per key: `fn key(self, value) -> Self`.
/// The `into` form takes anything convertible (`"2s"` or a `Duration` for a [`Dur`]).
macro_rules! setters {
    (into $($field:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Set `", stringify!($field), "`.")]
        pub fn $field(mut self, value: impl Into<$ty>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )*};
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Set `", stringify!($field), "`.")]
        pub fn $field(mut self, value: $ty) -> Self {
            self.$field = Some(value);
            self
        }
    )*};
}
use setters;

/// A whole `gateway.yaml`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GatewayConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    /// Left unset in tests: the harness fills in the ports it reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Listeners>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Jwt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limiting: Option<RateLimiting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, Pool>,
    /// `route_defaults:`, spelled as in gateway.yaml.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_defaults: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

impl GatewayConfig {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(
        server: Server,
        listeners: Listeners,
        limits: Limits,
        dns: Dns,
        jwt: Jwt,
        rate_limiting: RateLimiting,
        tls: Tls,
    );

    /// Add a `trusted_proxies` entry: an address or a CIDR.
    pub fn trusted_proxy(mut self, net: &str) -> Self {
        self.trusted_proxies.push(net.to_owned());
        self
    }

    /// Add (or replace) the pool `name`.
    pub fn pool(mut self, name: &str, pool: Pool) -> Self {
        self.pools.insert(name.to_owned(), pool);
        self
    }

    /// Set `route_defaults:`.
    pub fn route_defaults(mut self, value: serde_json::Value) -> Self {
        self.route_defaults = Some(value);
        self
    }

    /// Append a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The YAML text of the file.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a config always serializes")
    }
}

/// `server:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Server {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_keepalive_pool_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream_read_buffer: Option<Size>,
}

impl Server {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(threads: usize, upstream_keepalive_pool_size: usize);
    setters!(into shutdown_grace: Dur, downstream_read_buffer: Size);
}

/// `listeners:`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Listeners {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https: Option<SocketAddr>,
}

impl Listeners {
    pub fn new(http: SocketAddr, admin: SocketAddr) -> Self {
        Self {
            http,
            admin,
            https: None,
        }
    }
}

/// `tls:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tls {
    pub certificates: Vec<CertificateFiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_certificate: Option<CertificateFiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_http: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hsts: Option<Hsts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<Acme>,
}

/// `tls.acme`.
#[derive(Debug, Clone, Serialize)]
pub struct Acme {
    pub directory_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub domains: Vec<String>,
    pub storage: std::path::PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl Acme {
    /// Certificates for `domains` from `directory_url`, kept in `storage`.
    pub fn new(directory_url: &str, domains: &[&str], storage: &std::path::Path) -> Self {
        Self {
            directory_url: directory_url.to_owned(),
            email: None,
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            storage: storage.to_owned(),
            renew_before: None,
            ca_file: None,
        }
    }

    setters!(email: String, ca_file: std::path::PathBuf);
    setters!(into renew_before: Dur);
}

/// `tls.hsts`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hsts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_subdomains: Option<bool>,
}

impl Hsts {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(include_subdomains: bool);
    setters!(into max_age: Dur);
}

impl Tls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append to `certificates`.
    pub fn certificate(mut self, files: CertificateFiles) -> Self {
        self.certificates.push(files);
        self
    }

    setters!(default_certificate: CertificateFiles, redirect_http: bool, hsts: Hsts, acme: Acme);
    setters!(into min_version: String);
}

/// A certificate chain and its key, as `tls.certificates` lists them.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateFiles {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

/// `limits:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uri_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<usize>,
}

impl Limits {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(
        max_uri_bytes: usize,
        max_header_bytes: usize,
        max_connections: usize,
        max_connections_per_client: usize,
    );
    setters!(into max_body_bytes: Size, header_timeout: Dur, idle_timeout: Dur);
}

/// `dns:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dns {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
}

impl Dns {
    /// Resolve pool host names with these servers (`ip:port`) instead of resolv.conf.
    pub fn nameservers<A: Display>(addrs: impl IntoIterator<Item = A>) -> Self {
        Self {
            nameservers: strings(addrs),
        }
    }
}

/// A duration as the gateway reads it: text with a unit, such as `250ms` or `2s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Dur(String);

impl From<&str> for Dur {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<Duration> for Dur {
    /// Whole seconds as `Ns`, whole milliseconds as `Nms`, anything finer as `Nns`.
    fn from(d: Duration) -> Self {
        Self(if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else if d.subsec_millis() * 1_000_000 == d.subsec_nanos() {
            format!("{}ms", d.as_millis())
        } else {
            format!("{}ns", d.as_nanos())
        })
    }
}

/// A size in bytes: a number, or text with a unit such as `1MiB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl From<u64> for Size {
    fn from(bytes: u64) -> Self {
        Self::Bytes(bytes)
    }
}

impl From<&str> for Size {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// Each item's `Display` text.
fn strings<T: Display>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

/// A path as config text. Test paths are temp dirs, so lossy conversion never bites.
fn path_text(path: impl AsRef<Path>) -> String {
    path.as_ref().to_string_lossy().into_owned()
}
