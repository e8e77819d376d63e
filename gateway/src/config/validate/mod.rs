//! `gateway.yaml` text -> [`Config`], collecting every error on the way.

mod edge;
mod jwt;
mod limits;
mod pools;
mod routes;
mod server;
mod shapes;
mod tls;

use std::path::Path;
use std::time::Duration;

use http::HeaderName;

use super::spans::SpanIndex;
use super::{AuthMode, Config, ConfigError, LimitScope, PoolConfig, RateLimiting, RouteConfig};
use jwt::check_jwt;
use limits::check_rate_limiting;
use pools::check_pool;
use routes::check_routes;
use server::{check_dns, check_limits, check_listeners, check_server, check_trusted};
use shapes::Shapes;
use tls::check_tls;

/// Collects errors and places each one in the file.
struct Errors<'a> {
    spans: &'a SpanIndex,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    /// An error at the position of its key path.
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let pos = self.spans.locate(&path);
        self.push_at(path, pos, message);
    }

    /// An error at a position known otherwise than by its key path.
    fn push_at(
        &mut self,
        path: impl Into<String>,
        pos: Option<super::spans::Position>,
        message: impl Into<String>,
    ) {
        self.list.push(ConfigError {
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: path.into(),
            message: message.into(),
        });
    }

    /// Run a check that builds a value; the value counts only if the check recorded no
    /// error (so a half-checked value never reaches the model).
    fn scoped<T>(&mut self, check: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let before = self.list.len();
        let value = check(self);
        value.filter(|_| self.list.len() == before)
    }
}

/// A CIDR, or a single address as the network of just that address.
fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn require_positive(errs: &mut Errors<'_>, path: &str, value: Duration) {
    if value.is_zero() {
        errs.push(path, "must be greater than 0, got 0s");
    }
}

/// `value` must not exceed `max`.
fn require_at_most(errs: &mut Errors<'_>, path: &str, value: Duration, max: Duration) {
    if value > max {
        errs.push(
            path,
            format!("must be at most {}, got {}", human(max), human(value)),
        );
    }
}

/// `value` must reach `min`; `why` says what a smaller one would cost.
fn require_at_least(errs: &mut Errors<'_>, path: &str, value: Duration, min: Duration, why: &str) {
    if value < min {
        errs.push(
            path,
            format!(
                "must be at least {} ({why}), got {}",
                human(min),
                human(value)
            ),
        );
    }
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
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
    let Some(shapes) = Shapes::read(&mut errs, text) else {
        return Err(errs.list);
    };

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
    let identity_headers = identity_headers(
        jwt.as_ref(),
        &pools,
        &shapes.routes,
        shapes.route_defaults.as_ref(),
    );
    let cx = edge::EdgeContext {
        base_dir,
        identity_headers: &identity_headers,
    };
    let defaults = shapes
        .route_defaults
        .map(|d| edge::check_defaults(&mut errs, d, &cx))
        .unwrap_or_default();
    // Which pools speak plain HTTP (a mirror needs one), by position in `pool_names`.
    let plain: Vec<bool> = pool_names
        .iter()
        .map(|name| {
            pools
                .iter()
                .find(|p| p.name == *name)
                .is_none_or(|p| p.tls.is_none())
        })
        .collect();
    let routes = check_routes(
        &mut errs,
        shapes.routes,
        &pool_names,
        &plain,
        default_body_limit,
        &defaults,
        &cx,
    );
    let rate_limiting = shapes
        .rate_limiting
        .and_then(|r| check_rate_limiting(&mut errs, r));
    let tls = shapes.tls.and_then(|t| check_tls(&mut errs, &t, base_dir));

    // Pass 3, cross-references between sections, once every section is valid on its own
    // (so that a broken section does not cause a second, derived error here).
    if errs.list.is_empty() {
        check_cross_references(&mut errs, &routes, jwt.is_some(), rate_limiting.as_ref());
        let https = listeners.as_ref().and_then(|l| l.https);
        if https.is_some() && tls.is_none() {
            errs.push(
                "listeners.https",
                "needs a tls: section with the certificates to serve",
            );
        }
        if https.is_none() && tls.as_ref().is_some_and(|t| t.redirect_http) {
            errs.push("tls.redirect_http", "needs listeners.https to redirect to");
        }
        if https.is_none() && tls.as_ref().is_some_and(|t| t.acme.is_some()) {
            errs.push(
                "tls.acme",
                "needs listeners.https to serve its certificate on",
            );
        }
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
            tls,
            pools,
            routes,
        }),
        _ => Err(errs.list),
    }
}

/// Request headers the gateway sets from what it verified: forwarded JWT claims, pool
/// secrets, basic-auth users and API key names. No header rule may touch them.
fn identity_headers(
    jwt: Option<&super::JwtConfig>,
    pools: &[PoolConfig],
    routes: &[(usize, crate::config::file::RouteFile)],
    defaults: Option<&crate::config::file::RouteDefaultsFile>,
) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = jwt
        .map(|j| j.forward_claims.iter().map(|(_, h)| h.clone()).collect())
        .unwrap_or_default();
    out.extend(
        pools
            .iter()
            .filter_map(|p| p.forward_secret.as_ref().map(|s| s.header.clone())),
    );
    let users = routes
        .iter()
        .filter_map(|(_, r)| r.basic_auth.as_ref())
        .chain(defaults.and_then(|d| d.basic_auth.as_ref()));
    out.extend(
        users.filter_map(|b| HeaderName::from_bytes(b.forward_user.as_deref()?.as_bytes()).ok()),
    );
    let key_names = routes
        .iter()
        .filter_map(|(_, r)| r.api_keys.as_ref())
        .chain(defaults.and_then(|d| d.api_keys.as_ref()));
    out.extend(key_names.filter_map(|k| HeaderName::from_bytes(k.forward_name.as_bytes()).ok()));
    let copied = routes
        .iter()
        .filter_map(|(_, r)| r.forward_auth.as_ref())
        .chain(defaults.and_then(|d| d.forward_auth.as_ref()));
    out.extend(
        copied
            .flat_map(|f| f.copy_headers.iter())
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
    );
    out
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
