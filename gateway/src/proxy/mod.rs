//! The Pingora `ProxyHttp` implementation. It dispatches the phases to their modules and
//! keeps what ties a request to its upstream (endpoint choice, retry policy, connect
//! failures):
//! - `request_filters`: request id, client address, size limits, routing, auth, rate limits,
//!   fixed responses, the upstream request;
//! - `edge_filters`: the matched route's edge policies (addresses, CORS, basic auth,
//!   redirects, rewrites, header rules, security headers);
//! - `response_filters`: response headers, passive health, errors, access log and metrics;
//! - `traffic`: admission under `max_in_flight`, retry decisions and backoff;
//! - `errors`: the gateway's error types and `fate`, the one table of how each is answered;
//! - `connection`: around all of it, per client connection: the connection caps and the idle
//!   and header deadlines.
//!
//! Phase order: see pingora's `docs/user_guide/phase.md` and ARCHITECTURE.md.

pub(crate) mod connection;
mod edge_filters;
pub(crate) mod errors;
pub(crate) mod headers;
mod request_filters;
mod response_filters;
mod traffic;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::config::{AuthMode, RouteAction};
use crate::metrics;
use crate::policy::rate_limit::Decision;
use crate::runtime::Runtime;
use crate::upstream::{BreakerProbe, Pool, Unavailable};

pub(crate) struct Gateway {
    /// The live config, routes and pools. Requests load it once, in `early_request_filter`.
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
}

/// Decrements the in-flight gauge however the request ends.
pub(crate) struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::IN_FLIGHT.inc();
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::IN_FLIGHT.dec();
    }
}

/// Per-request state shared by the phases.
pub(crate) struct Ctx {
    _in_flight: InFlight,
    started: Instant,
    /// The runtime this request uses from start to end, even if a reload happens meanwhile.
    runtime: Option<Arc<Runtime>>,
    request_id: String,
    client_ip: Option<IpAddr>,
    peer_trusted: bool,
    host: Option<String>,
    /// The request arrived over TLS (the HTTPS listener).
    tls: bool,
    /// The request path in canonical form, when the client spelled it otherwise.
    canonical_path: Option<String>,
    /// Index of the matched route in the router, by name for logs and metrics.
    route_name: Option<String>,
    route_action: Option<RouteAction>,
    upstream_path: Option<String>,
    /// Endpoints already attempted, in order; the last one is the current attempt.
    tried: Vec<SocketAddr>,
    upstream_started: Option<Instant>,
    /// Time to the upstream response header.
    upstream_elapsed: Option<std::time::Duration>,
    /// Set once the upstream response header arrived: from then on no retry is possible.
    response_started: bool,
    /// Set when the gateway itself wrote the response (error or fixed response).
    gateway_status: Option<u16>,
    /// The matched route's body limit, and the body bytes seen so far.
    body_limit: u64,
    body_bytes: u64,
    route_auth: AuthMode,
    /// Why authentication failed, which decides the `WWW-Authenticate` challenge.
    auth_failure: Option<AuthFailure>,
    /// The verified token's subject, if any.
    subject: Option<String>,
    /// Headers from verified claims, set on the upstream request.
    identity_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    route_index: usize,
    /// The most restrictive rate-limit decision, for the `RateLimit-*` headers.
    rate_decision: Option<Decision>,
    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) to a
    /// route with `cors`.
    preflight: bool,
    /// `Access-Control-Allow-Origin` for this request, when its route has `cors` and allows
    /// its `Origin`.
    cors_origin: Option<http::HeaderValue>,
    /// The user `basic_auth` verified.
    basic_user: Option<Arc<str>>,
    /// The realm of the `basic_auth` that refused the request.
    basic_realm: Option<String>,
    /// The name of the API key `api_keys` matched.
    api_key_name: Option<String>,
    /// The header `api_keys` wanted a key in, when it refused the request.
    api_key_header: Option<String>,
    /// Headers the route's `forward_auth` service asked to pass upstream.
    forward_auth_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Compresses the response body, when the route's `compression` chose to.
    encoder: Option<crate::policy::compression::Encoder>,
    /// The place under the pool's `max_in_flight`, held to the end of the request.
    admitted: Option<traffic::Admitted>,
    /// The current attempt is a half-open breaker's probe.
    probe: Option<BreakerProbe>,
    /// The current attempt's place under `max_in_flight_per_endpoint`.
    endpoint_slot: Option<pingora_limits::inflight::Guard>,
    /// The current attempt, counted in its endpoint's in-flight requests.
    attempt: Option<crate::upstream::Attempt>,
    /// The copy of this request for the route's `mirror`, when it was sampled.
    mirror: Option<traffic::MirrorCopy>,
    /// Retries so far that followed an answer or a reset (they back off).
    backoffs: u32,
    /// The next attempt waits its backoff first.
    backoff_due: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Invalid,
}

impl Ctx {
    /// The matched route's settings (none before routing or without a route).
    fn route(&self) -> Option<&crate::config::RouteConfig> {
        self.route_name.as_ref()?;
        self.runtime.as_ref()?.config.routes.get(self.route_index)
    }

    fn pool(&self) -> Option<&Arc<Pool>> {
        match (&self.route_action, &self.runtime) {
            (Some(RouteAction::Proxy { pool, .. }), Some(rt)) => rt.pools.get(*pool),
            _ => None,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            _in_flight: InFlight::start(),
            started: Instant::now(),
            runtime: None,
            request_id: String::new(),
            client_ip: None,
            peer_trusted: false,
            host: None,
            tls: false,
            canonical_path: None,
            route_name: None,
            route_action: None,
            upstream_path: None,
            tried: Vec::new(),
            upstream_started: None,
            upstream_elapsed: None,
            response_started: false,
            gateway_status: None,
            body_limit: u64::MAX,
            body_bytes: 0,
            route_auth: AuthMode::None,
            auth_failure: None,
            subject: None,
            identity_headers: Vec::new(),
            route_index: 0,
            rate_decision: None,
            preflight: false,
            cors_origin: None,
            basic_user: None,
            basic_realm: None,
            encoder: None,
            api_key_name: None,
            api_key_header: None,
            forward_auth_headers: Vec::new(),
            admitted: None,
            probe: None,
            endpoint_slot: None,
            attempt: None,
            mirror: None,
            backoffs: 0,
            backoff_due: false,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        connection::header_received();
        ctx.runtime = Some(self.runtime.load_full());
        request_filters::identify(session, ctx);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        request_filters::check_limits(session, ctx)?;
        if request_filters::answer_acme_challenge(session, ctx).await? {
            return Ok(true);
        }
        if request_filters::redirect_to_https(session, ctx).await? {
            return Ok(true);
        }
        request_filters::route(session, ctx)?;
        edge_filters::check_address(ctx)?;
        edge_filters::note_origin(session, ctx);
        // Browsers send preflights without credentials: answered before any auth.
        if edge_filters::answer_preflight(session, ctx).await? {
            return Ok(true);
        }
        edge_filters::check_basic_auth(session, ctx).await?;
        edge_filters::check_api_key(session, ctx)?;
        if edge_filters::forward_auth(session, ctx).await? {
            return Ok(true);
        }
        request_filters::authenticate(session, ctx).await?;
        request_filters::check_content_length(session, ctx)?;
        request_filters::rate_limit(session, ctx).await?;
        if edge_filters::redirect(session, ctx).await? {
            return Ok(true);
        }
        if request_filters::respond_fixed(session, ctx).await? {
            return Ok(true);
        }
        traffic::choose_pool(session, ctx);
        traffic::sample_mirror(session, ctx);
        traffic::admit(ctx).await?;
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        request_filters::count_body(body.as_ref(), ctx)?;
        traffic::mirror_body(body.as_ref(), ctx);
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let pool = ctx
            .pool()
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "route has no pool"))?;
        if ctx.tried.is_empty() {
            // A pool that never retries has no use for the count.
            if pool.config.retries.attempts > 0 {
                pool.budget.request();
            }
        } else {
            traffic::back_off(ctx, &pool).await;
        }
        let key = request_filters::hash_key(session, ctx, &pool.config.balance);
        // The previous attempt's places (if any) are given back before choosing again.
        ctx.probe = None;
        ctx.endpoint_slot = None;
        ctx.attempt = None;
        let chosen = match pool.select(&key, &ctx.tried) {
            Ok(chosen) => chosen,
            Err(Unavailable::NoEndpoint) => {
                return Error::e_explain(
                    errors::NO_HEALTHY_ENDPOINT,
                    format!("pool {} has no healthy endpoint", pool.name()),
                )
            }
            Err(Unavailable::AtCapacity) => {
                return Error::e_explain(
                    errors::OVERLOADED,
                    format!(
                        "every endpoint of pool {} is at max_in_flight_per_endpoint",
                        pool.name()
                    ),
                )
            }
        };
        if !ctx.tried.is_empty() {
            metrics::RETRIES.with_label_values(&[pool.name()]).inc();
        }
        ctx.tried.push(chosen.addr);
        ctx.probe = chosen.probe;
        ctx.endpoint_slot = chosen.slot;
        ctx.attempt = chosen.attempt;
        ctx.upstream_started = Some(Instant::now());
        let mut peer = pool.peer(chosen.addr);
        traffic::apply_route_timeouts(ctx, &mut peer)?;
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(pool) = ctx.pool() {
            let reused = if reused { "true" } else { "false" };
            metrics::UPSTREAM_CONNECTIONS
                .with_label_values(&[pool.name(), reused])
                .inc();
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        request_filters::rewrite_upstream_request(session, upstream_request, ctx)?;
        traffic::send_deadline(upstream_request, ctx)?;
        edge_filters::upstream_request(session, upstream_request, ctx)?;
        traffic::keep_for_mirror(upstream_request, ctx);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(pool), Some(addr)) = (ctx.pool().cloned(), ctx.tried.last().copied()) {
            metrics::CONNECT_FAILURES
                .with_label_values(&[pool.name()])
                .inc();
            if e.etype() == &ErrorType::ConnectRefused {
                pool.report_refused(addr);
            } else {
                pool.report_failure(addr);
            }
            // Nothing was sent, so any method may go to another endpoint.
            e.set_retry(traffic::may_retry(
                session,
                ctx,
                &pool,
                traffic::Failure::Connect,
            ));
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        _client_reused: bool,
    ) -> Box<Error> {
        if e.etype() == &errors::RETRY_ON_STATUS {
            // Decided, budgeted and counted when the status arrived.
            return e;
        }
        let mut e = e.more_context(format!("Peer: {peer}"));
        let Some(pool) = ctx.pool().cloned() else {
            return e;
        };
        if let (Some(admitted), Some(started), ErrorType::ReadTimedout) =
            (&ctx.admitted, ctx.upstream_started, e.etype())
        {
            admitted.observe(started.elapsed(), true);
        }
        if e.esource() == &pingora::ErrorSource::Upstream {
            if let Some(addr) = ctx.tried.last() {
                pool.report_failure(*addr);
            }
        }
        let retry = traffic::may_retry(session, ctx, &pool, traffic::Failure::Reset);
        e.set_retry(retry);
        e
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response_filters::judge_answer(upstream_response, ctx);
        traffic::retry_on_status(session, upstream_response, ctx)?;
        // The answer goes to the client: no retry from here on.
        ctx.response_started = true;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response_filters::to_client(session, upstream_response, ctx)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        edge_filters::compress_body(body, end_of_stream, ctx)?;
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        response_filters::fail_to_proxy(session, e, ctx).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        traffic::send_mirror(session, ctx);
        response_filters::log_request(session, e, ctx);
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // Every request, failed or not, gets exactly one access-log line from `logging`.
        true
    }
}
