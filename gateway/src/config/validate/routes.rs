//! `routes:`: matchers, actions, body limits, auth and rate limits of each route.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::edge::{check_redirect, check_route, EdgeContext, RoutePolicies};
use super::limits::check_rate_limit;
use super::{is_reserved_header, require_positive, Errors};
use crate::config::edge::EdgePolicies;
use crate::config::file::{
    AuthFile, MatchFile, MirrorFile, RedirectFile, RespondFile, RouteFile, RouteTimeoutsFile,
    SplitFile,
};
use crate::config::{
    AuthMode, Mirror, PathMatch, RouteAction, RouteConfig, RouteMatch, RouteTimeouts, Split,
    StickyKey,
};

pub(super) fn check_routes(
    errs: &mut Errors<'_>,
    files: Vec<(usize, RouteFile)>,
    pools: &[&str],
    plain: &[bool],
    default_body_limit: u64,
    defaults: &EdgePolicies,
    cx: &EdgeContext<'_>,
) -> Vec<RouteConfig> {
    let mut routes: Vec<(usize, RouteConfig)> = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in files {
        let at = |key: &str| format!("routes[{i}].{key}");
        let RouteFile {
            name,
            matcher,
            pool,
            strip_prefix,
            respond,
            body_limit,
            auth,
            rate_limits,
            https_redirect,
            redirect,
            rewrite,
            upstream_host,
            ip_allow,
            ip_deny,
            security_headers,
            request_headers,
            response_headers,
            cors,
            basic_auth,
            compression,
            api_keys,
            forward_auth,
            timeouts,
            split,
            sticky,
            override_header,
            mirror,
        } = r;
        let mut pool = pool;
        if let Some(first) = split.as_ref().and_then(|s| s.first()) {
            if pool.is_some() {
                errs.push(at("split"), "set either pool or split, not both");
                continue;
            }
            pool = Some(first.pool.clone());
        } else {
            for (key, set) in [
                ("sticky", sticky.is_some()),
                ("override_header", override_header.is_some()),
            ] {
                if set {
                    errs.push(at(key), "only applies with split");
                }
            }
        }
        let split = split.and_then(|entries| {
            check_split(
                errs,
                &at("split"),
                SplitParts {
                    entries,
                    sticky,
                    override_header,
                },
                pools,
            )
        });
        if rewrite.is_some() && strip_prefix {
            errs.push(
                at("rewrite"),
                "set either strip_prefix or rewrite, not both",
            );
            continue;
        }
        let actions = Actions {
            pool,
            respond,
            redirect,
            strip_prefix,
        };
        let target = errs.scoped(|errs| check_target(errs, i, matcher, actions, pools));
        let Some((matcher, action)) = target else {
            continue;
        };
        if !matches!(action, RouteAction::Proxy { .. }) {
            for (key, set) in [
                ("rewrite", rewrite.is_some()),
                ("upstream_host", upstream_host.is_some()),
                ("request_headers", request_headers.is_some()),
                ("timeouts", timeouts.is_some()),
                ("mirror", mirror.is_some()),
            ] {
                if set {
                    errs.push(at(key), "only applies to routes with a pool");
                }
            }
        }
        let captures = match &action {
            RouteAction::Redirect(r) => Some(r.pattern.clone()),
            _ => None,
        };
        let has_basic_auth = basic_auth.is_some() || defaults.basic_auth.is_some();
        let own = RoutePolicies {
            ip_allow,
            ip_deny,
            security_headers,
            request_headers,
            response_headers,
            cors,
            basic_auth,
            compression,
            api_keys,
            forward_auth,
            rewrite,
            upstream_host,
        };
        let policies = check_route(errs, i, own, defaults, captures.as_ref(), cx);
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
        let explicit_name = name.is_some();
        let name = name.unwrap_or_else(|| {
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
        let timeouts = check_timeouts(errs, &at("timeouts"), timeouts.unwrap_or_default());
        let mirror = mirror.and_then(|m| check_mirror(errs, &at("mirror"), &m, pools, plain));
        let body_limit = body_limit.map_or(default_body_limit, |b| b.0);
        let limits = rate_limits;
        let mut rate_limits = Vec::new();
        for (j, limit) in limits.iter().enumerate() {
            if let Some(limit) =
                check_rate_limit(errs, &format!("routes[{i}].rate_limits[{j}]"), limit)
            {
                rate_limits.push(limit);
            }
        }
        let auth = match auth {
            AuthFile::None => AuthMode::None,
            AuthFile::Optional => AuthMode::Optional,
            AuthFile::Required => AuthMode::Required,
        };
        // Both read the one Authorization header: a request could never satisfy both.
        if auth != AuthMode::None && has_basic_auth {
            errs.push(
                at("basic_auth"),
                "cannot be combined with auth (both read the Authorization header)",
            );
        }
        routes.push((
            i,
            RouteConfig {
                name,
                matcher,
                action,
                body_limit,
                auth,
                rate_limits,
                https_redirect,
                policies,
                timeouts,
                split,
                mirror,
            },
        ));
    }
    routes.into_iter().map(|(_, r)| r).collect()
}

/// `split` with its `sticky` and `override_header`, as written.
struct SplitParts {
    entries: Vec<SplitFile>,
    sticky: Option<String>,
    override_header: Option<String>,
}

fn check_split(
    errs: &mut Errors<'_>,
    at: &str,
    parts: SplitParts,
    pools: &[&str],
) -> Option<Arc<Split>> {
    let SplitParts {
        entries,
        sticky,
        override_header,
    } = parts;
    let parent = at.rsplit_once('.').map_or(at, |(route, _)| route);
    errs.scoped(|errs| {
        let mut chosen: Vec<(usize, u32)> = Vec::new();
        for (j, entry) in entries.iter().enumerate() {
            match pools.iter().position(|p| *p == entry.pool) {
                Some(index) if chosen.iter().any(|(i, _)| *i == index) => errs.push(
                    format!("{at}[{j}].pool"),
                    format!("{:?} is listed twice", entry.pool),
                ),
                Some(index) => chosen.push((index, entry.weight)),
                None => errs.push(
                    format!("{at}[{j}].pool"),
                    format!(
                        "unknown pool {:?} (known: {})",
                        entry.pool,
                        pools.join(", ")
                    ),
                ),
            }
            if entry.weight > 10_000 {
                errs.push(
                    format!("{at}[{j}].weight"),
                    format!("must be at most 10000, got {}", entry.weight),
                );
            }
        }
        if entries.iter().map(|e| u64::from(e.weight)).sum::<u64>() == 0 {
            errs.push(at, "the weights must not all be 0");
        }
        let sticky = sticky.and_then(|text| match parse_sticky(&text) {
            Ok(key) => Some(key),
            Err(message) => {
                errs.push(format!("{parent}.sticky"), message);
                None
            }
        });
        let override_header =
            override_header.and_then(|name| match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) if !is_reserved_header(&header) => Some(header),
                _ => {
                    errs.push(
                        format!("{parent}.override_header"),
                        format!("{name:?} is not a header name a client may choose"),
                    );
                    None
                }
            });
        Some(Arc::new(Split {
            pools: chosen,
            sticky,
            override_header,
        }))
    })
}

fn parse_sticky(text: &str) -> Result<StickyKey, String> {
    let invalid = || {
        format!("unknown sticky key {text:?}, expected subject, client_ip, header:<name> or cookie:<name>")
    };
    match text {
        "subject" => Ok(StickyKey::Subject),
        "client_ip" => Ok(StickyKey::ClientIp),
        _ => match text.split_once(':') {
            Some(("header", name)) => http::HeaderName::from_bytes(name.trim().as_bytes())
                .map(StickyKey::Header)
                .map_err(|_| invalid()),
            Some(("cookie", name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"=;,".contains(&b)) =>
            {
                Ok(StickyKey::Cookie(name.to_owned()))
            }
            _ => Err(invalid()),
        },
    }
}

fn check_mirror(
    errs: &mut Errors<'_>,
    at: &str,
    m: &MirrorFile,
    pools: &[&str],
    plain: &[bool],
) -> Option<Mirror> {
    errs.scoped(|errs| {
        let pool = pools.iter().position(|p| *p == m.pool);
        match pool {
            None => errs.push(
                format!("{at}.pool"),
                format!("unknown pool {:?} (known: {})", m.pool, pools.join(", ")),
            ),
            Some(index) if !plain[index] => errs.push(
                format!("{at}.pool"),
                format!("{:?} has tls:; a mirror pool must speak plain HTTP", m.pool),
            ),
            Some(_) => {}
        }
        if !(0.0..=100.0).contains(&m.percent) {
            errs.push(
                format!("{at}.percent"),
                format!("must be between 0 and 100, got {}", m.percent),
            );
        }
        if m.max_in_flight == 0 {
            errs.push(format!("{at}.max_in_flight"), "must be at least 1, got 0");
        }
        Some(Mirror {
            pool: pool?,
            percent: m.percent,
            max_in_flight: m.max_in_flight,
            max_body: m.max_body.0,
        })
    })
}

fn check_timeouts(errs: &mut Errors<'_>, at: &str, t: RouteTimeoutsFile) -> RouteTimeouts {
    for (key, value) in [
        ("request", t.request),
        ("upstream_response", t.upstream_response),
    ] {
        if let Some(value) = value {
            require_positive(errs, &format!("{at}.{key}"), value);
        }
    }
    let deadline_header =
        t.deadline_header
            .and_then(|name| match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) if is_reserved_header(&header) => {
                    errs.push(
                        format!("{at}.deadline_header"),
                        format!("{name:?} is a header the gateway owns"),
                    );
                    None
                }
                Ok(header) => Some(header),
                Err(_) => {
                    errs.push(
                        format!("{at}.deadline_header"),
                        format!("invalid header name {name:?}"),
                    );
                    None
                }
            });
    if deadline_header.is_some() && t.request.is_none() {
        errs.push(format!("{at}.deadline_header"), "needs timeouts.request");
    }
    RouteTimeouts {
        request: t.request,
        upstream_response: t.upstream_response,
        deadline_header,
    }
}

/// What a route does with a request: exactly one of `pool`, `respond` and `redirect`.
struct Actions {
    pool: Option<String>,
    respond: Option<RespondFile>,
    redirect: Option<RedirectFile>,
    strip_prefix: bool,
}

/// A route's matcher and action: its path (canonical), host, methods, and the pool it proxies
/// to or the answer it gives.
fn check_target(
    errs: &mut Errors<'_>,
    i: usize,
    matcher: MatchFile,
    actions: Actions,
    pools: &[&str],
) -> Option<(RouteMatch, RouteAction)> {
    let Actions {
        pool,
        respond,
        redirect,
        strip_prefix,
    } = actions;
    let at = |key: &str| format!("routes[{i}].{key}");

    let path = match (matcher.path_prefix, matcher.path) {
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

    let host = matcher.host.map(|h| h.to_ascii_lowercase());
    if let Some(h) = &host {
        if h.is_empty() || h.contains(['/', ':', ' ']) {
            errs.push(
                at("match.host"),
                format!("expected a bare host name such as \"api.example.com\", got {h:?}"),
            );
        }
    }

    let methods = matcher.methods.map(|list| {
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

    let chosen = [pool.is_some(), respond.is_some(), redirect.is_some()];
    if chosen.iter().filter(|c| **c).count() > 1 {
        let key = if chosen[0] { "pool" } else { "redirect" };
        errs.push(
            at(key),
            "set one of pool, respond and redirect, not several",
        );
        return None;
    }
    if let Some(redirect) = redirect {
        if strip_prefix {
            errs.push(at("strip_prefix"), "only applies to routes with a pool");
        }
        let redirect = check_redirect(errs, &at("redirect"), &redirect);
        return Some((
            RouteMatch {
                path: path?,
                host,
                methods,
            },
            RouteAction::Redirect(redirect?),
        ));
    }
    let action = match (pool, respond) {
        (Some(pool), None) => match pools.iter().position(|p| *p == pool) {
            Some(index) => {
                if strip_prefix && !matches!(path, Some(PathMatch::Prefix(_))) {
                    errs.push(
                        at("strip_prefix"),
                        "only applies to match.path_prefix routes",
                    );
                }
                Some(RouteAction::Proxy {
                    pool: index,
                    strip_prefix,
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
            if strip_prefix {
                errs.push(at("strip_prefix"), "only applies to routes with a pool");
            }
            match StatusCode::from_u16(respond.status) {
                Ok(status) if (100..600).contains(&respond.status) => Some(RouteAction::Respond {
                    status,
                    body: Bytes::from(respond.body),
                    content_type: respond.content_type,
                }),
                _ => {
                    errs.push(
                        at("respond.status"),
                        format!("not an HTTP status code: {}", respond.status),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => None,
        (None, None) => {
            errs.push(
                format!("routes[{i}]"),
                "needs a pool to proxy to, a fixed respond or a redirect",
            );
            None
        }
    };
    Some((
        RouteMatch {
            path: path?,
            host,
            methods,
        },
        action?,
    ))
}

/// Two matchers collide when one could never be chosen over the other: the same host and
/// path, and either both match every method or their method lists share one.
pub(super) fn overlaps(a: &RouteMatch, b: &RouteMatch) -> bool {
    if a.path != b.path || a.host != b.host {
        return false;
    }
    match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        (None, None) => true,
        _ => false,
    }
}
