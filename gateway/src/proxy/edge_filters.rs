//! The edge policies of the matched route, in the request and response phases: client
//! addresses, CORS preflights, basic auth, redirects, the upstream request's path, host and
//! headers, and the response's headers.

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, Result};

use super::errors::{
    API_KEY_UNAUTHORIZED, BASIC_UNAUTHORIZED, FORBIDDEN, FORWARD_AUTH_UNAVAILABLE, HASHING_BUSY,
};
use super::{headers, Ctx};
use crate::config::edge::{EdgePolicies, HeaderRules};
use crate::config::RouteAction;
use crate::metrics;
use crate::policy::compression::{self, Encoder, Plan};
use crate::policy::edge::{self, BasicRefusal, Vars};
use crate::policy::forward_auth::{Asking, Decision};

impl Ctx {
    /// The matched route's edge policies (none before routing or without a route).
    pub(super) fn policies(&self) -> Option<&EdgePolicies> {
        Some(&self.route()?.policies)
    }

    fn vars<'a>(&'a self, path: &'a str, pattern: Option<&'a regex::Regex>) -> Vars<'a> {
        Vars {
            client_ip: self.client_ip,
            request_id: &self.request_id,
            route: self.route_name.as_deref().unwrap_or_default(),
            host: self.host.as_deref(),
            path,
            pattern,
        }
    }

    /// The route's regular expression whose captures its templates use.
    fn pattern(&self) -> Option<&regex::Regex> {
        match &self.route_action {
            Some(RouteAction::Redirect(r)) => Some(&r.pattern),
            _ => self.policies()?.rewrite.as_ref().map(|r| &r.pattern),
        }
    }
}

fn count(ctx: &Ctx, action: &'static str) {
    let route = ctx.route_name.as_deref().unwrap_or("none");
    metrics::EDGE_ACTIONS
        .with_label_values(&[action, route])
        .inc();
}

/// `ip_allow` / `ip_deny`: 403 for an address the route does not serve.
pub(super) fn check_address(ctx: &Ctx) -> Result<()> {
    let Some(p) = ctx.policies() else {
        return Ok(());
    };
    if p.ip_access.permits(ctx.client_ip) {
        return Ok(());
    }
    let who = ctx
        .client_ip
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    Error::e_explain(FORBIDDEN, format!("client address {who} is not allowed"))
}

/// Remember the request's `Origin` on a route with CORS, and whether it is allowed.
pub(super) fn note_origin(session: &Session, ctx: &mut Ctx) {
    let Some(cors) = ctx.policies().and_then(|p| p.cors.as_ref()) else {
        return;
    };
    ctx.cors_origin = session
        .req_header()
        .headers
        .get(http::header::ORIGIN)
        .and_then(|o| edge::allowed_origin(cors, o));
}

/// Answer a CORS preflight on a route with `cors` (204, never forwarded). An origin that is
/// not allowed gets the 204 without CORS headers, which the browser treats as a refusal.
/// Returns `true` when the answer was sent.
pub(super) async fn answer_preflight(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    if !ctx.preflight {
        return Ok(false);
    }
    let Some(cors) = ctx.policies().and_then(|p| p.cors.clone()) else {
        return Ok(false);
    };
    let hsts = headers::hsts(ctx.runtime.as_deref(), ctx.tls);
    let mut header = headers::own_response(204, &ctx.request_id, hsts)?;
    header.insert_header(http::header::VARY, vary_value())?;
    if let Some(allow) = ctx.cors_origin.clone() {
        for (name, value) in edge::preflight_headers(&cors, allow) {
            header.insert_header(name, value)?;
        }
    }
    header.insert_header(http::header::CONTENT_LENGTH, "0")?;
    count(ctx, "cors_preflight");
    ctx.gateway_status = Some(204);
    session
        .write_response_header(Box::new(header), true)
        .await?;
    Ok(true)
}

fn vary_value() -> HeaderValue {
    HeaderValue::from_static(
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    )
}

/// `basic_auth`: 401 with a `Basic` challenge unless the request proves a listed user.
pub(super) async fn check_basic_auth(session: &Session, ctx: &mut Ctx) -> Result<()> {
    let Some(verifier) = ctx
        .runtime
        .as_ref()
        .and_then(|rt| rt.basic_auth.get(ctx.route_index)?.clone())
        .filter(|_| ctx.route_name.is_some())
    else {
        return Ok(());
    };
    let authorization = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION);
    match verifier.verify(authorization).await {
        Ok(user) => {
            ctx.basic_user = Some(user);
            Ok(())
        }
        Err(BasicRefusal::Busy) => Error::e_explain(HASHING_BUSY, "password checks saturated"),
        Err(why) => {
            ctx.basic_realm = Some(verifier.realm().to_owned());
            let detail = if why == BasicRefusal::Missing {
                "no basic credentials"
            } else {
                "wrong user or password"
            };
            Error::e_explain(BASIC_UNAUTHORIZED, detail)
        }
    }
}

/// `api_keys`: 401 unless the request's key header holds a listed key.
pub(super) fn check_api_key(session: &Session, ctx: &mut Ctx) -> Result<()> {
    let Some(keys) = ctx.policies().and_then(|p| p.api_keys.as_ref()) else {
        return Ok(());
    };
    let presented = session.req_header().headers.get(&keys.header);
    match presented.and_then(|v| edge::match_api_key(keys, v.as_bytes())) {
        Some(name) => {
            ctx.api_key_name = Some(name.to_owned());
            Ok(())
        }
        None => {
            let detail = if presented.is_some() {
                "unknown API key"
            } else {
                "no API key"
            };
            ctx.api_key_header = Some(keys.header.as_str().to_owned());
            Error::e_explain(API_KEY_UNAUTHORIZED, detail)
        }
    }
}

/// `forward_auth`: ask the route's auth service. A 2xx lets the request through (with the
/// headers it names); any other answer is sent to the client as the service gave it.
/// Returns `true` when the request was answered here.
pub(super) async fn forward_auth(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let Some(client) = ctx
        .runtime
        .as_ref()
        .and_then(|rt| rt.forward_auth.get(ctx.route_index)?.clone())
        .filter(|_| ctx.route_name.is_some())
    else {
        return Ok(false);
    };
    let req = session.req_header();
    let uri = req
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let decision = client
        .decide(&Asking {
            method: req.method.as_str(),
            proto: if ctx.tls { "https" } else { "http" },
            host: ctx.host.as_deref(),
            uri: &uri,
            client_ip: ctx.client_ip,
            request_id: &ctx.request_id,
            headers: &req.headers,
        })
        .await;
    match decision {
        Decision::Allow(headers) => {
            ctx.forward_auth_headers = headers;
            Ok(false)
        }
        Decision::Unavailable => Error::e_explain(
            FORWARD_AUTH_UNAVAILABLE,
            "the auth service could not decide",
        ),
        Decision::Deny {
            status,
            headers,
            body,
        } => {
            let hsts = headers::hsts(ctx.runtime.as_deref(), ctx.tls);
            let mut header = headers::own_response(status.as_u16(), &ctx.request_id, hsts)?;
            for (name, value) in headers {
                header.append_header(name, value)?;
            }
            header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
            own_response_headers(&mut header, ctx)?;
            let route = ctx.route_name.as_deref().unwrap_or("none");
            metrics::REJECTIONS
                .with_label_values(&["forward_auth", route])
                .inc();
            ctx.gateway_status = Some(status.as_u16());
            session
                .write_response_header(Box::new(header), body.is_empty())
                .await?;
            if !body.is_empty() {
                session.write_response_body(Some(body), true).await?;
            }
            Ok(true)
        }
    }
}

/// Answer a `redirect:` route. Returns `true` when the redirect was sent.
pub(super) async fn redirect(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let Some(RouteAction::Redirect(redirect)) = &ctx.route_action else {
        return Ok(false);
    };
    let req = session.req_header();
    let path = ctx.canonical_path.as_deref().unwrap_or(req.uri.path());
    let location = edge::redirect_location(
        redirect,
        &ctx.vars(path, Some(&redirect.pattern)),
        req.uri.query(),
    );
    let Some(location) = location.and_then(|l| HeaderValue::try_from(l).ok()) else {
        return Error::e_explain(
            super::errors::ROUTE_NOT_FOUND,
            format!("redirect pattern does not match {path}"),
        );
    };
    let status = redirect.status.as_u16();
    let hsts = headers::hsts(ctx.runtime.as_deref(), ctx.tls);
    let mut header = headers::own_response(status, &ctx.request_id, hsts)?;
    header.insert_header(http::header::LOCATION, location)?;
    header.insert_header(http::header::CONTENT_LENGTH, "0")?;
    own_response_headers(&mut header, ctx)?;
    count(ctx, "redirect");
    ctx.gateway_status = Some(status);
    session
        .write_response_header(Box::new(header), true)
        .await?;
    Ok(true)
}

/// The upstream path of a `rewrite:` route, if its pattern matches.
pub(super) fn rewritten_path(ctx: &Ctx, path: &str) -> Option<String> {
    let rewrite = ctx.policies()?.rewrite.as_ref()?;
    let out = edge::rewrite_path(rewrite, &ctx.vars(path, Some(&rewrite.pattern)))?;
    count(ctx, "rewrite");
    Some(out)
}

/// The route's request header rules, its upstream host and the basic-auth user, on the
/// request that goes upstream.
pub(super) fn upstream_request(
    session: &Session,
    req: &mut RequestHeader,
    ctx: &Ctx,
) -> Result<()> {
    let Some(p) = ctx.policies() else {
        return Ok(());
    };
    if let Some(host) = &p.upstream_host {
        req.insert_header(http::header::HOST, host.clone())?;
    }
    if let (Some(user), Some(verifier)) = (
        &ctx.basic_user,
        ctx.runtime
            .as_ref()
            .and_then(|rt| rt.basic_auth.get(ctx.route_index)?.as_ref()),
    ) {
        // The password is for the gateway; the upstream gets the user, if it asked.
        req.remove_header(&http::header::AUTHORIZATION);
        if let Some(name) = verifier.forward_user() {
            if let Ok(v) = HeaderValue::from_str(user) {
                req.insert_header(name.clone(), v)?;
            }
        }
    }
    if let (Some(keys), Some(name)) = (&p.api_keys, &ctx.api_key_name) {
        // The key is the gateway's to check; the upstream learns only whose it is.
        req.remove_header(&keys.header);
        if let Ok(v) = HeaderValue::from_str(name) {
            req.insert_header(keys.forward_name.clone(), v)?;
        }
    }
    for (name, value) in &ctx.forward_auth_headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    if p.request_headers.is_empty() {
        return Ok(());
    }
    let original = session.req_header();
    let path = ctx.canonical_path.as_deref().unwrap_or(original.uri.path());
    let vars = ctx.vars(path, ctx.pattern());
    apply(&p.request_headers, &vars, |op| match op {
        Op::Remove(name) => {
            req.remove_header(name);
            Ok(())
        }
        Op::Set(name, value) => req.insert_header(name.clone(), value),
        Op::Add(name, value) => req.append_header(name.clone(), value).map(|_| ()),
    })
}

enum Op<'a> {
    Remove(&'a HeaderName),
    Set(&'a HeaderName, HeaderValue),
    Add(&'a HeaderName, HeaderValue),
}

fn apply(
    rules: &HeaderRules,
    vars: &Vars<'_>,
    mut f: impl FnMut(Op<'_>) -> Result<()>,
) -> Result<()> {
    for name in &rules.remove {
        f(Op::Remove(name))?;
    }
    for (name, t) in &rules.set {
        if let Some(v) = edge::render_value(t, vars) {
            f(Op::Set(name, v))?;
        }
    }
    for (name, t) in &rules.add {
        if let Some(v) = edge::render_value(t, vars) {
            f(Op::Add(name, v))?;
        }
    }
    Ok(())
}

/// Security headers, hidden upstream headers, CORS, the route's response rules and
/// compression, on an upstream response.
pub(super) fn upstream_response(
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    set_headers(session, resp, ctx)?;
    compress(session, resp, ctx)
}

fn set_headers(session: &Session, resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    let Some(p) = ctx.policies() else {
        return Ok(());
    };
    for name in &p.security_headers.hide {
        resp.remove_header(name);
    }
    if p.cors.is_some() {
        // The gateway answers for CORS on this route; the upstream's own fields would
        // contradict it.
        let theirs: Vec<HeaderName> = resp
            .headers
            .keys()
            .filter(|n| n.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in theirs {
            resp.remove_header(&name);
        }
    }
    own_response_headers(resp, ctx)?;
    if p.response_headers.is_empty() {
        return Ok(());
    }
    let req = session.req_header();
    let path = ctx.canonical_path.as_deref().unwrap_or(req.uri.path());
    let vars = ctx.vars(path, ctx.pattern());
    apply(&p.response_headers, &vars, |op| match op {
        Op::Remove(name) => {
            resp.remove_header(name);
            Ok(())
        }
        Op::Set(name, value) => resp.insert_header(name.clone(), value),
        Op::Add(name, value) => resp.append_header(name.clone(), value).map(|_| ()),
    })
}

/// What every response of a route carries, the gateway's own ones (errors, redirects, fixed
/// answers) included: the security headers the response lacks, and CORS for an allowed
/// origin (so a browser can read a 401 or a 429 too).
pub(super) fn own_response_headers(resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    let Some(p) = ctx.policies() else {
        return Ok(());
    };
    let security = &p.security_headers;
    if let (true, Some(hsts)) = (ctx.tls, &security.hsts) {
        if !resp
            .headers
            .contains_key(http::header::STRICT_TRANSPORT_SECURITY)
        {
            resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
        }
    }
    for (name, value) in &security.headers {
        if !resp.headers.contains_key(name) {
            resp.insert_header(name.clone(), value.clone())?;
        }
    }
    if let Some(cors) = &p.cors {
        resp.append_header(http::header::VARY, HeaderValue::from_static("Origin"))?;
        if let Some(allow) = ctx.cors_origin.clone() {
            for (name, value) in edge::response_headers(cors, allow) {
                resp.insert_header(name, value)?;
            }
        }
    }
    Ok(())
}

/// The route's `compression`: decide from the request's `Accept-Encoding` and the response
/// header, and set up the encoder the body filter uses.
fn compress(session: &Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    let Some(policy) = ctx.policies().and_then(|p| p.compression.as_ref()) else {
        return Ok(());
    };
    let req = session.req_header();
    let chosen = compression::negotiate(
        &policy.algorithms,
        req.headers.get(http::header::ACCEPT_ENCODING),
    );
    let plan = compression::plan(
        policy,
        &req.method,
        req.version,
        resp.status,
        &resp.headers,
        chosen,
    );
    let algorithm = match plan {
        Plan::Untouched => return Ok(()),
        Plan::VaryOnly => return vary_on_encoding(resp),
        Plan::Compress(a) => a,
    };
    vary_on_encoding(resp)?;
    resp.insert_header(http::header::CONTENT_ENCODING, algorithm.token())?;
    resp.remove_header(&http::header::CONTENT_LENGTH);
    // The compressed length is not known before the end: HTTP/1.1 frames the body in chunks
    // (without this, Pingora sends it close-delimited and the client loses its connection
    // after every compressed response). HTTP/2 frames it itself and drops this header.
    if req.version == http::Version::HTTP_11 {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    resp.remove_header(&http::header::ACCEPT_RANGES);
    // The bytes differ from the upstream's, so a strong validator would lie.
    if let Some(etag) = resp.headers.get(http::header::ETAG) {
        if !etag.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                resp.insert_header(http::header::ETAG, v)?;
            }
        }
    }
    ctx.encoder = Some(Encoder::new(algorithm).map_err(|e| {
        Error::because(pingora::ErrorType::InternalError, "compression encoder", e)
    })?);
    count(ctx, "compress");
    Ok(())
}

fn vary_on_encoding(resp: &mut ResponseHeader) -> Result<()> {
    let present = resp.headers.get_all(http::header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        resp.append_header(
            http::header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        )?;
    }
    Ok(())
}

/// Compress a chunk of the response body (and end the stream on its last one).
pub(super) fn compress_body(
    body: &mut Option<bytes::Bytes>,
    end_of_stream: bool,
    ctx: &mut Ctx,
) -> Result<()> {
    let Some(encoder) = ctx.encoder.as_mut() else {
        return Ok(());
    };
    let failed = |e| {
        Error::because(
            pingora::ErrorType::InternalError,
            "compressing the response",
            e,
        )
    };
    let mut out = match body.as_deref() {
        Some(chunk) => encoder.push(chunk).map_err(failed)?,
        None => bytes::Bytes::new(),
    };
    if end_of_stream {
        if let Some(encoder) = ctx.encoder.take() {
            let tail = encoder.finish().map_err(failed)?;
            out = if out.is_empty() {
                tail
            } else {
                let mut joined = Vec::with_capacity(out.len() + tail.len());
                joined.extend_from_slice(&out);
                joined.extend_from_slice(&tail);
                joined.into()
            };
        }
    }
    *body = Some(out);
    Ok(())
}
