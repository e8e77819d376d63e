//! Response phases: upstream answers, error responses, and the one access-log line and
//! metric update every request gets.

use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, Session};
use pingora::Error;

use super::errors::{fate, respond_problem, Advice};
use super::headers::{self, X_REQUEST_ID};
use super::{AuthFailure, Ctx};
use crate::metrics;
use crate::policy::rate_limit::Decision;

/// The upstream answered, retried or not: the endpoint's breaker and the pool's adaptive
/// limit learn the outcome. A 503 with `Retry-After` is an upstream shedding load on purpose
/// (e.g. the backend's saturated password hashing): it tells the adaptive limit the pool is
/// loaded, but counts neither way for the breaker, since opening a replica's breaker for it
/// would only push its load onto the others.
pub(super) fn judge_answer(resp: &ResponseHeader, ctx: &mut Ctx) {
    ctx.upstream_elapsed = ctx.upstream_started.map(|t| t.elapsed());
    if let (Some(attempt), Some(took)) = (&ctx.attempt, ctx.upstream_elapsed) {
        attempt.observe_answer(took);
    }
    let shedding = resp.status == http::StatusCode::SERVICE_UNAVAILABLE
        && resp.headers.contains_key(http::header::RETRY_AFTER);
    if let (Some(admitted), Some(latency)) = (&ctx.admitted, ctx.upstream_elapsed) {
        admitted.observe(latency, shedding);
    }
    let (Some(pool), Some(addr)) = (ctx.pool(), ctx.tried.last()) else {
        return;
    };
    if shedding {
        return;
    }
    if pool.is_failure_status(resp.status.as_u16()) {
        pool.report_failure(*addr);
    } else {
        pool.report_success(*addr);
    }
}

/// `RateLimit-Limit`, `-Remaining`, `-Reset` (IETF httpapi draft fields).
fn rate_limit_headers(d: &Decision) -> [(&'static str, String); 3] {
    [
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset_secs.to_string()),
    ]
}

/// Headers the client sees: hop-by-hop ones removed, the request id and quota added, and
/// the route's edge policies (security headers, CORS, response rules) applied.
pub(super) fn to_client(
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> pingora::Result<()> {
    for name in headers::hop_by_hop(&resp.headers) {
        resp.remove_header(&name);
    }
    resp.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
    if let Some(hsts) = headers::hsts(ctx.runtime.as_deref(), ctx.tls) {
        resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts)?;
    }
    let on_success = ctx
        .runtime
        .as_ref()
        .is_some_and(|rt| rt.config.rate_limiting.headers_on_success);
    if let (true, Some(d)) = (on_success, &ctx.rate_decision) {
        for (name, value) in rate_limit_headers(d) {
            resp.insert_header(name, value)?;
        }
    }
    super::edge_filters::upstream_response(session, resp, ctx)
}

/// Answer a failed request as its [`fate`] says, with a problem+json body.
pub(super) async fn fail_to_proxy(session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
    let fate = fate(e);
    // A refusal before upstream work keeps a body-less request's connection (a client being
    // rate limited does not also lose its connection); anything else closes, and says so
    // with `Connection: close`, so the client does not send its next request on a
    // connection that is about to go away.
    let req = session.req_header();
    let bodyless = !req.headers.contains_key(http::header::TRANSFER_ENCODING)
        && req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    let can_reuse_downstream = fate.status > 0 && bodyless && fate.keep_alive;
    if !can_reuse_downstream {
        session.set_keepalive(None);
    }
    if fate.status > 0 {
        if ctx.request_id.is_empty() {
            ctx.request_id = headers::request_id(None);
        }
        ctx.gateway_status = Some(fate.status);
        if let Some(policy) = fate.policy {
            let route = ctx.route_name.as_deref().unwrap_or("none");
            metrics::REJECTIONS
                .with_label_values(&[policy, route])
                .inc();
        }
        let extra = advice_headers(fate.advice, ctx);
        let hsts = headers::hsts(ctx.runtime.as_deref(), ctx.tls);
        let decorate = |header: &mut ResponseHeader| {
            for (name, value) in extra {
                header.insert_header(name, value)?;
            }
            super::edge_filters::own_response_headers(header, ctx)
        };
        if let Err(write_error) = respond_problem(
            session,
            fate.status,
            fate.detail,
            &ctx.request_id,
            hsts,
            decorate,
        )
        .await
        {
            tracing::debug!(error = %write_error, request_id = %ctx.request_id, "could not send the error response");
        }
    }
    FailToProxy {
        error_code: fate.status,
        can_reuse_downstream,
    }
}

/// The headers an [`Advice`] stands for, filled in from what the request phases found.
fn advice_headers(advice: Advice, ctx: &Ctx) -> Vec<(&'static str, String)> {
    match advice {
        Advice::None => Vec::new(),
        // RFC 6750: a missing token gets a bare challenge, a bad one `invalid_token`.
        Advice::Challenge => match ctx.auth_failure {
            Some(AuthFailure::Invalid) => vec![(
                "www-authenticate",
                "Bearer realm=\"gateway\", error=\"invalid_token\"".to_owned(),
            )],
            Some(AuthFailure::Missing) | None => {
                vec![("www-authenticate", "Bearer realm=\"gateway\"".to_owned())]
            }
        },
        Advice::RateLimit => ctx.rate_decision.map_or_else(Vec::new, |d| {
            let mut extra = vec![("retry-after", d.retry_after_secs.to_string())];
            extra.extend(rate_limit_headers(&d));
            extra
        }),
        Advice::BasicChallenge => {
            let realm = ctx.basic_realm.as_deref().unwrap_or("gateway");
            vec![(
                "www-authenticate",
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            )]
        }
        Advice::ApiKeyChallenge => {
            let header = ctx.api_key_header.as_deref().unwrap_or("x-api-key");
            vec![(
                "www-authenticate",
                format!("ApiKey realm=\"gateway\", header=\"{header}\""),
            )]
        }
        Advice::RetryShortly => vec![("retry-after", "1".to_owned())],
    }
}

/// One JSON access-log line and the request metrics.
pub(super) fn log_request(session: &Session, e: Option<&Error>, ctx: &Ctx) {
    let req = session.req_header();
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.gateway_status)
        .unwrap_or(0);
    let source = if ctx.gateway_status.is_some() {
        "gateway"
    } else {
        "upstream"
    };
    let route = ctx.route_name.as_deref().unwrap_or("none");
    let method = metrics::method_label(&req.method);
    let total = ctx.started.elapsed();

    metrics::REQUESTS
        .with_label_values(&[route, method, &status.to_string(), source])
        .inc();
    metrics::REQUEST_DURATION
        .with_label_values(&[route])
        .observe(total.as_secs_f64());

    // The fields below allocate; skip them when the access log is off (RUST_LOG=warn).
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    let pool = ctx.pool().map(|p| p.name().to_owned());
    let endpoint = ctx.tried.last().map(ToString::to_string);
    tracing::info!(
        target: "access",
        request_id = %ctx.request_id,
        client_ip = ctx.client_ip.map(|ip| ip.to_string()),
        method = %req.method,
        path = req.uri.path(),
        protocol = ?req.version,
        tls = ctx.tls,
        host = ctx.host.as_deref(),
        route,
        pool,
        endpoint,
        attempts = ctx.tried.len(),
        status,
        source,
        total_ms = total.as_secs_f64() * 1000.0,
        upstream_ms = ctx.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
        bytes_sent = session.as_ref().body_bytes_sent(),
        bytes_received = session.as_ref().body_bytes_read(),
        error = e.map(|e| e.to_string()),
        "request"
    );
}
