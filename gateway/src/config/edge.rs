//! The validated edge policies of a route: client addresses, header rules, security headers,
//! rewrites, redirects, CORS and basic auth. `policy::edge` applies them to requests.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use ipnet::IpNet;

/// Everything a route does at the edge besides routing, limits and JWT.
#[derive(Debug, Clone, Default)]
pub struct EdgePolicies {
    pub ip_access: IpAccess,
    pub basic_auth: Option<BasicAuth>,
    pub api_keys: Option<ApiKeys>,
    pub forward_auth: Option<ForwardAuth>,
    pub cors: Option<Cors>,
    /// The upstream path from a regular expression over the request path.
    pub rewrite: Option<Rewrite>,
    /// The upstream request's `Host`.
    pub upstream_host: Option<HeaderValue>,
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    pub security_headers: SecurityHeaders,
    pub compression: Option<Compression>,
}

/// `compression`: responses encoded for clients that accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// The gateway's order of preference.
    pub algorithms: Vec<Algorithm>,
    pub min_size: u64,
    /// Lower-case media types; `text/` (from `text/*`) matches the whole type.
    pub content_types: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Zstd,
    Brotli,
    Gzip,
}

impl Algorithm {
    /// The content coding's name in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Zstd => "zstd",
            Algorithm::Brotli => "br",
            Algorithm::Gzip => "gzip",
        }
    }
}

/// `ip_allow` / `ip_deny`. A denied address is refused; with an allow list, so is every
/// address outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAccess {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpAccess {
    /// Whether a client at `ip` may use the route. An IPv4-mapped IPv6 address is checked
    /// as the IPv4 address it is; an unknown address passes only when there is no rule.
    pub fn permits(&self, ip: Option<std::net::IpAddr>) -> bool {
        if self.allow.is_empty() && self.deny.is_empty() {
            return true;
        }
        let Some(ip) = ip.map(|ip| ip.to_canonical()) else {
            return false;
        };
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }
}

/// `basic_auth`: users and their password hashes, read from `users_file` when the config is
/// loaded (so a reload re-reads it).
#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub realm: String,
    pub users: HashMap<String, PasswordHash>,
    pub forward_user: Option<HeaderName>,
}

/// `api_keys`: keys known by the SHA-256 of their text, read from `keys_file` with the
/// config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeys {
    pub header: HeaderName,
    /// (name, SHA-256 of the key).
    pub keys: Vec<(String, [u8; 32])>,
    pub forward_name: HeaderName,
}

/// `forward_auth`: a GET to an auth service decides each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    pub url: String,
    pub timeout: Duration,
    pub forward_headers: Vec<HeaderName>,
    pub copy_headers: Vec<HeaderName>,
    pub cache_ttl: Duration,
}

/// A stored password hash, in its PHC (argon2) or modular crypt (bcrypt) text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    Argon2(String),
    Bcrypt(String),
}

/// `cors`.
#[derive(Debug, Clone)]
pub struct Cors {
    pub origins: Vec<OriginPattern>,
    /// `allow_methods`, as the header value.
    pub allow_methods: HeaderValue,
    pub methods: Vec<Method>,
    /// `allow_headers`, as the header value; `None` when empty.
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: Option<HeaderValue>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any origin (never with credentials).
    Any,
    /// An exact origin, lower-case: `https://app.example.com`.
    Exact(String),
    /// `https://*.example.com`: the scheme, and a host that ends with `.example.com` (one or
    /// more labels before it), any port given in the pattern.
    Subdomains { scheme: String, suffix: String },
}

/// `rewrite`.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub pattern: regex::Regex,
    pub to: Template,
}

/// `redirect`: a route that answers with a redirect.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub status: StatusCode,
    /// Whose captures `to` uses; `^(.*)$` (so `$1` is the whole path) when none is given.
    pub pattern: regex::Regex,
    pub to: Template,
    pub keep_query: bool,
}

/// `request_headers` / `response_headers`, applied as `remove`, then `set`, then `add`.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, Template)>,
    pub add: Vec<(HeaderName, Template)>,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// Response headers the gateway adds when the upstream sent none of its own, and upstream
/// headers it hides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityHeaders {
    /// Added to responses over HTTPS only.
    pub hsts: Option<HeaderValue>,
    /// Added over either scheme.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub hide: Vec<HeaderName>,
}

/// A header value or URL with variables: `${client_ip}`, `${request_id}`, `${route}`,
/// `${host}`, `${path}`, and `$1`..`$9` / `${name}` for the captures of the route's
/// `rewrite.match` or `redirect.match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Var(Var),
    /// A capture group by number.
    Group(usize),
    /// A capture group by name.
    Named(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    ClientIp,
    RequestId,
    Route,
    Host,
    Path,
}

impl Template {
    /// Whether the template uses capture groups (and so needs a regular expression).
    pub fn uses_captures(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Group(_) | Part::Named(_)))
    }

    /// The template without variables, if it has none.
    pub fn as_text(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }
}
