//! Edge policies (`route_defaults:` and each route's own): addresses, header rules, security
//! headers, rewrites, redirects, CORS and basic auth.

use std::collections::HashMap;
use std::path::Path;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use ipnet::IpNet;

use super::Errors;
use crate::config::edge::{
    Algorithm, ApiKeys, BasicAuth, Compression, Cors, EdgePolicies, ForwardAuth, HeaderRules,
    OriginPattern, Part, PasswordHash, Redirect, Rewrite, SecurityHeaders, Template, Var,
};
use crate::config::file::{
    ApiKeysFile, BasicAuthFile, CompressionFile, CompressionSpec, CorsFile, ForwardAuthFile,
    HeaderRulesFile, PresetFile, RedirectFile, RewriteFile, RouteDefaultsFile, SecurityHeadersFile,
    SecurityHeadersSpec,
};

/// Framing and hop-by-hop fields: Pingora owns them, so no rule may touch them.
const FRAMING: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request fields the gateway itself sets from what it verified or observed.
const REQUEST_IDENTITY: [&str; 6] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
    "x-request-id",
];

/// What the route-level checks need to know from elsewhere in the file.
pub(super) struct EdgeContext<'a> {
    pub(super) base_dir: &'a Path,
    /// Headers the gateway sets from verified identity (JWT claims, pool secrets, basic-auth
    /// users): no rule may set or remove them.
    pub(super) identity_headers: &'a [HeaderName],
}

/// `route_defaults:`, checked once at its own keys.
pub(super) fn check_defaults(
    errs: &mut Errors<'_>,
    file: RouteDefaultsFile,
    cx: &EdgeContext<'_>,
) -> EdgePolicies {
    let keys = RoutePolicies {
        ip_allow: file.ip_allow,
        ip_deny: file.ip_deny,
        security_headers: file.security_headers,
        request_headers: file.request_headers,
        response_headers: file.response_headers,
        cors: file.cors,
        basic_auth: file.basic_auth,
        compression: file.compression,
        api_keys: file.api_keys,
        forward_auth: file.forward_auth,
        rewrite: None,
        upstream_host: None,
    };
    check_keys(
        errs,
        "route_defaults",
        keys,
        EdgePolicies::default(),
        None,
        cx,
    )
}

/// A route's own policy keys (or `route_defaults`'), each replacing the default's value.
pub(super) struct RoutePolicies {
    pub(super) ip_allow: Option<Vec<String>>,
    pub(super) ip_deny: Option<Vec<String>>,
    pub(super) security_headers: Option<SecurityHeadersFile>,
    pub(super) request_headers: Option<HeaderRulesFile>,
    pub(super) response_headers: Option<HeaderRulesFile>,
    pub(super) cors: Option<CorsFile>,
    pub(super) basic_auth: Option<BasicAuthFile>,
    pub(super) compression: Option<CompressionFile>,
    pub(super) api_keys: Option<ApiKeysFile>,
    pub(super) forward_auth: Option<ForwardAuthFile>,
    pub(super) rewrite: Option<RewriteFile>,
    pub(super) upstream_host: Option<String>,
}

/// Route `i`'s policies: the defaults, with each key the route sets checked and in place.
pub(super) fn check_route(
    errs: &mut Errors<'_>,
    i: usize,
    route: RoutePolicies,
    defaults: &EdgePolicies,
    captures: Option<&regex::Regex>,
    cx: &EdgeContext<'_>,
) -> EdgePolicies {
    let prefix = format!("routes[{i}]");
    check_keys(errs, &prefix, route, defaults.clone(), captures, cx)
}

/// Check each key present in `own` (at `prefix.key`) and put its value in `base`.
fn check_keys(
    errs: &mut Errors<'_>,
    prefix: &str,
    route: RoutePolicies,
    base: EdgePolicies,
    captures: Option<&regex::Regex>,
    cx: &EdgeContext<'_>,
) -> EdgePolicies {
    let at = |key: &str| format!("{prefix}.{key}");
    let mut out = base;
    if let Some(list) = &route.ip_allow {
        out.ip_access.allow = check_nets(errs, &at("ip_allow"), list);
    }
    if let Some(list) = &route.ip_deny {
        out.ip_access.deny = check_nets(errs, &at("ip_deny"), list);
    }
    if let Some(s) = route.security_headers {
        out.security_headers = check_security(errs, &at("security_headers"), s);
    }
    if let Some(rewrite) = route.rewrite {
        out.rewrite = check_rewrite(errs, &at("rewrite"), &rewrite);
    }
    let captures = out.rewrite.as_ref().map(|r| &r.pattern).or(captures);
    if let Some(r) = route.request_headers {
        out.request_headers =
            check_rules(errs, &at("request_headers"), r, Side::Request, cx, captures);
    }
    if let Some(r) = route.response_headers {
        out.response_headers = check_rules(
            errs,
            &at("response_headers"),
            r,
            Side::Response,
            cx,
            captures,
        );
    }
    if let Some(c) = route.cors {
        out.cors = check_cors(errs, &at("cors"), &c);
    }
    if let Some(b) = route.basic_auth {
        out.basic_auth = check_basic_auth(errs, &at("basic_auth"), b, cx.base_dir);
    }
    if let Some(c) = route.compression {
        out.compression = check_compression(errs, &at("compression"), c);
    }
    if let Some(k) = &route.api_keys {
        out.api_keys = check_api_keys(errs, &at("api_keys"), k, cx.base_dir);
    }
    if let Some(f) = &route.forward_auth {
        out.forward_auth = check_forward_auth(errs, &at("forward_auth"), f);
    }
    if let Some(host) = route.upstream_host {
        let valid =
            !host.is_empty() && host.parse::<http::uri::Authority>().is_ok() && !host.contains('@');
        match HeaderValue::from_str(&host) {
            Ok(v) if valid => out.upstream_host = Some(v),
            _ => errs.push(
                at("upstream_host"),
                format!("invalid host {host:?}, expected e.g. \"api.internal\" or \"api.internal:8080\""),
            ),
        }
    }
    out
}

/// CIDRs or single addresses.
pub(super) fn check_nets(errs: &mut Errors<'_>, at: &str, list: &[String]) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, text) in list.iter().enumerate() {
        if let Ok(net) = text.parse::<IpNet>() {
            nets.push(net.trunc());
        } else if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            errs.push(
                format!("{at}[{i}]"),
                format!("invalid CIDR {text:?}, expected e.g. \"10.0.0.0/8\", \"2001:db8::/32\" or \"127.0.0.1\""),
            );
        }
    }
    nets
}

fn check_security(errs: &mut Errors<'_>, at: &str, file: SecurityHeadersFile) -> SecurityHeaders {
    let spec = match file {
        SecurityHeadersFile::Preset(PresetFile::Off) => return SecurityHeaders::default(),
        SecurityHeadersFile::Preset(PresetFile::Default) => SecurityHeadersSpec {
            preset: PresetFile::Default,
            strict_transport_security: None,
            content_type_options: None,
            frame_options: None,
            referrer_policy: None,
            content_security_policy: None,
            permissions_policy: None,
            hide: None,
        },
        SecurityHeadersFile::Custom(spec) => spec,
    };
    let preset = spec.preset == PresetFile::Default;
    // (header, the key that overrides it, the preset's value)
    let fields: [(&str, &str, Option<String>, Option<&str>); 6] = [
        (
            "strict-transport-security",
            "strict_transport_security",
            spec.strict_transport_security,
            Some("max-age=31536000"),
        ),
        (
            "x-content-type-options",
            "content_type_options",
            spec.content_type_options,
            Some("nosniff"),
        ),
        (
            "x-frame-options",
            "frame_options",
            spec.frame_options,
            Some("DENY"),
        ),
        (
            "referrer-policy",
            "referrer_policy",
            spec.referrer_policy,
            Some("strict-origin-when-cross-origin"),
        ),
        (
            "content-security-policy",
            "content_security_policy",
            spec.content_security_policy,
            None,
        ),
        (
            "permissions-policy",
            "permissions_policy",
            spec.permissions_policy,
            None,
        ),
    ];
    let mut out = SecurityHeaders::default();
    for (name, key, given, preset_value) in fields {
        let text = match given {
            Some(v) if v == "off" => continue,
            Some(v) => v,
            None => match (preset, preset_value) {
                (true, Some(v)) => v.to_owned(),
                _ => continue,
            },
        };
        let Ok(value) = HeaderValue::from_str(&text) else {
            errs.push(
                format!("{at}.{key}"),
                format!("invalid header value {text:?}"),
            );
            continue;
        };
        let name = HeaderName::from_static(name);
        if name == http::header::STRICT_TRANSPORT_SECURITY {
            out.hsts = Some(value);
        } else {
            out.headers.push((name, value));
        }
    }
    let hide = spec.hide.unwrap_or_else(|| {
        if preset {
            vec!["server".into(), "x-powered-by".into()]
        } else {
            Vec::new()
        }
    });
    for (i, name) in hide.iter().enumerate() {
        match header_name(name) {
            Some(n) => out.hide.push(n),
            None => errs.push(
                format!("{at}.hide[{i}]"),
                format!("invalid header name {name:?}"),
            ),
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

fn header_name(text: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(text.as_bytes()).ok()
}

fn check_rules(
    errs: &mut Errors<'_>,
    at: &str,
    file: HeaderRulesFile,
    side: Side,
    cx: &EdgeContext<'_>,
    captures: Option<&regex::Regex>,
) -> HeaderRules {
    let mut out = HeaderRules::default();
    let name_ok = |errs: &mut Errors<'_>, path: String, text: &str| -> Option<HeaderName> {
        let Some(name) = header_name(text) else {
            errs.push(path, format!("invalid header name {text:?}"));
            return None;
        };
        let framing = FRAMING.contains(&name.as_str());
        let identity = match side {
            Side::Request => {
                REQUEST_IDENTITY.contains(&name.as_str()) || cx.identity_headers.contains(&name)
            }
            Side::Response => name.as_str() == "x-request-id",
        };
        if framing || identity {
            let why = if framing {
                "a framing header, which the gateway manages"
            } else {
                "an identity header, which only the gateway sets"
            };
            let hint = if name == http::header::HOST {
                " (use upstream_host to change the upstream Host)"
            } else {
                ""
            };
            errs.push(path, format!("{name} is {why}{hint}"));
            return None;
        }
        Some(name)
    };
    for (i, text) in file.remove.iter().enumerate() {
        if let Some(name) = name_ok(errs, format!("{at}.remove[{i}]"), text) {
            out.remove.push(name);
        }
    }
    for (key, map, list) in [
        ("set", file.set, &mut out.set),
        ("add", file.add, &mut out.add),
    ] {
        for (text, value) in map {
            let path = format!("{at}.{key}.{text}");
            let Some(name) = name_ok(errs, path.clone(), &text) else {
                continue;
            };
            match parse_template(&value, captures) {
                Ok(t) => {
                    if t.as_text()
                        .is_some_and(|v| HeaderValue::from_str(v).is_err())
                    {
                        errs.push(path, format!("invalid header value {value:?}"));
                        continue;
                    }
                    list.push((name, t));
                }
                Err(e) => errs.push(path, e),
            }
        }
    }
    out
}

/// `text` with `${var}`, `$1`..`$9` and `${name}` (a named capture); `$$` is a `$`.
pub(super) fn parse_template(
    text: &str,
    captures: Option<&regex::Regex>,
) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (part, used) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err(format!("unclosed ${{ in {text:?}"));
            };
            let name = &inner[..end];
            let part = match name {
                "client_ip" => Part::Var(Var::ClientIp),
                "request_id" => Part::Var(Var::RequestId),
                "route" => Part::Var(Var::Route),
                "host" => Part::Var(Var::Host),
                "path" => Part::Var(Var::Path),
                _ => match name.parse::<usize>() {
                    Ok(n) => Part::Group(n),
                    Err(_) => Part::Named(name.to_owned()),
                },
            };
            (part, end + 2)
        } else if rest.starts_with('$') {
            literal.push('$');
            rest = &rest[1..];
            continue;
        } else if let Some(d) = rest.chars().next().filter(char::is_ascii_digit) {
            (Part::Group(d as usize - '0' as usize), 1)
        } else {
            return Err(format!(
                "a lone $ in {text:?}: write $$ for a dollar sign, ${{name}} or $1 for a variable"
            ));
        };
        match &part {
            Part::Group(n) => {
                let groups = captures.map_or(0, |re| re.captures_len() - 1);
                if *n > groups || (*n == 0 && captures.is_none()) {
                    return Err(format!(
                        "${n} in {text:?} names no capture group of this route's match pattern ({groups} groups)"
                    ));
                }
            }
            Part::Named(name) => {
                let known =
                    captures.is_some_and(|re| re.capture_names().flatten().any(|c| c == name));
                if !known {
                    return Err(format!(
                        "unknown variable ${{{name}}} in {text:?}: expected client_ip, request_id, route, host, path, or a capture of this route's match pattern"
                    ));
                }
            }
            _ => {}
        }
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &rest[used..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(Template { parts })
}

fn check_regex(errs: &mut Errors<'_>, at: &str, pattern: &str) -> Option<regex::Regex> {
    // The size limit keeps a config from building a huge automaton; matching is linear-time
    // in the regex crate whatever the pattern.
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            // The crate's message draws the pattern with a caret over several lines; a
            // config error is one line, so keep its last line (what is wrong).
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default();
            let why = why.strip_prefix("error: ").unwrap_or(why);
            errs.push(at, format!("invalid regular expression {pattern:?}: {why}"));
            None
        }
    }
}

fn check_rewrite(errs: &mut Errors<'_>, at: &str, file: &RewriteFile) -> Option<Rewrite> {
    let pattern = check_regex(errs, &format!("{at}.match"), &file.pattern)?;
    match parse_template(&file.to, Some(&pattern)) {
        Ok(to) if file.to.starts_with('/') || file.to.starts_with('$') => {
            Some(Rewrite { pattern, to })
        }
        Ok(_) => {
            errs.push(
                format!("{at}.to"),
                format!("{:?} must be a path starting with /", file.to),
            );
            None
        }
        Err(e) => {
            errs.push(format!("{at}.to"), e);
            None
        }
    }
}

pub(super) fn check_redirect(
    errs: &mut Errors<'_>,
    at: &str,
    file: &RedirectFile,
) -> Option<Redirect> {
    let status = match StatusCode::from_u16(file.status) {
        Ok(s) if matches!(file.status, 301 | 302 | 303 | 307 | 308) => s,
        _ => {
            errs.push(
                format!("{at}.status"),
                format!(
                    "{} is not a redirect status: use 301, 302, 303, 307 or 308",
                    file.status
                ),
            );
            return None;
        }
    };
    // Without a pattern, $1 is the whole path.
    let pattern = check_regex(
        errs,
        &format!("{at}.match"),
        file.pattern.as_deref().unwrap_or("^(.*)$"),
    )?;
    let to = match parse_template(&file.to, Some(&pattern)) {
        Ok(t) => t,
        Err(e) => {
            errs.push(format!("{at}.to"), e);
            return None;
        }
    };
    let absolute = file.to.starts_with("https://") || file.to.starts_with("http://");
    if !absolute && !file.to.starts_with('/') {
        errs.push(
            format!("{at}.to"),
            format!(
                "{:?} must be an absolute URL (https://...) or a path starting with /",
                file.to
            ),
        );
        return None;
    }
    if file.to.starts_with("//") {
        errs.push(
            format!("{at}.to"),
            format!(
                "{:?} starts with // (a scheme-relative URL); write the scheme",
                file.to
            ),
        );
        return None;
    }
    Some(Redirect {
        status,
        pattern,
        to,
        keep_query: file.keep_query,
    })
}

fn check_cors(errs: &mut Errors<'_>, at: &str, file: &CorsFile) -> Option<Cors> {
    let before = errs.list.len();
    let mut origins = Vec::new();
    for (i, text) in file.allow_origins.iter().enumerate() {
        match origin_pattern(text) {
            Some(p) => origins.push(p),
            None => errs.push(
                format!("{at}.allow_origins[{i}]"),
                format!("invalid origin {text:?}, expected \"*\", \"https://app.example.com\" or \"https://*.example.com\" (scheme and host, no path)"),
            ),
        }
    }
    if origins.is_empty() && errs.list.len() == before {
        errs.push(format!("{at}.allow_origins"), "needs at least one origin");
    }
    if file.allow_credentials {
        if let Some(i) = file.allow_origins.iter().position(|o| o == "*") {
            errs.push(
                format!("{at}.allow_origins[{i}]"),
                "\"*\" cannot be used with allow_credentials: true (browsers refuse it); list the origins",
            );
        }
        for (key, list) in [
            ("allow_headers", &file.allow_headers),
            ("expose_headers", &file.expose_headers),
            ("allow_methods", &file.allow_methods),
        ] {
            if let Some(i) = list.iter().position(|h| h == "*") {
                errs.push(
                    format!("{at}.{key}[{i}]"),
                    "\"*\" means a literal \"*\" to browsers when credentials are allowed; list the names",
                );
            }
        }
    }
    let mut methods = Vec::new();
    for (i, m) in file.allow_methods.iter().enumerate() {
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if m != "*" => methods.push(method),
            Ok(_) => {}
            Err(_) => errs.push(
                format!("{at}.allow_methods[{i}]"),
                format!("invalid method {m:?}"),
            ),
        }
    }
    let list_value = |errs: &mut Errors<'_>, key: &str, list: &[String]| -> Option<HeaderValue> {
        for (i, h) in list.iter().enumerate() {
            if h != "*" && header_name(h).is_none() {
                errs.push(
                    format!("{at}.{key}[{i}]"),
                    format!("invalid header name {h:?}"),
                );
            }
        }
        if list.is_empty() {
            return None;
        }
        HeaderValue::from_str(&list.join(", ")).ok()
    };
    let allow_headers = list_value(errs, "allow_headers", &file.allow_headers);
    let expose_headers = list_value(errs, "expose_headers", &file.expose_headers);
    let allow_methods = HeaderValue::from_str(&file.allow_methods.join(", ")).ok()?;
    (errs.list.len() == before).then_some(Cors {
        origins,
        allow_methods,
        methods,
        allow_headers,
        expose_headers,
        allow_credentials: file.allow_credentials,
        max_age: file.max_age,
    })
}

fn origin_pattern(text: &str) -> Option<OriginPattern> {
    if text == "*" {
        return Some(OriginPattern::Any);
    }
    let lower = text.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@'])
    {
        return None;
    }
    if let Some(suffix) = rest.strip_prefix("*.") {
        if suffix.contains('*') || !suffix.contains('.') {
            return None;
        }
        return Some(OriginPattern::Subdomains {
            scheme: scheme.to_owned(),
            suffix: format!(".{suffix}"),
        });
    }
    if rest.contains('*') || rest.parse::<http::uri::Authority>().is_err() {
        return None;
    }
    Some(OriginPattern::Exact(lower))
}

fn check_basic_auth(
    errs: &mut Errors<'_>,
    at: &str,
    file: BasicAuthFile,
    base_dir: &Path,
) -> Option<BasicAuth> {
    let path = base_dir.join(&file.users_file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            errs.push(
                format!("{at}.users_file"),
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    let before = errs.list.len();
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = format!("{}:{}", path.display(), n + 1);
        let Some((user, hash)) = line.split_once(':') else {
            errs.push(
                format!("{at}.users_file"),
                format!("{place}: expected user:hash"),
            );
            continue;
        };
        let hash = if hash.starts_with("$argon2") {
            match argon2::PasswordHash::new(hash) {
                Ok(_) => PasswordHash::Argon2(hash.to_owned()),
                Err(e) => {
                    errs.push(
                        format!("{at}.users_file"),
                        format!("{place}: invalid argon2 hash ({e})"),
                    );
                    continue;
                }
            }
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60 {
            PasswordHash::Bcrypt(hash.to_owned())
        } else {
            errs.push(
                format!("{at}.users_file"),
                format!("{place}: user {user:?} has an unsupported hash; use argon2id or bcrypt (htpasswd -B)"),
            );
            continue;
        };
        if user.is_empty() || users.insert(user.to_owned(), hash).is_some() {
            errs.push(
                format!("{at}.users_file"),
                format!("{place}: empty or repeated user {user:?}"),
            );
        }
    }
    let forward_user = match file.forward_user.as_deref().map(header_name) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            errs.push(format!("{at}.forward_user"), "invalid header name");
            None
        }
    };
    let realm_ok = !file.realm.is_empty()
        && file
            .realm
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' || c == ' ');
    if !realm_ok {
        errs.push(
            format!("{at}.realm"),
            "must be printable ASCII without quotes",
        );
    }
    (errs.list.len() == before).then_some(BasicAuth {
        realm: file.realm,
        users,
        forward_user,
    })
}

fn check_compression(
    errs: &mut Errors<'_>,
    at: &str,
    file: CompressionFile,
) -> Option<Compression> {
    let spec: CompressionSpec = match file {
        CompressionFile::Off(_) => return None,
        CompressionFile::On(spec) => spec,
    };
    let mut algorithms = Vec::new();
    for (i, name) in spec.algorithms.iter().enumerate() {
        let algorithm = match name.as_str() {
            "zstd" => Algorithm::Zstd,
            "br" => Algorithm::Brotli,
            "gzip" => Algorithm::Gzip,
            _ => {
                errs.push(
                    format!("{at}.algorithms[{i}]"),
                    format!("unknown algorithm {name:?}, expected zstd, br or gzip"),
                );
                continue;
            }
        };
        if algorithms.contains(&algorithm) {
            errs.push(
                format!("{at}.algorithms[{i}]"),
                format!("{name} is listed twice"),
            );
            continue;
        }
        algorithms.push(algorithm);
    }
    if spec.algorithms.is_empty() {
        errs.push(
            format!("{at}.algorithms"),
            "list at least one of zstd, br, gzip (or write compression: off)",
        );
    }
    let mut content_types = Vec::new();
    for (i, t) in spec.content_types.iter().enumerate() {
        let lower = t.trim().to_ascii_lowercase();
        let valid = match lower.split_once('/') {
            Some((ty, "*")) => !ty.is_empty() && !ty.contains('*'),
            Some((ty, sub)) => {
                !ty.is_empty() && !sub.is_empty() && !lower.contains(['*', ';', ' '])
            }
            None => false,
        };
        if !valid {
            errs.push(
                format!("{at}.content_types[{i}]"),
                format!(
                    "invalid media type {t:?}, expected e.g. \"application/json\" or \"text/*\""
                ),
            );
            continue;
        }
        content_types.push(lower.strip_suffix('*').map(str::to_owned).unwrap_or(lower));
    }
    Some(Compression {
        algorithms,
        min_size: spec.min_size.0,
        content_types,
    })
}

fn check_api_keys(
    errs: &mut Errors<'_>,
    at: &str,
    file: &ApiKeysFile,
    base_dir: &Path,
) -> Option<ApiKeys> {
    let before = errs.list.len();
    let mut names = |key: &str, text: &str| match header_name(text) {
        Some(n) if !FRAMING.contains(&n.as_str()) && !REQUEST_IDENTITY.contains(&n.as_str()) => {
            Some(n)
        }
        _ => {
            errs.push(
                format!("{at}.{key}"),
                format!("{text:?} is not a header name the gateway lets a policy use"),
            );
            None
        }
    };
    let header = names("header", &file.header);
    let forward_name = names("forward_name", &file.forward_name);
    let path = base_dir.join(&file.keys_file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            errs.push(
                format!("{at}.keys_file"),
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    let mut keys: Vec<(String, [u8; 32])> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = format!("{}:{}", path.display(), n + 1);
        let digest = line.split_once(':').and_then(|(name, hex)| {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<_>>()?;
            Some((name, <[u8; 32]>::try_from(bytes).ok()?))
        });
        match digest {
            Some((name, d)) if !name.is_empty() && !keys.iter().any(|(k, _)| k == name) => {
                keys.push((name.to_owned(), d));
            }
            _ => errs.push(
                format!("{at}.keys_file"),
                format!(
                    "{place}: expected name:<64 hex digits of the key's SHA-256>, each name once"
                ),
            ),
        }
    }
    (errs.list.len() == before).then_some(ApiKeys {
        header: header?,
        keys,
        forward_name: forward_name?,
    })
}

fn check_forward_auth(
    errs: &mut Errors<'_>,
    at: &str,
    file: &ForwardAuthFile,
) -> Option<ForwardAuth> {
    let before = errs.list.len();
    let url_ok = file
        .url
        .parse::<http::Uri>()
        .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
    if !url_ok {
        errs.push(
            format!("{at}.url"),
            format!(
                "expected an http:// URL of the auth service, got {:?}",
                file.url
            ),
        );
    }
    if file.timeout.is_zero() || file.timeout > std::time::Duration::from_secs(30) {
        errs.push(format!("{at}.timeout"), "must be between 1ms and 30s");
    }
    let mut names = |key: &str, list: &[String], identity_ok: bool| -> Vec<HeaderName> {
        let mut out = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match header_name(text) {
                Some(n)
                    if !FRAMING.contains(&n.as_str())
                        && (identity_ok || !REQUEST_IDENTITY.contains(&n.as_str())) =>
                {
                    out.push(n);
                }
                _ => errs.push(
                    format!("{at}.{key}[{i}]"),
                    format!("{text:?} is not a header this policy may use"),
                ),
            }
        }
        out
    };
    // Any request header may be shown to the auth service; only fields the gateway does not
    // own may be copied onto the upstream request.
    let forward_headers = names("forward_headers", &file.forward_headers, true);
    let copy_headers = names("copy_headers", &file.copy_headers, false);
    (errs.list.len() == before).then(|| ForwardAuth {
        url: file.url.clone(),
        timeout: file.timeout,
        forward_headers,
        copy_headers,
        cache_ttl: file.cache_ttl,
    })
}
