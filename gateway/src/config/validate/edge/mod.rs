//! Edge policies (`route_defaults:` and each route's own): each key checked at its place
//! and put over the defaults. The checks themselves: header rules, templates and security
//! headers in `headers`; rewrites, redirects and compression in `transform`; CORS and the
//! ways to authenticate in `access`.

mod access;
mod headers;
mod transform;

use std::path::Path;

use http::{HeaderName, HeaderValue};
use ipnet::IpNet;

use super::Errors;
use crate::config::edge::EdgePolicies;
use crate::config::file::{
    ApiKeysFile, BasicAuthFile, CompressionFile, CorsFile, ForwardAuthFile, HeaderRulesFile,
    RewriteFile, RouteDefaultsFile, SecurityHeadersFile,
};
use access::{check_api_keys, check_basic_auth, check_cors, check_forward_auth};
use headers::{check_rules, check_security, Side};
pub(super) use transform::check_redirect;
use transform::{check_compression, check_rewrite};

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
fn check_nets(errs: &mut Errors<'_>, at: &str, list: &[String]) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, text) in list.iter().enumerate() {
        if let Some(net) = super::parse_net(text) {
            nets.push(net.trunc());
        } else {
            errs.push(
                format!("{at}[{i}]"),
                format!("invalid CIDR {text:?}, expected e.g. \"10.0.0.0/8\", \"2001:db8::/32\" or \"127.0.0.1\""),
            );
        }
    }
    nets
}
