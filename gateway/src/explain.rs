//! `gateway explain`: what the gateway would do with one request, without sending it.
//!
//! It walks the request phases in the proxy's order (`proxy::request_filter`): size limits,
//! the canonical path, the HTTPS redirect, routing (with the near misses), the route's
//! policies (addresses, CORS preflight, basic auth, API keys, forward auth, bearer token,
//! body limit, rate limits), then the route's answer or the upstream request (pool, path
//! after rewrite or prefix strip, headers set and removed) and the response headers. Each
//! decision uses the same functions the proxy uses (routing, `path::normalize`, the edge
//! policies); what only the running system knows (a password, a token's signature, the auth
//! service's answer, a bucket's fill) is named as such, and the explanation goes on as if
//! it passed. `tests/src/tests/explain.rs` holds every policy to what a real gateway does.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::config::edge::HeaderRules;
use crate::config::{AuthMode, Config, LimitKey, PathMatch, RouteAction, RouteConfig};
use crate::path;
use crate::policy::edge::{self, Vars};
use crate::routing::{path_matches, Router};

/// The request to explain.
pub struct Request {
    pub method: Method,
    /// `http` or `https`: which listener it arrives on.
    pub https: bool,
    /// Lower-case, without a port.
    pub host: Option<String>,
    /// The port of the URL, when it names one.
    pub port: Option<u16>,
    /// The path as sent (not yet canonical) and the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub client_ip: IpAddr,
}

/// What the gateway would do in the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent to `pool`'s endpoints.
    Proxied { pool: String },
    /// Answered by the gateway itself with `status`.
    Answered { status: u16 },
}

/// The explanation: its lines, and the outcome (which decides `gateway explain`'s exit).
pub struct Explanation {
    pub text: String,
    pub outcome: Outcome,
}

struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, label: &str, text: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{label:<10} {text}");
    }

    fn step(&mut self, n: &mut usize, text: impl std::fmt::Display) {
        *n += 1;
        let _ = writeln!(self.text, "  {n:>2}. {text}");
    }

    fn answer(mut self, status: u16, why: &str) -> Explanation {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        self.line(
            "answer",
            format!("{status} {reason} from the gateway ({why}); not proxied"),
        );
        Explanation {
            text: self.text,
            outcome: Outcome::Answered { status },
        }
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why `route` does not take the request: each criterion it fails.
fn misses(route: &RouteConfig, host: Option<&str>, path: &str, method: &Method) -> Vec<String> {
    let mut why = Vec::new();
    if !path_matches(&route.matcher.path, path) {
        why.push(match &route.matcher.path {
            PathMatch::Exact(p) => format!("path is not {p}"),
            PathMatch::Prefix(p) => format!("path is not under {p}"),
        });
    }
    if let Some(h) = &route.matcher.host {
        if Some(h.as_str()) != host {
            why.push(format!("host is not {h}"));
        }
    }
    if let Some(methods) = &route.matcher.methods {
        if !methods.contains(method) {
            let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
            why.push(format!("method is not {}", list.join("/")));
        }
    }
    why
}

/// The claims of a JWT, read without checking its signature.
fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn bearer(req: &Request) -> Option<&str> {
    let value = header(req, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn rules_text(rules: &HeaderRules, vars: &Vars<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for name in &rules.remove {
        out.push(format!("remove {name}"));
    }
    for (name, template) in &rules.set {
        out.push(format!("set {name}: {}", edge::render(template, vars)));
    }
    for (name, template) in &rules.add {
        out.push(format!("add {name}: {}", edge::render(template, vars)));
    }
    out
}

/// Explain `req` under `config`.
#[allow(clippy::too_many_lines)] // one walk through the phases, in their order
pub fn explain(config: &Config, req: &Request) -> Explanation {
    let mut out = Out {
        text: String::new(),
    };
    let scheme = if req.https { "https" } else { "http" };
    let host_text = req.host.as_deref().unwrap_or("(no host)");
    out.line(
        "request",
        format!(
            "{} {scheme}://{host_text}{}{} from {}",
            req.method,
            req.path,
            req.query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default(),
            req.client_ip
        ),
    );

    // Limits before anything else (request_filters::check_limits).
    let target_len = req.path.len() + req.query.as_ref().map_or(0, |q| q.len() + 1);
    if target_len > config.limits.max_uri_bytes {
        out.line(
            "limits",
            format!(
                "the target is {target_len} bytes, over limits.max_uri_bytes ({})",
                config.limits.max_uri_bytes
            ),
        );
        return out.answer(414, "problem+json");
    }
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if header_bytes > config.limits.max_header_bytes {
        out.line(
            "limits",
            format!(
                "the header is {header_bytes} bytes, over limits.max_header_bytes ({})",
                config.limits.max_header_bytes
            ),
        );
        return out.answer(431, "problem+json");
    }
    let path = match path::normalize(&req.path) {
        Ok(None) => req.path.clone(),
        Ok(Some(canonical)) => {
            out.line(
                "path",
                format!("{canonical} (the canonical spelling of {})", req.path),
            );
            canonical
        }
        Err(why) => {
            out.line("path", format!("refused: {why}"));
            return out.answer(400, "problem+json: the path has no safe canonical form");
        }
    };

    let router = Router::new(&config.routes);
    let host = req.host.as_deref();
    // A CORS preflight is routed by the method it asks about (request_filters::route).
    let asked = (req.method == Method::OPTIONS)
        .then(|| header(req, "access-control-request-method"))
        .flatten()
        .and_then(|m| m.parse::<Method>().ok());
    let preflight_route = asked
        .as_ref()
        .and_then(|m| router.find(host, &path, m))
        .filter(|r| config.routes[r.index].policies.cors.is_some());
    let preflight = preflight_route.is_some();
    let found = preflight_route.or_else(|| router.find(host, &path, &req.method));
    let routing_method = if preflight {
        asked.clone().unwrap_or(Method::OPTIONS)
    } else {
        req.method.clone()
    };
    // Near misses: routes for this path that another host or method keeps out; and when
    // nothing matches, routes that miss only on the path but share its first segment.
    let first_segment = |p: &str| {
        p.trim_start_matches('/')
            .split('/')
            .next()
            .map(str::to_owned)
    };
    let near: Vec<String> = config
        .routes
        .iter()
        .enumerate()
        .filter(|(i, _)| found.is_none_or(|f| f.index != *i))
        .filter_map(|(_, r)| {
            let why = misses(r, host, &path, &routing_method);
            let path_ok = path_matches(&r.matcher.path, &path);
            let route_path = match &r.matcher.path {
                PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
            };
            let close = (path_ok && !why.is_empty())
                || (found.is_none()
                    && why.len() == 1
                    && first_segment(route_path) == first_segment(&path));
            close.then(|| format!("{} ({}): {}", r.name, r.match_text(), why.join(", ")))
        })
        .collect();
    let Some(found) = found else {
        out.line("route", format!("none matches {path}"));
        for miss in &near {
            out.line("", format!("near miss: {miss}"));
        }
        return out.answer(404, "problem+json: no route");
    };
    let route = &config.routes[found.index];
    out.line(
        "route",
        format!(
            "{} ({}){}",
            route.name,
            route.match_text(),
            if preflight {
                format!(", the route of the preflight's {routing_method}")
            } else {
                String::new()
            }
        ),
    );
    let shadowed: Vec<&str> = config
        .routes
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != found.index && misses(r, host, &path, &routing_method).is_empty())
        .map(|(_, r)| r.name.as_str())
        .collect();
    if !shadowed.is_empty() {
        out.line(
            "",
            format!(
                "also matches, with less precedence: {}",
                shadowed.join(", ")
            ),
        );
    }
    for miss in &near {
        out.line("", format!("near miss: {miss}"));
    }

    // The HTTPS redirect comes before the route's policies (request_filters::redirect_to_https).
    if let (false, Some(tls), Some(https)) = (req.https, &config.tls, config.listeners.https) {
        if tls.redirect_http && route.https_redirect && req.host.is_some() {
            let port = if https.port() == 443 {
                String::new()
            } else {
                format!(":{}", https.port())
            };
            out.line(
                "redirect",
                format!(
                    "tls.redirect_http: Location https://{host_text}{port}{}",
                    req.path
                ),
            );
            return out.answer(308, "to HTTPS");
        }
    }

    let pattern = match &route.action {
        RouteAction::Redirect(r) => Some(&r.pattern),
        _ => route.policies.rewrite.as_ref().map(|r| &r.pattern),
    };
    let vars = Vars {
        client_ip: Some(req.client_ip),
        request_id: "<request id>",
        route: &route.name,
        host,
        path: &path,
        pattern,
    };
    let p = &route.policies;
    let mut n = 0;
    let _ = writeln!(out.text, "policies, in the order they apply:");
    if !p.ip_access.allow.is_empty() || !p.ip_access.deny.is_empty() {
        if p.ip_access.permits(Some(req.client_ip)) {
            out.step(
                &mut n,
                format!("ip_allow/ip_deny: {} may use the route", req.client_ip),
            );
        } else {
            out.step(
                &mut n,
                format!("ip_allow/ip_deny: {} is refused", req.client_ip),
            );
            return out.answer(403, "problem+json");
        }
    }
    let origin = req.headers.get(http::header::ORIGIN);
    let allowed_origin = p
        .cors
        .as_ref()
        .zip(origin)
        .and_then(|(cors, o)| edge::allowed_origin(cors, o));
    if let Some(cors) = &p.cors {
        let about = match (origin, &allowed_origin) {
            (None, _) => "no Origin: not a cross-origin request".to_owned(),
            (Some(o), Some(_)) => format!("Origin {} is allowed", o.to_str().unwrap_or("?")),
            (Some(o), None) => format!(
                "Origin {} is not allowed: no CORS headers, the browser blocks the answer",
                o.to_str().unwrap_or("?")
            ),
        };
        out.step(&mut n, format!("cors: {about}"));
        if preflight {
            if let Some(allow) = allowed_origin {
                for (name, value) in edge::preflight_headers(cors, allow) {
                    out.line(
                        "",
                        format!("      {name}: {}", value.to_str().unwrap_or("?")),
                    );
                }
            }
            return out.answer(204, "the CORS preflight, never forwarded");
        }
    }
    if let Some(basic) = &p.basic_auth {
        match header(req, "authorization").filter(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ")) {
            None => {
                out.step(
                    &mut n,
                    format!("basic_auth: no Basic credentials (realm {:?})", basic.realm),
                );
                return out.answer(401, "WWW-Authenticate: Basic");
            }
            Some(_) => out.step(
                &mut n,
                format!(
                    "basic_auth: Basic credentials sent; the password is checked at request time against {} user(s), a wrong one is 401",
                    basic.users.len()
                ),
            ),
        }
    }
    let mut api_key_name = None;
    if let Some(keys) = &p.api_keys {
        let presented = req.headers.get(&keys.header);
        match presented.and_then(|v| edge::match_api_key(keys, v.as_bytes())) {
            Some(name) => {
                out.step(
                    &mut n,
                    format!("api_keys: {} holds the key of {name:?}", keys.header),
                );
                api_key_name = Some(name.to_owned());
            }
            None => {
                let why = if presented.is_some() {
                    "an unknown key"
                } else {
                    "no key"
                };
                out.step(&mut n, format!("api_keys: {} holds {why}", keys.header));
                return out.answer(401, "problem+json");
            }
        }
    }
    if let Some(fa) = &p.forward_auth {
        out.step(
            &mut n,
            format!(
                "forward_auth: asks GET {} (within {}); a 2xx lets the request through, any other answer goes to the client as the service gave it",
                fa.url,
                humantime::format_duration(fa.timeout)
            ),
        );
    }
    let mut subject = None;
    if route.auth != AuthMode::None {
        let mode = if route.auth == AuthMode::Required {
            "required"
        } else {
            "optional"
        };
        match bearer(req) {
            None if route.auth == AuthMode::Required => {
                out.step(&mut n, "auth required: no bearer token");
                return out.answer(401, "WWW-Authenticate: Bearer realm=\"gateway\"");
            }
            None => out.step(
                &mut n,
                "auth optional: no token, the request goes on anonymous",
            ),
            Some(token) => {
                let Some(claims) = unverified_claims(token) else {
                    out.step(
                        &mut n,
                        format!("auth {mode}: the bearer token is not a JWT"),
                    );
                    return out.answer(401, "WWW-Authenticate: Bearer error=\"invalid_token\"");
                };
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let leeway = config.jwt.as_ref().map_or(0, |j| j.leeway.as_secs());
                let exp = claims["exp"].as_u64();
                if exp.is_none_or(|e| e + leeway < now) {
                    out.step(
                        &mut n,
                        format!("auth {mode}: the token has expired (exp {exp:?}) or has no exp"),
                    );
                    return out.answer(401, "WWW-Authenticate: Bearer error=\"invalid_token\"");
                }
                subject = claims["sub"].as_str().map(str::to_owned);
                out.step(
                    &mut n,
                    format!(
                        "auth {mode}: a token for sub {:?}, valid for {} s more; its signature, issuer and audience are checked at request time",
                        subject.as_deref().unwrap_or(""),
                        exp.unwrap_or(0).saturating_sub(now)
                    ),
                );
            }
        }
    }
    let length = header(req, "content-length").and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(len) if len > route.body_limit => {
            out.step(
                &mut n,
                format!(
                    "body_limit {} bytes: Content-Length {len} is over it",
                    route.body_limit
                ),
            );
            return out.answer(413, "problem+json, before any upstream connection");
        }
        _ => out.step(
            &mut n,
            format!(
                "body_limit {} bytes (a chunked body is counted as it streams)",
                route.body_limit
            ),
        ),
    }
    let client_key = req.client_ip.to_string();
    for (limit, text) in route.rate_limits.iter().zip(route.rate_limit_texts()) {
        let key = match &limit.key {
            LimitKey::ClientIp => format!("client_ip {client_key}"),
            LimitKey::Subject => subject.as_ref().map_or_else(
                || format!("client_ip {client_key} (no subject)"),
                |s| format!("subject {s}"),
            ),
            LimitKey::Header(name) => req.headers.get(name).map_or_else(
                || format!("client_ip {client_key} (no {name})"),
                |v| format!("{name} {}", v.to_str().unwrap_or("(binary)")),
            ),
            LimitKey::Route => "the whole route".to_owned(),
            LimitKey::ApiKey => api_key_name.as_ref().map_or_else(
                || format!("client_ip {client_key} (no API key)"),
                |k| format!("api key {k}"),
            ),
        };
        out.step(
            &mut n,
            format!("rate limit {text}: counts against {key}; past it, 429 with Retry-After"),
        );
    }

    match &route.action {
        RouteAction::Redirect(redirect) => {
            match edge::redirect_location(redirect, &vars, req.query.as_deref()) {
                Some(location) => {
                    out.line("redirect", format!("Location {location}"));
                    out.answer(redirect.status.as_u16(), "the route's redirect")
                }
                None => out.answer(404, "the redirect's pattern does not match the path"),
            }
        }
        RouteAction::Respond {
            status,
            content_type,
            body,
        } => {
            out.line("respond", format!("{content_type}, {} bytes", body.len()));
            out.answer(status.as_u16(), "the route's fixed answer")
        }
        RouteAction::Proxy { pool, strip_prefix } => {
            let mut pool_name = config.pools[*pool].name.clone();
            if let Some(split) = &route.split {
                let shares: Vec<String> = split
                    .pools
                    .iter()
                    .map(|(p, w)| format!("{} {w}", config.pools[*p].name))
                    .collect();
                let forced = split.override_header.as_ref().and_then(|h| {
                    let wanted = req.headers.get(h)?.to_str().ok()?;
                    split
                        .pools
                        .iter()
                        .find(|(p, _)| config.pools[*p].name == wanted)
                        .map(|(p, _)| (h, config.pools[*p].name.clone()))
                });
                match forced {
                    Some((h, name)) => {
                        out.step(
                            &mut n,
                            format!("split {}: {h} names {name}", shares.join(" / ")),
                        );
                        pool_name = name;
                    }
                    None => out.step(
                        &mut n,
                        format!(
                            "split {}: one of them by weight{}",
                            shares.join(" / "),
                            if split.sticky.is_some() {
                                ", the same for the same client (sticky)"
                            } else {
                                ""
                            }
                        ),
                    ),
                }
            }
            let upstream_path = match p
                .rewrite
                .as_ref()
                .and_then(|r| edge::rewrite_path(r, &vars))
            {
                Some(rewritten) => {
                    out.step(&mut n, format!("rewrite: the upstream path is {rewritten}"));
                    rewritten
                }
                None if *strip_prefix => {
                    let stripped = found.upstream_path(&path).into_owned();
                    out.step(
                        &mut n,
                        format!("strip_prefix: the upstream path is {stripped}"),
                    );
                    stripped
                }
                None => path.clone(),
            };
            if let Some(host) = &p.upstream_host {
                out.step(
                    &mut n,
                    format!("upstream_host: Host {}", host.to_str().unwrap_or("?")),
                );
            }
            let mut sent = Vec::new();
            for owned in config.identity_headers() {
                if req.headers.contains_key(&owned) {
                    sent.push(format!("remove {owned} (only the gateway sets it)"));
                }
            }
            if let (Some(keys), Some(name)) = (&p.api_keys, &api_key_name) {
                sent.push(format!(
                    "remove {}, set {}: {name}",
                    keys.header, keys.forward_name
                ));
            }
            sent.extend(rules_text(&p.request_headers, &vars));
            sent.push(format!(
                "set X-Forwarded-For: {}, X-Forwarded-Proto: {scheme}, X-Request-Id",
                req.client_ip
            ));
            out.step(&mut n, format!("request headers: {}", sent.join("; ")));
            let mut back: Vec<String> = p
                .security_headers
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
                .collect();
            if req.https {
                if let Some(hsts) = &p.security_headers.hsts {
                    back.push(format!(
                        "strict-transport-security: {}",
                        hsts.to_str().unwrap_or("?")
                    ));
                }
            }
            back.extend(p.security_headers.hide.iter().map(|h| format!("hide {h}")));
            back.extend(rules_text(&p.response_headers, &vars));
            if let (Some(cors), Some(allow)) = (&p.cors, &allowed_origin) {
                for (name, value) in edge::response_headers(cors, allow.clone()) {
                    back.push(format!("{name}: {}", value.to_str().unwrap_or("?")));
                }
            }
            if !back.is_empty() {
                out.step(&mut n, format!("response headers: {}", back.join("; ")));
            }
            if let Some(c) = &p.compression {
                let accepts = header(req, "accept-encoding").unwrap_or("");
                let tokens: Vec<&str> = c.algorithms.iter().map(|a| a.token()).collect();
                out.step(
                    &mut n,
                    format!(
                        "compression: {} for {} at least {} bytes; this client accepts {:?}",
                        tokens.join(", "),
                        c.content_types
                            .iter()
                            .map(|t| if t.ends_with('/') {
                                format!("{t}*")
                            } else {
                                t.clone()
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.min_size,
                        accepts
                    ),
                );
            }
            let pool_config = config.pools.iter().find(|p| p.name == pool_name);
            let endpoints: Vec<String> = pool_config
                .map(|p| p.endpoints.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            out.line(
                "upstream",
                format!(
                    "{} {upstream_path}{} to pool {pool_name} [{}]",
                    req.method,
                    req.query
                        .as_deref()
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default(),
                    endpoints.join(", ")
                ),
            );
            Explanation {
                text: out.text,
                outcome: Outcome::Proxied { pool: pool_name },
            }
        }
    }
}

/// Parse `-H 'Name: value'` arguments into headers; the error names the bad one.
pub fn parse_headers(raw: &[String]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for h in raw {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
        let name = HeaderName::try_from(name.trim()).map_err(|e| format!("header {h:?}: {e}"))?;
        let value =
            HeaderValue::try_from(value.trim()).map_err(|e| format!("header {h:?}: {e}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// `gateway explain` as the command line gives it: print the explanation; the exit status
/// is 0 when the request would be proxied, 1 when the gateway answers it, 2 on a usage or
/// config error.
pub fn run(
    config: &std::path::Path,
    method: &str,
    url: &str,
    headers: &[String],
    client_ip: std::net::IpAddr,
    admin: Option<&str>,
) -> u8 {
    let usage = |message: String| {
        eprintln!("gateway explain: {message}");
        2
    };
    let config = match crate::config::load(config) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return 2;
        }
    };
    let Ok(method) = method.parse::<http::Method>() else {
        return usage(format!("{method:?} is not an HTTP method"));
    };
    let uri = match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => uri,
        _ => return usage(format!("{url:?} is not an http:// or https:// URL")),
    };
    let headers = match parse_headers(headers) {
        Ok(headers) => headers,
        Err(e) => return usage(e),
    };
    let request = Request {
        method,
        https: uri.scheme_str() == Some("https"),
        host: uri
            .host()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
        port: uri.port_u16(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        client_ip,
    };
    let explanation = explain(&config, &request);
    print!("{}", explanation.text);
    match explanation.outcome {
        Outcome::Proxied { pool } => {
            if let Some(admin) = admin {
                match live_endpoints(admin, &pool) {
                    Ok(lines) => lines.iter().for_each(|l| println!("{:<10} {l}", "live")),
                    Err(e) => println!("{:<10} cannot read {admin}/status.json: {e}", "live"),
                }
            }
            println!("{:<10} proxied", "result");
            0
        }
        Outcome::Answered { status } => {
            println!("{:<10} answered by the gateway ({status})", "result");
            1
        }
    }
}

/// Each endpoint of `pool` as a running gateway's `/status.json` shows it.
fn live_endpoints(admin: &str, pool: &str) -> Result<Vec<String>, String> {
    let url = format!("{}/status.json", admin.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let status: serde_json::Value = runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| e.to_string())
    })?;
    let pools = status["pools"].as_array().cloned().unwrap_or_default();
    let Some(found) = pools.iter().find(|p| p["name"] == pool) else {
        return Err(format!("the running gateway has no pool {pool}"));
    };
    Ok(found["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} healthy={} check={} breaker={} in_flight={}",
                e["address"].as_str().unwrap_or("?"),
                e["healthy"],
                e["check"].as_str().unwrap_or("?"),
                e["breaker"].as_str().unwrap_or("?"),
                e["in_flight"]
            )
        })
        .collect())
}
