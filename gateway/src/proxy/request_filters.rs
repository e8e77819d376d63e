//! Request phases: who is asking, is the request acceptable, which route answers it, and
//! what the upstream request looks like.

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, Result};

use super::errors::{
    BAD_REQUEST, BODY_TOO_LARGE, HEADERS_TOO_LARGE, KEYS_UNAVAILABLE, RATE_LIMITED,
    RATE_LIMIT_UNAVAILABLE, ROUTE_NOT_FOUND, UNAUTHORIZED, URI_TOO_LONG,
};
use super::headers::{self, Forwarded, X_REQUEST_ID};
use super::{AuthFailure, Ctx};
use crate::config::{AuthMode, Balance, HashKey, LimitKey, RouteAction};
use crate::policy::jwt::Rejected;
use crate::policy::rate_limit::Verdict;

/// Request id, client address and host; runs first so that every later error can cite them.
pub(super) fn identify(session: &Session, ctx: &mut Ctx) {
    let req = session.req_header();
    ctx.request_id = headers::request_id(req.headers.get(X_REQUEST_ID).map(|v| v.as_bytes()));
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let trusted = ctx
        .runtime
        .as_ref()
        .map_or(&[][..], |rt| &rt.config.trusted_proxies[..]);
    ctx.peer_trusted = peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)));
    ctx.client_ip = if ctx.peer_trusted {
        // Only a trusted proxy's header is read, and all of its lines: a proxy may append a
        // new line rather than extend the last one.
        let xff = headers::forwarded_for(&req.headers);
        headers::client_ip(peer, xff.as_deref(), trusted)
    } else {
        peer
    };
    ctx.host = request_host(req);
    ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
}

/// Where ACME's HTTP-01 challenges are answered: never redirected to HTTPS.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// With `tls.acme`, answer the CA's HTTP-01 validation request for a token of a pending
/// order (this gateway's or, through the shared storage, a replica's). An unknown token
/// goes on to routing like any other request. Returns `true` when the answer was sent.
pub(super) async fn answer_acme_challenge(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    // The path test first: every request passes here, and almost none is a challenge.
    let req = session.req_header();
    let Some(token) = req.uri.path().strip_prefix(ACME_CHALLENGE) else {
        return Ok(false);
    };
    let get = req.method == http::Method::GET || req.method == http::Method::HEAD;
    let acme = ctx.runtime.as_deref().and_then(|rt| rt.acme.clone());
    let (Some(acme), true, false) = (acme, get, ctx.tls) else {
        return Ok(false);
    };
    let token = token.to_owned();
    let Some(answer) = acme.answer(&token).await else {
        return Ok(false);
    };
    let mut header = headers::own_response(200, &ctx.request_id, None)?;
    header.insert_header(http::header::CONTENT_TYPE, "application/octet-stream")?;
    header.insert_header(http::header::CONTENT_LENGTH, answer.len().to_string())?;
    ctx.gateway_status = Some(200);
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session
        .write_response_body(Some(bytes::Bytes::from(answer)), true)
        .await?;
    Ok(true)
}

/// With `tls.redirect_http`, answer a plain-HTTP request with `308 Permanent Redirect` to the
/// same host and path over HTTPS (308 keeps the method and body). ACME challenges and routes
/// with `https_redirect: false` stay on HTTP, and so does a request without a host to send
/// it to. Returns `true` when the redirect was sent.
pub(super) async fn redirect_to_https(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let Some(location) = https_location(session.req_header(), ctx) else {
        return Ok(false);
    };
    // Over plain HTTP: no HSTS.
    let status = http::StatusCode::PERMANENT_REDIRECT.as_u16();
    let mut header = headers::own_response(status, &ctx.request_id, None)?;
    header.insert_header(http::header::LOCATION, location)?;
    header.insert_header(http::header::CONTENT_LENGTH, "0")?;
    ctx.gateway_status = Some(http::StatusCode::PERMANENT_REDIRECT.as_u16());
    session
        .write_response_header(Box::new(header), true)
        .await?;
    Ok(true)
}

/// The `Location` of the redirect to HTTPS, when this request gets one. The cheap tests
/// come first, so a request that stays on HTTP (or a config without the redirect) costs no
/// route lookup.
fn https_location(req: &RequestHeader, ctx: &Ctx) -> Option<String> {
    let rt = ctx.runtime.as_deref()?;
    let https = rt.config.listeners.https?;
    let redirect = rt.config.tls.as_ref().is_some_and(|t| t.redirect_http);
    let host = ctx.host.as_deref()?;
    let path = ctx.canonical_path.as_deref().unwrap_or(req.uri.path());
    if !redirect || ctx.tls || path.starts_with(ACME_CHALLENGE) {
        return None;
    }
    let opted_out = rt
        .router
        .find(Some(host), path, &req.method)
        .is_some_and(|r| !rt.config.routes[r.index].https_redirect);
    if opted_out {
        return None;
    }
    let authority = match https.port() {
        443 => host.to_owned(),
        port if host.contains(':') => format!("[{host}]:{port}"),
        port => format!("{host}:{port}"),
    };
    Some(match req.uri.query() {
        Some(q) => format!("https://{authority}{path}?{q}"),
        None => format!("https://{authority}{path}"),
    })
}

/// The host the client asked for, lower-case and without a port.
fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = match req.uri.host() {
        Some(h) => h,
        None => req.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// 414 for a long request target, 431 for large headers, 400 for a path without a safe
/// canonical form; a path in another spelling is rewritten to its canonical form (see
/// `crate::path`), which routing, limits and the upstream then see.
pub(super) fn check_limits(session: &Session, ctx: &mut Ctx) -> Result<()> {
    let Some(rt) = &ctx.runtime else {
        return Ok(());
    };
    let limits = &rt.config.limits;
    let req = session.req_header();
    let target_len = req.raw_path().len();
    if target_len > limits.max_uri_bytes {
        return Error::e_explain(
            URI_TOO_LONG,
            format!("request target is {target_len} bytes"),
        );
    }
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Error::e_explain(
            HEADERS_TOO_LARGE,
            format!("request headers are {header_bytes} bytes"),
        );
    }
    // Only origin-form (`/path`) and absolute-form `http(s)://` targets: another scheme or
    // form (`x:/auth/login`, `*`) would be routed on one path and forwarded as another.
    // (Pingora keeps an absolute-form target's bytes in `raw_path` and only its path in
    // `uri`.)
    let raw = req.raw_path();
    let origin_form = raw.first() == Some(&b'/');
    let http_url = [&b"http://"[..], b"https://"]
        .iter()
        .any(|scheme| raw.len() > scheme.len() && raw[..scheme.len()].eq_ignore_ascii_case(scheme));
    if !origin_form && !http_url {
        return Error::e_explain(BAD_REQUEST, "request target is not a path or an http URL");
    }
    match crate::path::normalize(req.uri.path()) {
        Ok(canonical) => ctx.canonical_path = canonical,
        Err(why) => {
            return Error::e_explain(BAD_REQUEST, format!("request path holds {why}"));
        }
    }
    Ok(())
}

/// Pick the route, or fail with 404.
pub(super) fn route(session: &Session, ctx: &mut Ctx) -> Result<()> {
    let Some(rt) = ctx.runtime.clone() else {
        return Ok(());
    };
    let req = session.req_header();
    let sent = req.uri.path();
    let path = ctx.canonical_path.as_deref().unwrap_or(sent);
    // A CORS preflight belongs to the route of the method it asks about, when that route
    // has `cors`; otherwise an OPTIONS request is routed like any other.
    let preflight = crate::policy::edge::preflight_method(req)
        .and_then(|m| rt.router.find(ctx.host.as_deref(), path, &m))
        .filter(|r| rt.config.routes[r.index].policies.cors.is_some());
    ctx.preflight = preflight.is_some();
    let Some(route) = preflight.or_else(|| rt.router.find(ctx.host.as_deref(), path, &req.method))
    else {
        return Error::e_explain(ROUTE_NOT_FOUND, format!("no route for {path}"));
    };
    ctx.route_name = Some(route.name.clone());
    ctx.body_limit = route.body_limit;
    ctx.route_auth = route.auth;
    ctx.route_index = route.index;
    ctx.route_action = Some(route.action.clone());
    let upstream_path = match super::edge_filters::rewritten_path(ctx, path) {
        Some(rewritten) => rewritten.into(),
        None => route.upstream_path(path),
    };
    // An absolute-form target goes upstream in origin form, so the upstream reads the very
    // path the gateway routed on.
    let origin_form = req.raw_path().first() == Some(&b'/');
    if upstream_path != sent || !origin_form {
        ctx.upstream_path = Some(upstream_path.into_owned());
    }
    Ok(())
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(req: &RequestHeader) -> Option<&str> {
    let value = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Verify the bearer token on routes with `auth: required | optional`. A token that fails
/// verification is refused even where auth is optional: a client that sends one expects
/// it to count.
pub(super) async fn authenticate(session: &Session, ctx: &mut Ctx) -> Result<()> {
    if ctx.route_auth == AuthMode::None {
        return Ok(());
    }
    let Some(verifier) = ctx.runtime.as_ref().and_then(|rt| rt.verifier.clone()) else {
        return Error::e_explain(UNAUTHORIZED, "no verifier configured");
    };
    let Some(token) = bearer(session.req_header()) else {
        if ctx.route_auth == AuthMode::Required {
            ctx.auth_failure = Some(AuthFailure::Missing);
            return Error::e_explain(UNAUTHORIZED, "no bearer token");
        }
        return Ok(());
    };
    let result = match verifier.cached(token) {
        Some(hit) => Ok(hit),
        None => {
            check_verification_limit(ctx).await?;
            match verifier.verify(token) {
                // A key id nobody knows may be a rotation the gateway has not fetched yet:
                // fetch (at most once per `min_refresh_interval`) and try once more.
                Err(Rejected::UnknownKid) => {
                    if let Some(jwks) = ctx.runtime.as_ref().and_then(|rt| rt.jwks.clone()) {
                        jwks.refresh_on_demand().await;
                    }
                    verifier.verify(token)
                }
                other => other,
            }
        }
    };
    match result {
        Ok(verified) => {
            ctx.subject = verified.subject;
            ctx.identity_headers = verified.headers;
            Ok(())
        }
        // Not the client's fault: a freshly started gateway whose JWKS has not loaded yet
        // (its pool not up) cannot tell a valid token from a forged one.
        Err(Rejected::UnknownKid) if !verifier.has_jwks_keys() => {
            Error::e_explain(KEYS_UNAVAILABLE, "no JWKS loaded yet")
        }
        Err(rejected) => {
            ctx.auth_failure = Some(AuthFailure::Invalid);
            Error::e_explain(UNAUTHORIZED, rejected.reason())
        }
    }
}

/// `jwt.verification_limit`: a client may make the gateway check only so many signatures
/// (tokens it verified before are free), so a flood of made-up tokens gets 429s cheaply.
async fn check_verification_limit(ctx: &mut Ctx) -> Result<()> {
    let Some(limiter) = ctx
        .runtime
        .as_ref()
        .and_then(|rt| rt.verification_limiter.clone())
    else {
        return Ok(());
    };
    let key = client_limit_key(ctx);
    match limiter.check(&key).await {
        Verdict::Decided(d) if !d.allowed => {
            ctx.rate_decision = Some(d);
            Error::e_explain(
                RATE_LIMITED,
                format!("too many token verifications for {key}"),
            )
        }
        Verdict::Decided(_) | Verdict::Unavailable => Ok(()),
    }
}

/// The key a client's requests count under in limits: its address, IPv6 by prefix.
fn client_limit_key(ctx: &Ctx) -> String {
    let prefix = ctx
        .runtime
        .as_ref()
        .map_or(64, |rt| rt.config.rate_limiting.ipv6_prefix);
    ctx.client_ip.map_or_else(
        || "ip:unknown".to_owned(),
        |ip| format!("ip:{}", headers::client_key(ip, prefix)),
    )
}

/// Apply every rate limit of the route; all must allow. A missing key (no subject, no
/// header) falls back to the client address, never to "unlimited".
pub(super) async fn rate_limit(session: &Session, ctx: &mut Ctx) -> Result<()> {
    let Some(rt) = ctx.runtime.clone() else {
        return Ok(());
    };
    let Some(limiters) = rt.limiters.get(ctx.route_index) else {
        return Ok(());
    };
    let client = client_limit_key(ctx);
    for limiter in limiters {
        let key = match &limiter.spec.key {
            LimitKey::ClientIp => client.clone(),
            LimitKey::Subject => ctx
                .subject
                .as_ref()
                .map_or_else(|| client.clone(), |s| format!("sub:{s}")),
            LimitKey::Header(name) => session
                .req_header()
                .headers
                .get(name)
                .map_or_else(|| client.clone(), |v| header_limit_key(v.as_bytes())),
            LimitKey::Route => "route".to_owned(),
            LimitKey::ApiKey => ctx
                .api_key_name
                .as_ref()
                .map_or_else(|| client.clone(), |n| format!("key:{n}")),
        };
        match limiter.check(&key).await {
            Verdict::Decided(d) if !d.allowed => {
                ctx.rate_decision = Some(d);
                return Error::e_explain(RATE_LIMITED, format!("rate limit exceeded for {key}"));
            }
            Verdict::Decided(d) => {
                if ctx
                    .rate_decision
                    .is_none_or(|prev| d.remaining < prev.remaining)
                {
                    ctx.rate_decision = Some(d);
                }
            }
            Verdict::Unavailable => {
                return Error::e_explain(RATE_LIMIT_UNAVAILABLE, "rate-limit store unreachable");
            }
        }
    }
    Ok(())
}

/// The limit key of a header value: short printable values as they are (readable in Redis),
/// anything else as a hash, so a client cannot make the gateway store large keys.
fn header_limit_key(value: &[u8]) -> String {
    use sha2::Digest as _;
    if value.len() <= 64 && value.iter().all(|b| b.is_ascii_graphic()) {
        return format!("h:{}", String::from_utf8_lossy(value));
    }
    let digest = sha2::Sha256::digest(value);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("hs:{hex}")
}

/// The request body's length as its `Content-Length` declares it, if it does.
pub(super) fn declared_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// 413 before any upstream work when the declared length is over the route's limit.
pub(super) fn check_content_length(session: &Session, ctx: &Ctx) -> Result<()> {
    match declared_length(session) {
        Some(len) if len > ctx.body_limit => Error::e_explain(
            BODY_TOO_LARGE,
            format!("content-length {len} over the limit of {}", ctx.body_limit),
        ),
        _ => Ok(()),
    }
}

/// Count streamed body bytes (chunked bodies have no declared length). Crossing the limit
/// fails the request: Pingora then drops the upstream connection before the final chunk,
/// so the upstream sees a broken request, never a complete over-limit one, and the client
/// gets 413. (Pingora 0.9 runs this filter only after the upstream request header was sent.)
pub(super) fn count_body(chunk: Option<&bytes::Bytes>, ctx: &mut Ctx) -> Result<()> {
    ctx.body_bytes += chunk.map_or(0, |c| c.len() as u64);
    if ctx.body_bytes > ctx.body_limit {
        return Error::e_explain(
            BODY_TOO_LARGE,
            format!("body passed the limit of {} bytes", ctx.body_limit),
        );
    }
    Ok(())
}

/// Answer a `respond:` route directly. Returns `true` when the response was sent.
pub(super) async fn respond_fixed(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let Some(RouteAction::Respond {
        status,
        body,
        content_type,
    }) = &ctx.route_action
    else {
        return Ok(false);
    };
    let hsts = headers::hsts(ctx.runtime.as_deref(), ctx.tls);
    let mut header = headers::own_response(status.as_u16(), &ctx.request_id, hsts)?;
    header.insert_header(http::header::CONTENT_TYPE, content_type.as_str())?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    super::edge_filters::own_response_headers(&mut header, ctx)?;
    ctx.gateway_status = Some(status.as_u16());
    let body = body.clone();
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}

/// The consistent-hash key for this request; empty for the other balancers.
pub(super) fn hash_key(session: &Session, ctx: &Ctx, balance: &Balance) -> Vec<u8> {
    let Balance::ConsistentHash(key) = balance else {
        return Vec::new();
    };
    match key {
        HashKey::ClientIp => ctx
            .client_ip
            .map(|ip| ip.to_string().into_bytes())
            .unwrap_or_default(),
        HashKey::Path => ctx
            .canonical_path
            .as_deref()
            .unwrap_or(session.req_header().uri.path())
            .as_bytes()
            .to_vec(),
        HashKey::Header(name) => session
            .req_header()
            .headers
            .get(name)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}

/// Hop-by-hop headers out, forwarding headers and request id in, prefix stripped.
pub(super) fn rewrite_upstream_request(
    session: &Session,
    req: &mut RequestHeader,
    ctx: &Ctx,
) -> Result<()> {
    // Hop-by-hop and Connection-named headers are already gone: Pingora's default upstream
    // request policy (`HttpUpstreamRequestPolicy::standard`, which the gateway's peers keep)
    // strips them before this filter runs, keeping only a normalized WebSocket upgrade.
    // Identity headers are the gateway's to set: client copies go on every route.
    if let Some(rt) = &ctx.runtime {
        for name in &rt.owned_headers {
            req.remove_header(name);
        }
    }
    for (name, value) in &ctx.identity_headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    // The pool's shared secret goes with forwarded claims only: it tells the upstream that
    // these identity headers come from the gateway.
    let secret = ctx.pool().and_then(|p| p.config.forward_secret.as_ref());
    if let (Some(secret), false) = (secret, ctx.identity_headers.is_empty()) {
        req.insert_header(secret.header.clone(), secret.value.clone())?;
    }
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    headers::set_forwarded(
        req,
        &Forwarded {
            peer,
            peer_trusted: ctx.peer_trusted,
            host: ctx.host.as_deref(),
            request_id: &ctx.request_id,
            tls: ctx.tls,
        },
    )?;
    if let Some(path) = &ctx.upstream_path {
        // A rewrite may give the path a query of its own; the client's is appended to it.
        let target = match req.uri.query() {
            Some(q) if path.contains('?') => format!("{path}&{q}"),
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let uri = target
            .parse::<http::Uri>()
            .map_err(|e| Error::because(BAD_REQUEST, "rewritten path is not a valid URI", e))?;
        req.set_uri(uri);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_binary_header_keys_are_hashed() {
        assert_eq!(header_limit_key(b"alice"), "h:alice");
        let long = header_limit_key(&[b'x'; 500]);
        assert!(long.starts_with("hs:") && long.len() == 35, "{long}");
        assert!(header_limit_key(b"a b").starts_with("hs:"));
        assert_ne!(
            header_limit_key(&[b'x'; 500]),
            header_limit_key(&[b'y'; 500])
        );
    }

    #[test]
    fn host_is_lowercased_and_loses_its_port() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "API.Example.com:8080").unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("api.example.com"));

        req.insert_header("host", "[::1]:80").unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("::1"));
    }
}
