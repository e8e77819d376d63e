//! `gateway.yaml` text -> [`Config`], collecting every error on the way.

mod jwt;
mod limits;
mod pools;
mod routes;
mod server;

use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use serde::de::DeserializeOwned;

use super::file::{
    DnsFile, JwtFile, LimitsFile, ListenersFile, PoolFile, RateLimitingFile, RouteFile, ServerFile,
    TopFile,
};
use super::spans::SpanIndex;
use super::{AuthMode, Config, ConfigError, LimitScope, PoolConfig, RateLimiting, RouteConfig};
use jwt::check_jwt;
use limits::check_rate_limiting;
use pools::check_pool;
use routes::check_routes;
use server::{check_dns, check_limits, check_listeners, check_server, check_trusted};

/// Collects errors and places each one in the file.
struct Errors<'a> {
    spans: &'a SpanIndex,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let pos = self.spans.locate(&path);
        self.list.push(ConfigError {
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path,
            message: message.into(),
        });
    }

    /// Deserialize one section on its own, recording its error (if any) under `prefix`.
    fn section<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        value: serde_yaml::Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let mut path = match inner.as_str() {
                    "." | "" => prefix.to_owned(),
                    rest if rest.starts_with('[') => format!("{prefix}{rest}"),
                    rest => format!("{prefix}.{rest}"),
                };
                let message = e.into_inner().to_string();
                // Point unknown keys at the key itself rather than at its parent.
                if let Some(field) = unknown_field(&message) {
                    if !path.ends_with(&format!(".{field}")) {
                        path = format!("{path}.{field}");
                    }
                }
                self.push(path, message);
                None
            }
        }
    }
}

impl Errors<'_> {
    /// A section that may be left out: its default when absent, else deserialized.
    fn section_or_default<T: DeserializeOwned + Default>(
        &mut self,
        prefix: &str,
        value: Option<serde_yaml::Value>,
    ) -> Option<T> {
        match value {
            None => Some(T::default()),
            Some(v) => self.section::<T>(prefix, v),
        }
    }

    /// Run a check that builds a value; the value counts only if the check recorded no
    /// error (so a half-checked value never reaches the model).
    fn scoped<T>(&mut self, check: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let before = self.list.len();
        let value = check(self);
        value.filter(|_| self.list.len() == before)
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn require_positive(errs: &mut Errors<'_>, path: &str, value: Duration) {
    if value.is_zero() {
        errs.push(path, "must be greater than 0, got 0s");
    }
}

/// What `gateway.yaml` holds, section by section, after the shape pass: each section (and
/// each pool and route) deserialized on its own, so that one typo does not hide the next.
/// A section that failed to deserialize is `None`, its error recorded.
struct Shapes {
    server: Option<ServerFile>,
    listeners: Option<ListenersFile>,
    limits: Option<LimitsFile>,
    trusted_proxies: Option<Vec<String>>,
    dns: Option<DnsFile>,
    jwt: Option<JwtFile>,
    rate_limiting: Option<RateLimitingFile>,
    /// The pools that deserialized, by name.
    pools: Vec<(String, PoolFile)>,
    /// Every declared pool name, valid or not: routes are checked against all of them, so
    /// that one broken pool does not also make each route using it an "unknown pool".
    /// Indices match the validated pools whenever validation succeeds, since any failed
    /// pool fails the whole file.
    pool_names: Vec<String>,
    /// The routes that deserialized, with their position in the file.
    routes: Vec<(usize, RouteFile)>,
}

impl Shapes {
    /// Pass 1: deserialize every section, defaulting the absent ones.
    fn read(errs: &mut Errors<'_>, top: TopFile) -> Self {
        let mut pools = Vec::new();
        let mut pool_names = Vec::new();
        for (key, value) in top.pools.unwrap_or_default() {
            let Some(name) = key.as_str().map(str::to_owned) else {
                errs.push("pools", format!("pool names must be strings, got {key:?}"));
                continue;
            };
            pool_names.push(name.clone());
            if let Some(pool) = errs.section::<PoolFile>(&format!("pools.{name}"), value) {
                pools.push((name, pool));
            }
        }
        let mut routes = Vec::new();
        for (i, value) in top.routes.unwrap_or_default().into_iter().enumerate() {
            if let Some(route) = errs.section::<RouteFile>(&format!("routes[{i}]"), value) {
                routes.push((i, route));
            }
        }
        Self {
            server: errs.section_or_default("server", top.server),
            listeners: errs.section_or_default("listeners", top.listeners),
            limits: errs.section_or_default("limits", top.limits),
            trusted_proxies: errs.section_or_default("trusted_proxies", top.trusted_proxies),
            dns: errs.section_or_default("dns", top.dns),
            jwt: top.jwt.and_then(|v| errs.section::<JwtFile>("jwt", v)),
            rate_limiting: errs.section_or_default("rate_limiting", top.rate_limiting),
            pools,
            pool_names,
            routes,
        }
    }
}

/// The YAML document's top level; a syntax error is the only error reported then.
fn parse_top(text: &str) -> Result<TopFile, Vec<ConfigError>> {
    match serde_yaml::from_str::<Option<TopFile>>(text) {
        Ok(top) => Ok(top.unwrap_or_default()),
        Err(e) => {
            let (line, column) = e
                .location()
                .map_or((None, None), |l| (Some(l.line()), Some(l.column())));
            let message = e.to_string();
            // serde_yaml appends " at line L column C"; the prefix already says where.
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            let path = unknown_field(&message).unwrap_or_default().to_owned();
            Err(vec![ConfigError {
                path,
                message,
                line,
                column,
            }])
        }
    }
}

pub(super) fn validate(
    file: &Path,
    text: &str,
    spans: &SpanIndex,
) -> Result<Config, Vec<ConfigError>> {
    let mut errs = Errors {
        spans,
        list: Vec::new(),
    };
    let shapes = Shapes::read(&mut errs, parse_top(text)?);

    // Pass 2, values: each section on its own (durations positive, bounds, addresses, key
    // material), and every route against the declared pools.
    let base_dir = file.parent().unwrap_or_else(|| Path::new("."));
    let server = shapes.server.map(|s| check_server(&mut errs, &s));
    let listeners = shapes
        .listeners
        .and_then(|l| check_listeners(&mut errs, &l));
    let limits = shapes.limits.map(|l| check_limits(&mut errs, &l));
    let trusted_proxies = shapes.trusted_proxies.map(|t| check_trusted(&mut errs, &t));
    let dns_nameservers = shapes.dns.map(|d| check_dns(&mut errs, &d));
    let pools: Vec<PoolConfig> = shapes
        .pools
        .into_iter()
        .filter_map(|(name, pool)| check_pool(&mut errs, name, pool, base_dir))
        .collect();
    let pool_names: Vec<&str> = shapes.pool_names.iter().map(String::as_str).collect();
    let jwt = shapes
        .jwt
        .and_then(|j| check_jwt(&mut errs, j, &pool_names, base_dir));
    let default_body_limit = limits.as_ref().map_or(0, |l| l.max_body_bytes);
    let routes = check_routes(&mut errs, shapes.routes, &pool_names, default_body_limit);
    let rate_limiting = shapes
        .rate_limiting
        .and_then(|r| check_rate_limiting(&mut errs, r));

    // Pass 3, cross-references between sections, once every section is valid on its own
    // (so that a broken section does not cause a second, derived error here).
    if errs.list.is_empty() {
        check_cross_references(&mut errs, &routes, jwt.is_some(), rate_limiting.as_ref());
    }

    match (
        server,
        listeners,
        limits,
        trusted_proxies,
        dns_nameservers,
        rate_limiting,
    ) {
        (
            Some(server),
            Some(listeners),
            Some(limits),
            Some(trusted_proxies),
            Some(dns_nameservers),
            Some(rate_limiting),
        ) if errs.list.is_empty() => Ok(Config {
            source: file.to_owned(),
            source_hash: super::content_hash(text),
            server,
            listeners,
            limits,
            trusted_proxies,
            dns_nameservers,
            jwt,
            rate_limiting,
            pools,
            routes,
        }),
        _ => Err(errs.list),
    }
}

/// What one section needs of another: a route with `auth` needs `jwt:`, a cluster limit
/// needs Redis, and there must be a route at all.
fn check_cross_references(
    errs: &mut Errors<'_>,
    routes: &[RouteConfig],
    has_jwt: bool,
    rate_limiting: Option<&RateLimiting>,
) {
    let no_redis = rate_limiting.is_some_and(|r| r.redis_url.is_none());
    for (i, route) in routes.iter().enumerate() {
        if route.auth != AuthMode::None && !has_jwt {
            errs.push(
                format!("routes[{i}].auth"),
                "needs a jwt: section to verify tokens with",
            );
        }
        let cluster = route
            .rate_limits
            .iter()
            .any(|l| l.scope == LimitScope::Cluster);
        if cluster && no_redis {
            errs.push(
                format!("routes[{i}].rate_limits"),
                "scope: cluster needs rate_limiting.redis_url",
            );
        }
    }
    if routes.is_empty() {
        errs.push("routes", "at least one route is required");
    }
}

/// Headers no `forward_claims` or `forward_secret` may name: message framing, routing and
/// connection headers, and the forwarding and request-id headers the gateway sets itself.
fn is_reserved_header(name: &HeaderName) -> bool {
    const RESERVED: [&str; 16] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "forwarded",
        "x-real-ip",
        "x-request-id",
        "authorization",
        "cookie",
        "expect",
        "content-type",
    ];
    let n = name.as_str();
    RESERVED.contains(&n) || n.starts_with("x-forwarded-") || n.starts_with("proxy-")
}
