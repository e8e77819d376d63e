//! `routes:`, each route's `rate_limits:`, and the shared `rate_limiting:`.

use serde::Serialize;

use super::{setters, strings, Dur, Size};

/// One entry of `routes:`.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Match,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<Respond>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// Edge policies (`ip_allow`, `cors`, `redirect`, `rewrite`, header rules...), spelled as
    /// in gateway.yaml.
    #[serde(flatten)]
    pub policies: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Route {
    /// A route for `prefix` and every path under it (`match: { path_prefix }`).
    pub fn prefix(prefix: &str) -> Self {
        Self::matching(Match {
            path_prefix: Some(prefix.to_owned()),
            ..Match::default()
        })
    }

    /// A route for exactly `path` (`match: { path }`).
    pub fn path(path: &str) -> Self {
        Self::matching(Match {
            path: Some(path.to_owned()),
            ..Match::default()
        })
    }

    /// A route for any `match:`.
    pub fn matching(matcher: Match) -> Self {
        Self {
            name: None,
            matcher,
            pool: None,
            strip_prefix: None,
            respond: None,
            body_limit: None,
            auth: None,
            rate_limits: Vec::new(),
            https_redirect: None,
            policies: std::collections::BTreeMap::new(),
        }
    }

    /// Set an edge policy key of the route to `value` (as gateway.yaml spells it).
    pub fn policy(mut self, key: &str, value: serde_json::Value) -> Self {
        self.policies.insert(key.to_owned(), value);
        self
    }

    /// Set `match.methods`.
    pub fn methods(mut self, methods: &[&str]) -> Self {
        self.matcher.methods = Some(strings(methods));
        self
    }

    /// Set `match.host`.
    pub fn host(mut self, host: &str) -> Self {
        self.matcher.host = Some(host.to_owned());
        self
    }

    /// Set `strip_prefix: true`: the matched prefix is cut from the upstream path.
    pub fn strip_prefix(mut self) -> Self {
        self.strip_prefix = Some(true);
        self
    }

    /// Append a `rate_limits` entry.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limits.push(limit);
        self
    }

    setters!(respond: Respond, auth: Auth, https_redirect: bool);
    setters!(into name: String, pool: String, body_limit: Size);
}

/// `routes[].match`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Match {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
}

/// `routes[].respond`: answered by the gateway itself.
#[derive(Debug, Clone, Serialize)]
pub struct Respond {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl Respond {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: None,
            content_type: None,
        }
    }

    setters!(into body: String, content_type: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    None,
    Optional,
    Required,
}

/// One entry of `routes[].rate_limits`.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub rate: u64,
    pub per: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
}

impl RateLimit {
    /// `rate` requests `per` period, keyed as the gateway's default (`client_ip`).
    pub fn new(rate: u64, per: impl Into<Dur>) -> Self {
        Self {
            key: None,
            rate,
            per: per.into(),
            burst: None,
            scope: None,
            fail_open: None,
        }
    }

    /// `key: client_ip`, written out.
    pub fn client_ip(rate: u64, per: impl Into<Dur>) -> Self {
        Self::new(rate, per).key("client_ip")
    }

    /// `key: subject`: per verified token subject.
    pub fn subject(rate: u64, per: impl Into<Dur>) -> Self {
        Self::new(rate, per).key("subject")
    }

    /// `key: route`: one bucket for the whole route.
    pub fn route(rate: u64, per: impl Into<Dur>) -> Self {
        Self::new(rate, per).key("route")
    }

    /// `key: header:<name>`: per value of a request header.
    pub fn header(name: &str, rate: u64, per: impl Into<Dur>) -> Self {
        Self::new(rate, per).key(format!("header:{name}"))
    }

    setters!(burst: u64, scope: Scope, fail_open: bool);
    setters!(into key: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Local,
    Cluster,
}

/// `rate_limiting:`: settings shared by every route's limits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RateLimiting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_on_success: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_local_keys: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix: Option<u8>,
}

impl RateLimiting {
    pub fn new() -> Self {
        Self::default()
    }

    setters!(headers_on_success: bool, max_local_keys: usize, ipv6_prefix: u8);
    setters!(into redis_url: String, redis_timeout: Dur, key_prefix: String);
}
