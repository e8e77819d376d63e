//! `gateway.yaml` text -> [`Config`], collecting every error on the way.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::file::{
    AuthFile, BalanceFile, DnsFile, HealthCheckFile, HealthCheckKind, JwtFile, LimitsFile,
    ListenersFile, PoolFile, RateLimitFile, RateLimitingFile, RouteFile, ScopeFile, ServerFile,
    TopFile,
};
use super::keys;
use super::spans::SpanIndex;
use super::{
    AuthMode, Balance, Config, ConfigError, EndpointSpec, ForwardSecret, HashKey, HealthCheck,
    JwksConfig, JwksSource, JwtConfig, LimitKey, LimitScope, Limits, Listeners, PassiveHealth,
    PathMatch, PoolConfig, Probe, RateLimit, RateLimiting, Retries, RouteAction, RouteConfig,
    RouteMatch, ServerSettings, StaticKey, Timeouts,
};

/// The most retries a pool may ask for; more only multiplies load on a failing upstream.
const MAX_RETRY_ATTEMPTS: usize = 10;

/// Clock skew a token may have: more would keep expired tokens alive.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Shortest time between two JWKS fetches triggered by unknown key ids: each request with a
/// made-up `kid` would otherwise cost a fetch.
const MIN_JWKS_COOLDOWN: Duration = Duration::from_millis(100);

/// Longest period of a rate limit; GCRA state is kept for up to `per * burst / rate`.
const MAX_LIMIT_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Largest burst of a rate limit.
const MAX_BURST: u64 = 1_000_000;

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

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn require_positive(errs: &mut Errors<'_>, path: &str, value: Duration) {
    if value.is_zero() {
        errs.push(path, "must be greater than 0, got 0s");
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

    let top: TopFile = match serde_yaml::from_str::<Option<TopFile>>(text) {
        Ok(Some(top)) => top,
        Ok(None) => TopFile::default(),
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
            return Err(vec![ConfigError {
                path,
                message,
                line,
                column,
            }]);
        }
    };

    let server = top.server.map_or_else(
        || Some(ServerFile::default()),
        |v| errs.section::<ServerFile>("server", v),
    );
    let listeners = top.listeners.map_or_else(
        || Some(ListenersFile::default()),
        |v| errs.section::<ListenersFile>("listeners", v),
    );
    let limits = top.limits.map_or_else(
        || Some(LimitsFile::default()),
        |v| errs.section::<LimitsFile>("limits", v),
    );
    let trusted = top.trusted_proxies.map_or_else(
        || Some(Vec::new()),
        |v| errs.section::<Vec<String>>("trusted_proxies", v),
    );

    let dns = top.dns.map_or_else(
        || Some(DnsFile::default()),
        |v| errs.section::<DnsFile>("dns", v),
    );

    let jwt_file = top.jwt.and_then(|v| errs.section::<JwtFile>("jwt", v));
    let rate_limiting = top.rate_limiting.map_or_else(
        || Some(RateLimitingFile::default()),
        |v| errs.section::<RateLimitingFile>("rate_limiting", v),
    );

    let mut pool_files = Vec::new();
    // Routes are checked against every declared pool, valid or not, so that one broken pool
    // does not also turn each route using it into an "unknown pool" error. Indices match
    // `pools` whenever validation succeeds, since any failed pool fails the whole file.
    let mut declared = Vec::new();
    for (key, value) in top.pools.unwrap_or_default() {
        let Some(name) = key.as_str().map(str::to_owned) else {
            errs.push("pools", format!("pool names must be strings, got {key:?}"));
            continue;
        };
        let path = format!("pools.{name}");
        declared.push(name.clone());
        if let Some(pool) = errs.section::<PoolFile>(&path, value) {
            pool_files.push((name, pool));
        }
    }

    let mut route_files = Vec::new();
    for (i, value) in top.routes.unwrap_or_default().into_iter().enumerate() {
        let path = format!("routes[{i}]");
        if let Some(route) = errs.section::<RouteFile>(&path, value) {
            route_files.push((i, route));
        }
    }

    let server = server.map(|s| check_server(&mut errs, &s));
    let listeners = listeners.and_then(|l| check_listeners(&mut errs, &l));
    let limits = limits.map(|l| check_limits(&mut errs, &l));
    let trusted_proxies = trusted.map(|t| check_trusted(&mut errs, &t));
    let dns_nameservers = dns.map(|d| check_dns(&mut errs, &d));
    let base_dir = file.parent().unwrap_or_else(|| Path::new("."));
    let pools: Vec<PoolConfig> = pool_files
        .into_iter()
        .filter_map(|(name, pool)| check_pool(&mut errs, name, pool, base_dir))
        .collect();
    let pool_names: Vec<&str> = declared.iter().map(String::as_str).collect();
    let jwt = jwt_file.and_then(|j| check_jwt(&mut errs, j, &pool_names, base_dir));
    let default_body_limit = limits.as_ref().map_or(0, |l| l.max_body_bytes);
    let routes = check_routes(&mut errs, route_files, &pool_names, default_body_limit);
    let rate_limiting = rate_limiting.and_then(|r| check_rate_limiting(&mut errs, r));
    for (i, route) in routes.iter().enumerate() {
        if route.auth != AuthMode::None && jwt.is_none() && errs.list.is_empty() {
            errs.push(
                format!("routes[{i}].auth"),
                "needs a jwt: section to verify tokens with",
            );
        }
        let cluster = route
            .rate_limits
            .iter()
            .any(|l| l.scope == LimitScope::Cluster);
        let no_redis = rate_limiting
            .as_ref()
            .is_some_and(|r| r.redis_url.is_none());
        if cluster && no_redis && errs.list.is_empty() {
            errs.push(
                format!("routes[{i}].rate_limits"),
                "scope: cluster needs rate_limiting.redis_url",
            );
        }
    }
    if routes.is_empty() && errs.list.is_empty() {
        errs.push("routes", "at least one route is required");
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

fn check_server(errs: &mut Errors<'_>, s: &ServerFile) -> ServerSettings {
    if s.threads == 0 || s.threads > 256 {
        errs.push(
            "server.threads",
            format!("must be between 1 and 256, got {}", s.threads),
        );
    }
    require_positive(errs, "server.shutdown_grace", s.shutdown_grace);
    if s.upstream_keepalive_pool_size == 0 {
        errs.push(
            "server.upstream_keepalive_pool_size",
            "must be greater than 0, got 0",
        );
    }
    let buffer = usize::try_from(s.downstream_read_buffer.0).unwrap_or(usize::MAX);
    if !(1024..=1024 * 1024).contains(&buffer) {
        errs.push(
            "server.downstream_read_buffer",
            format!("must be between 1KiB and 1MiB, got {buffer} bytes"),
        );
    }
    ServerSettings {
        threads: s.threads,
        shutdown_grace: s.shutdown_grace,
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        downstream_read_buffer_bytes: buffer,
    }
}

fn check_listeners(errs: &mut Errors<'_>, l: &ListenersFile) -> Option<Listeners> {
    let parse = |errs: &mut Errors<'_>, key: &str, value: &str| match value.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errs.push(
                format!("listeners.{key}"),
                format!(
                    "invalid listen address {value:?}, expected ip:port such as \"0.0.0.0:80\""
                ),
            );
            None
        }
    };
    let http = parse(errs, "http", &l.http);
    let admin = parse(errs, "admin", &l.admin);
    let (http, admin) = (http?, admin?);
    if http == admin {
        errs.push(
            "listeners.admin",
            format!("must differ from listeners.http, both are {http}"),
        );
    }
    Some(Listeners { http, admin })
}

fn check_limits(errs: &mut Errors<'_>, l: &LimitsFile) -> Limits {
    if l.max_uri_bytes < 16 {
        errs.push(
            "limits.max_uri_bytes",
            format!("must be at least 16, got {}", l.max_uri_bytes),
        );
    }
    if l.max_header_bytes < 256 {
        errs.push(
            "limits.max_header_bytes",
            format!("must be at least 256, got {}", l.max_header_bytes),
        );
    }
    require_positive(errs, "limits.header_timeout", l.header_timeout);
    require_positive(errs, "limits.idle_timeout", l.idle_timeout);
    if l.max_connections == 0 {
        errs.push("limits.max_connections", "must be at least 1, got 0");
    }
    if l.max_connections_per_client == Some(0) {
        errs.push(
            "limits.max_connections_per_client",
            "must be at least 1, got 0 (leave it out for no per-client cap)",
        );
    }
    Limits {
        max_uri_bytes: l.max_uri_bytes,
        max_header_bytes: l.max_header_bytes,
        max_body_bytes: l.max_body_bytes.0,
        header_timeout: l.header_timeout,
        idle_timeout: l.idle_timeout,
        max_connections: l.max_connections,
        max_connections_per_client: l.max_connections_per_client,
    }
}

fn check_trusted(errs: &mut Errors<'_>, list: &[String]) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, text) in list.iter().enumerate() {
        if let Ok(net) = text.parse::<IpNet>() {
            nets.push(net);
        } else if let Ok(ip) = text.parse::<IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            errs.push(
                format!("trusted_proxies[{i}]"),
                format!("invalid CIDR {text:?}, expected e.g. \"10.0.0.0/8\" or \"127.0.0.1\""),
            );
        }
    }
    nets
}

fn check_dns(errs: &mut Errors<'_>, d: &DnsFile) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (i, text) in d.nameservers.iter().enumerate() {
        match text.parse::<SocketAddr>() {
            Ok(addr) => out.push(addr),
            Err(_) => errs.push(
                format!("dns.nameservers[{i}]"),
                format!("invalid name server {text:?}, expected ip:port such as \"127.0.0.11:53\""),
            ),
        }
    }
    out
}

/// `ip:port`, `[v6]:port` or `hostname:port`.
pub(crate) fn parse_endpoint(text: &str) -> Result<EndpointSpec, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(EndpointSpec::Addr(addr));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid endpoint {text:?}, expected ip:port or hostname:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port in endpoint {text:?}, expected 1-65535"))?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid_host {
        return Err(format!("invalid host name in endpoint {text:?}"));
    }
    Ok(EndpointSpec::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn check_pool(
    errs: &mut Errors<'_>,
    name: String,
    p: PoolFile,
    base_dir: &Path,
) -> Option<PoolConfig> {
    let before = errs.list.len();
    let at = |key: &str| format!("pools.{name}.{key}");

    if p.endpoints.is_empty() {
        errs.push(at("endpoints"), "must list at least one endpoint");
    }
    let mut endpoints = Vec::new();
    for (i, text) in p.endpoints.iter().enumerate() {
        match parse_endpoint(text) {
            Ok(spec) if endpoints.contains(&spec) => {
                errs.push(
                    format!("pools.{name}.endpoints[{i}]"),
                    format!("duplicate endpoint {text:?}"),
                );
            }
            Ok(spec) => endpoints.push(spec),
            Err(message) => errs.push(format!("pools.{name}.endpoints[{i}]"), message),
        }
    }
    require_positive(errs, &at("resolve_interval"), p.resolve_interval);
    require_positive(errs, &at("dns_grace"), p.dns_grace);

    let balance = match (p.balance, p.hash_key.as_deref()) {
        (BalanceFile::RoundRobin, None) => Some(Balance::RoundRobin),
        (BalanceFile::Random, None) => Some(Balance::Random),
        (BalanceFile::ConsistentHash, Some(key)) => match parse_hash_key(key) {
            Ok(key) => Some(Balance::ConsistentHash(key)),
            Err(message) => {
                errs.push(at("hash_key"), message);
                None
            }
        },
        (BalanceFile::ConsistentHash, None) => {
            errs.push(
                at("balance"),
                "consistent_hash needs hash_key: client_ip, path or header:<name>",
            );
            None
        }
        (_, Some(key)) => {
            errs.push(
                at("hash_key"),
                format!("hash_key {key:?} is only used with balance: consistent_hash"),
            );
            None
        }
    };

    let t = &p.timeouts;
    for (key, value) in [
        ("connect", t.connect),
        ("read", t.read),
        ("write", t.write),
        ("idle", t.idle),
    ] {
        require_positive(errs, &at(&format!("timeouts.{key}")), value);
    }

    let health_check = p
        .health_check
        .and_then(|hc| check_health(errs, &at("health_check"), hc));

    if p.passive_health.consecutive_failures > 0 {
        require_positive(
            errs,
            &at("passive_health.cooldown"),
            p.passive_health.cooldown,
        );
    }
    if p.retries.attempts > MAX_RETRY_ATTEMPTS {
        errs.push(
            at("retries.attempts"),
            format!(
                "must be at most {MAX_RETRY_ATTEMPTS}, got {}",
                p.retries.attempts
            ),
        );
    }

    let forward_secret = p
        .forward_secret
        .and_then(|f| check_forward_secret(errs, &at("forward_secret"), f, base_dir));

    if errs.list.len() != before {
        return None;
    }
    Some(PoolConfig {
        forward_secret,
        name,
        endpoints,
        resolve_interval: p.resolve_interval,
        dns_grace: p.dns_grace,
        balance: balance?,
        timeouts: Timeouts {
            connect: t.connect,
            read: t.read,
            write: t.write,
            idle: t.idle,
        },
        health_check,
        passive: PassiveHealth {
            consecutive_failures: p.passive_health.consecutive_failures,
            cooldown: p.passive_health.cooldown,
        },
        retries: Retries {
            attempts: p.retries.attempts,
            idempotent_on_reset: p.retries.idempotent_on_reset,
        },
    })
}

fn parse_hash_key(text: &str) -> Result<HashKey, String> {
    match text {
        "client_ip" => Ok(HashKey::ClientIp),
        "path" => Ok(HashKey::Path),
        other => {
            let name = other.strip_prefix("header:").ok_or_else(|| {
                format!("unknown hash_key {other:?}, expected client_ip, path or header:<name>")
            })?;
            HeaderName::from_bytes(name.trim().as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("invalid header name {name:?} in hash_key"))
        }
    }
}

fn check_health(errs: &mut Errors<'_>, at: &str, hc: HealthCheckFile) -> Option<HealthCheck> {
    let before = errs.list.len();
    require_positive(errs, &format!("{at}.interval"), hc.interval);
    require_positive(errs, &format!("{at}.timeout"), hc.timeout);
    for (key, value) in [
        ("healthy_threshold", hc.healthy_threshold),
        ("unhealthy_threshold", hc.unhealthy_threshold),
    ] {
        if value == 0 {
            errs.push(format!("{at}.{key}"), "must be at least 1, got 0");
        }
    }
    let probe = match hc.kind {
        HealthCheckKind::Tcp => {
            for (key, set) in [
                ("path", hc.path.is_some()),
                ("host", hc.host.is_some()),
                ("expect_status", hc.expect_status.is_some()),
            ] {
                if set {
                    errs.push(format!("{at}.{key}"), "only applies to kind: http");
                }
            }
            Probe::Tcp
        }
        HealthCheckKind::Http => {
            let path = hc.path.unwrap_or_else(|| "/".to_owned());
            if !path.starts_with('/') {
                errs.push(
                    format!("{at}.path"),
                    format!("must start with '/', got {path:?}"),
                );
            }
            let mut expect_status = Vec::new();
            for (i, code) in hc.expect_status.unwrap_or_default().into_iter().enumerate() {
                match StatusCode::from_u16(code) {
                    Ok(status) if (100..600).contains(&code) => expect_status.push(status),
                    _ => errs.push(
                        format!("{at}.expect_status[{i}]"),
                        format!("not an HTTP status code: {code}"),
                    ),
                }
            }
            Probe::Http {
                path,
                host: hc.host.unwrap_or_else(|| "localhost".to_owned()),
                expect_status,
            }
        }
    };
    (errs.list.len() == before).then_some(HealthCheck {
        probe,
        interval: hc.interval,
        timeout: hc.timeout,
        healthy_threshold: hc.healthy_threshold,
        unhealthy_threshold: hc.unhealthy_threshold,
    })
}

fn check_routes(
    errs: &mut Errors<'_>,
    files: Vec<(usize, RouteFile)>,
    pools: &[&str],
    default_body_limit: u64,
) -> Vec<RouteConfig> {
    let mut routes: Vec<(usize, RouteConfig)> = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in files {
        let at = |key: &str| format!("routes[{i}].{key}");
        let before = errs.list.len();

        let path = match (r.matcher.path_prefix, r.matcher.path) {
            (Some(prefix), None) => Some(PathMatch::Prefix(prefix)),
            (None, Some(exact)) => Some(PathMatch::Exact(exact)),
            (Some(_), Some(_)) => {
                errs.push(at("match"), "set either path_prefix or path, not both");
                None
            }
            (None, None) => {
                errs.push(at("match"), "needs path_prefix or path");
                None
            }
        };
        if let Some(PathMatch::Prefix(p) | PathMatch::Exact(p)) = &path {
            let key = if matches!(path, Some(PathMatch::Prefix(_))) {
                "match.path_prefix"
            } else {
                "match.path"
            };
            // Requests are matched in canonical form, so a route spelled otherwise could
            // never match (a prefix may keep one trailing '/', which means the same).
            let bare = match &path {
                Some(PathMatch::Prefix(_)) if p.len() > 1 => p.strip_suffix('/').unwrap_or(p),
                _ => p.as_str(),
            };
            if !p.starts_with('/') {
                errs.push(at(key), format!("must start with '/', got {p:?}"));
            } else {
                match crate::path::normalize(bare) {
                    Ok(None) => {}
                    Ok(Some(canonical)) => errs.push(
                        at(key),
                        format!(
                            "must be a canonical path (requests are matched in canonical form), \
                             got {p:?}; write {canonical:?}"
                        ),
                    ),
                    Err(why) => errs.push(
                        at(key),
                        format!("holds {why}, which no request path may contain, got {p:?}"),
                    ),
                }
            }
        }

        let host = r.matcher.host.map(|h| h.to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty() || h.contains(['/', ':', ' ']) {
                errs.push(
                    at("match.host"),
                    format!("expected a bare host name such as \"api.example.com\", got {h:?}"),
                );
            }
        }

        let methods = r.matcher.methods.map(|list| {
            let mut parsed = Vec::new();
            for (j, m) in list.iter().enumerate() {
                match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(method) => parsed.push(method),
                    Err(_) => errs.push(
                        format!("routes[{i}].match.methods[{j}]"),
                        format!("invalid HTTP method {m:?}"),
                    ),
                }
            }
            parsed
        });
        if methods.as_ref().is_some_and(Vec::is_empty) {
            errs.push(
                at("match.methods"),
                "must list at least one method, or be left out to match all",
            );
        }

        let action = match (r.pool, r.respond) {
            (Some(pool), None) => match pools.iter().position(|p| *p == pool) {
                Some(index) => {
                    if r.strip_prefix && !matches!(path, Some(PathMatch::Prefix(_))) {
                        errs.push(
                            at("strip_prefix"),
                            "only applies to match.path_prefix routes",
                        );
                    }
                    Some(RouteAction::Proxy {
                        pool: index,
                        strip_prefix: r.strip_prefix,
                    })
                }
                None => {
                    errs.push(
                        at("pool"),
                        format!("unknown pool {pool:?} (known: {})", pools.join(", ")),
                    );
                    None
                }
            },
            (None, Some(respond)) => {
                if r.strip_prefix {
                    errs.push(at("strip_prefix"), "only applies to routes with a pool");
                }
                match StatusCode::from_u16(respond.status) {
                    Ok(status) if (100..600).contains(&respond.status) => {
                        Some(RouteAction::Respond {
                            status,
                            body: Bytes::from(respond.body),
                            content_type: respond.content_type,
                        })
                    }
                    _ => {
                        errs.push(
                            at("respond.status"),
                            format!("not an HTTP status code: {}", respond.status),
                        );
                        None
                    }
                }
            }
            (Some(_), Some(_)) => {
                errs.push(at("pool"), "set either pool or respond, not both");
                None
            }
            (None, None) => {
                errs.push(
                    format!("routes[{i}]"),
                    "needs a pool to proxy to or a fixed respond",
                );
                None
            }
        };

        let (Some(path), Some(action)) = (path, action) else {
            continue;
        };
        if errs.list.len() != before {
            continue;
        }
        let matcher = RouteMatch {
            path,
            host,
            methods,
        };
        if let Some((j, _)) = routes
            .iter()
            .find(|(_, other)| overlaps(&other.matcher, &matcher))
        {
            errs.push(
                at("match"),
                format!("duplicates routes[{j}]: same host, path and methods, so this route could never match"),
            );
            continue;
        }
        let explicit_name = r.name.is_some();
        let name = r.name.unwrap_or_else(|| {
            let p = match &matcher.path {
                PathMatch::Exact(p) | PathMatch::Prefix(p) => p.clone(),
            };
            matcher
                .host
                .as_ref()
                .map_or(p.clone(), |h| format!("{h}{p}"))
        });
        if !names.insert(name.clone()) && explicit_name {
            errs.push(at("name"), format!("duplicate route name {name:?}"));
            continue;
        }
        let body_limit = r.body_limit.map_or(default_body_limit, |b| b.0);
        let mut rate_limits = Vec::new();
        for (j, limit) in r.rate_limits.iter().enumerate() {
            if let Some(limit) =
                check_rate_limit(errs, &format!("routes[{i}].rate_limits[{j}]"), limit)
            {
                rate_limits.push(limit);
            }
        }
        let auth = match r.auth {
            AuthFile::None => AuthMode::None,
            AuthFile::Optional => AuthMode::Optional,
            AuthFile::Required => AuthMode::Required,
        };
        routes.push((
            i,
            RouteConfig {
                name,
                matcher,
                action,
                body_limit,
                auth,
                rate_limits,
            },
        ));
    }
    routes.into_iter().map(|(_, r)| r).collect()
}

/// Two matchers collide when one could never be chosen over the other: the same host and
/// path, and either both match every method or their method lists share one.
fn overlaps(a: &RouteMatch, b: &RouteMatch) -> bool {
    if a.path != b.path || a.host != b.host {
        return false;
    }
    match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        (None, None) => true,
        _ => false,
    }
}

fn check_jwt(
    errs: &mut Errors<'_>,
    j: JwtFile,
    pools: &[&str],
    base_dir: &Path,
) -> Option<JwtConfig> {
    let before = errs.list.len();
    if j.issuers.is_empty() {
        errs.push("jwt.issuers", "must list at least one accepted issuer");
    }
    if j.audiences.is_empty() {
        errs.push("jwt.audiences", "must list at least one accepted audience");
    }
    if j.leeway > MAX_LEEWAY {
        errs.push(
            "jwt.leeway",
            format!(
                "must be at most {}, got {}",
                humantime::format_duration(MAX_LEEWAY),
                humantime::format_duration(j.leeway)
            ),
        );
    }
    let mut forward_claims = Vec::new();
    for (claim, header) in &j.forward_claims {
        let (Some(claim), Some(header)) = (claim.as_str(), header.as_str()) else {
            errs.push("jwt.forward_claims", "expected claim: Header-Name pairs");
            continue;
        };
        match HeaderName::from_bytes(header.as_bytes()) {
            Ok(name) if is_reserved_header(&name) => errs.push(
                format!("jwt.forward_claims.{claim}"),
                format!(
                    "{header:?} is a framing, routing or forwarding header the gateway owns; \
                     name another header (e.g. X-User-Id)"
                ),
            ),
            Ok(name) => forward_claims.push((claim.to_owned(), name)),
            Err(_) => errs.push(
                format!("jwt.forward_claims.{claim}"),
                format!("invalid header name {header:?}"),
            ),
        }
    }
    let verification_limit = j.verification_limit.and_then(|l| {
        check_rate_limit(
            errs,
            "jwt.verification_limit",
            &RateLimitFile {
                key: "client_ip".to_owned(),
                rate: l.rate,
                per: l.per,
                burst: l.burst,
                scope: ScopeFile::Local,
                fail_open: true,
            },
        )
    });
    let jwks = j.jwks.and_then(|k| {
        require_positive(errs, "jwt.jwks.refresh_interval", k.refresh_interval);
        require_positive(errs, "jwt.jwks.timeout", k.timeout);
        if k.min_refresh_interval < MIN_JWKS_COOLDOWN {
            errs.push(
                "jwt.jwks.min_refresh_interval",
                format!(
                    "must be at least {} (each unknown key id may trigger a fetch), got {}",
                    humantime::format_duration(MIN_JWKS_COOLDOWN),
                    humantime::format_duration(k.min_refresh_interval)
                ),
            );
        }
        let source = match (k.url, k.pool, k.path) {
            (Some(url), None, None) if url.starts_with("http://") => Some(JwksSource::Url(url)),
            (Some(url), None, None) => {
                errs.push(
                    "jwt.jwks.url",
                    format!("expected an http:// URL, got {url:?}"),
                );
                None
            }
            (None, Some(pool), path) => match pools.iter().position(|p| *p == pool) {
                Some(index) => Some(JwksSource::Pool {
                    pool: index,
                    path: path.unwrap_or_else(|| "/.well-known/jwks.json".to_owned()),
                }),
                None => {
                    errs.push(
                        "jwt.jwks.pool",
                        format!("unknown pool {pool:?} (known: {})", pools.join(", ")),
                    );
                    None
                }
            },
            _ => {
                errs.push("jwt.jwks", "set either url, or pool (and optionally path)");
                None
            }
        };
        source.map(|source| JwksConfig {
            source,
            refresh_interval: k.refresh_interval,
            min_refresh_interval: k.min_refresh_interval,
            timeout: k.timeout,
        })
    });
    let mut keys = Vec::new();
    for (i, k) in j.keys.into_iter().enumerate() {
        let at = |key: &str| format!("jwt.keys[{i}].{key}");
        let Ok(alg) = k.alg.parse::<jsonwebtoken::Algorithm>() else {
            errs.push(
                at("alg"),
                format!(
                    "unknown algorithm {:?}, expected e.g. EdDSA, ES256, RS256, PS256, HS256",
                    k.alg
                ),
            );
            continue;
        };
        let hmac = matches!(
            alg,
            jsonwebtoken::Algorithm::HS256
                | jsonwebtoken::Algorithm::HS384
                | jsonwebtoken::Algorithm::HS512
        );
        let read = match (k.pem_file, k.jwk_file, k.secret_env, k.secret_file) {
            (Some(pem), None, None, None) if !hmac => {
                Some(("pem_file", keys::read_pem(&base_dir.join(pem))))
            }
            (None, Some(jwk), None, None) if !hmac => {
                Some(("jwk_file", keys::read_jwk(&base_dir.join(jwk))))
            }
            (None, None, Some(env), None) if hmac => {
                Some(("secret_env", keys::read_secret_env(&env)))
            }
            (None, None, None, Some(file)) if hmac => {
                Some(("secret_file", keys::read_secret_file(&base_dir.join(file))))
            }
            _ if hmac => {
                errs.push(
                    at("alg"),
                    "HMAC keys need exactly one of secret_env or secret_file",
                );
                None
            }
            _ => {
                errs.push(
                    at("alg"),
                    "public keys need exactly one of pem_file or jwk_file (and no secret)",
                );
                None
            }
        };
        // The material is read once, here, and checked to make a key of its algorithm.
        let material = read.and_then(|(key, result)| {
            match result.and_then(|m| keys::decoding_key(alg, &m).map(|_| m)) {
                Ok(material) => Some(material),
                Err(message) => {
                    errs.push(at(key), message);
                    None
                }
            }
        });
        if let Some(material) = material {
            keys.push(StaticKey {
                alg,
                kid: k.kid,
                material,
            });
        }
    }
    if jwks.is_none() && keys.is_empty() && errs.list.len() == before {
        errs.push("jwt", "needs jwks or keys to verify tokens with");
    }
    (errs.list.len() == before).then(|| JwtConfig {
        issuers: j.issuers,
        audiences: j.audiences,
        leeway: j.leeway,
        required_claims: j.required_claims,
        forward_claims,
        jwks,
        keys,
        verification_limit,
    })
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

/// `pools.<name>.forward_secret`: the header and the secret, read now (a missing or short secret is a
/// config error, not a surprise at the first request).
fn check_forward_secret(
    errs: &mut Errors<'_>,
    at: &str,
    f: super::file::ForwardSecretFile,
    base_dir: &Path,
) -> Option<ForwardSecret> {
    let header = match HeaderName::from_bytes(f.header.as_bytes()) {
        Ok(name) if is_reserved_header(&name) => {
            errs.push(
                format!("{at}.header"),
                format!("{:?} is a header the gateway owns", f.header),
            );
            return None;
        }
        Ok(name) => name,
        Err(_) => {
            errs.push(
                format!("{at}.header"),
                format!("invalid header name {:?}", f.header),
            );
            return None;
        }
    };
    let secret = match (f.secret_file, f.secret_env) {
        (Some(file), None) => match std::fs::read(base_dir.join(&file)) {
            Ok(bytes) => bytes.trim_ascii().to_vec(),
            Err(e) => {
                errs.push(
                    format!("{at}.secret_file"),
                    format!("cannot read {file:?}: {e}"),
                );
                return None;
            }
        },
        (None, Some(var)) => match std::env::var(&var) {
            Ok(value) => value.trim().as_bytes().to_vec(),
            Err(_) => {
                errs.push(
                    format!("{at}.secret_env"),
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
        },
        _ => {
            errs.push(at, "needs exactly one of secret_file or secret_env");
            return None;
        }
    };
    if secret.len() < 16 {
        errs.push(at, "the secret must be at least 16 bytes");
        return None;
    }
    match http::HeaderValue::from_bytes(&secret) {
        Ok(value) => Some(ForwardSecret { header, value }),
        Err(_) => {
            errs.push(
                at,
                "the secret must be visible ASCII (it is sent as a header)",
            );
            None
        }
    }
}

fn check_rate_limiting(errs: &mut Errors<'_>, r: RateLimitingFile) -> Option<RateLimiting> {
    let before = errs.list.len();
    if let Some(url) = &r.redis_url {
        if redis::Client::open(url.as_str()).is_err() {
            errs.push(
                "rate_limiting.redis_url",
                format!("invalid Redis URL {url:?}, expected redis://host:port"),
            );
        }
    }
    require_positive(errs, "rate_limiting.redis_timeout", r.redis_timeout);
    if r.max_local_keys == 0 {
        errs.push(
            "rate_limiting.max_local_keys",
            "must be greater than 0, got 0",
        );
    }
    if !(1..=128).contains(&r.ipv6_prefix) {
        errs.push(
            "rate_limiting.ipv6_prefix",
            format!("must be between 1 and 128, got {}", r.ipv6_prefix),
        );
    }
    (errs.list.len() == before).then_some(RateLimiting {
        redis_url: r.redis_url,
        redis_timeout: r.redis_timeout,
        key_prefix: r.key_prefix,
        headers_on_success: r.headers_on_success,
        max_local_keys: r.max_local_keys,
        ipv6_prefix: r.ipv6_prefix,
    })
}

fn check_rate_limit(errs: &mut Errors<'_>, at: &str, l: &RateLimitFile) -> Option<RateLimit> {
    let before = errs.list.len();
    let key = match l.key.as_str() {
        "client_ip" => Some(LimitKey::ClientIp),
        "subject" => Some(LimitKey::Subject),
        "route" => Some(LimitKey::Route),
        other => match other
            .strip_prefix("header:")
            .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
        {
            Some(Ok(name)) => Some(LimitKey::Header(name)),
            _ => {
                errs.push(
                    format!("{at}.key"),
                    format!("unknown key {other:?}, expected client_ip, subject, route or header:<name>"),
                );
                None
            }
        },
    };
    if l.rate == 0 {
        errs.push(format!("{at}.rate"), "must be greater than 0, got 0");
    }
    require_positive(errs, &format!("{at}.per"), l.per);
    // An unset burst follows the rate, whose own error already covers a zero.
    let burst = l.burst.unwrap_or(l.rate);
    if l.burst == Some(0) {
        errs.push(format!("{at}.burst"), "must be at least 1, got 0");
    }
    if l.per > MAX_LIMIT_PERIOD {
        errs.push(
            format!("{at}.per"),
            format!(
                "must be at most {}, got {}",
                humantime::format_duration(MAX_LIMIT_PERIOD),
                humantime::format_duration(l.per)
            ),
        );
    }
    if burst > MAX_BURST {
        errs.push(
            format!("{at}.burst"),
            format!("must be at most {MAX_BURST}, got {burst}"),
        );
    }
    if u128::from(l.rate) > l.per.as_micros() {
        errs.push(
            format!("{at}.rate"),
            format!(
                "{} per {:?} is finer than one per microsecond",
                l.rate, l.per
            ),
        );
    }
    let scope = match l.scope {
        ScopeFile::Local => LimitScope::Local,
        ScopeFile::Cluster => LimitScope::Cluster,
    };
    (errs.list.len() == before).then(|| RateLimit {
        key: key.unwrap_or(LimitKey::Route),
        rate: l.rate,
        per: l.per,
        burst,
        scope,
        fail_open: l.fail_open,
    })
}
