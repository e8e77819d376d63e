//! The Pingora `ProxyHttp` implementation. It only dispatches; each phase lives in its own
//! module:
//! - `request_filters`: request id, client address, size limits, routing, fixed responses;
//! - `upstream`: pools, health and endpoint choice (`upstream_peer`), retries;
//! - `response_filters`: response headers, passive health, access log and metrics;
//! - `connection`: around all of it, per client connection: the connection cap and the idle
//!   and header deadlines.
//!
//! Phase order: see pingora's `docs/user_guide/phase.md` and ARCHITECTURE.md.

pub(crate) mod connection;
pub(crate) mod discovery;
pub(crate) mod errors;
pub(crate) mod headers;
mod request_filters;
mod response_filters;
pub(crate) mod route;
pub(crate) mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_resolver::TokioAsyncResolver;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::config::{AuthMode, Config, RouteAction};
use crate::metrics;
use crate::policy::jwt::Verifier;
use crate::policy::rate_limit::{Decision, Limiter, RedisStore};
use route::Router;
use upstream::Pool;

/// Everything derived from one loaded config; swapped whole so a request sees one version.
pub(crate) struct Runtime {
    pub(crate) config: Arc<Config>,
    pub(crate) router: Router,
    /// Indexed like `config.pools`; routes refer to pools by that index.
    pub(crate) pools: Vec<Arc<Pool>>,
    /// Token verification for routes with `auth`, when `jwt:` is configured.
    pub(crate) verifier: Option<Arc<Verifier>>,
    /// `jwt.verification_limit`: signature checks per client (cached tokens are free), so
    /// a flood of invalid tokens cannot buy unbounded CPU.
    pub(crate) verification_limiter: Option<Arc<Limiter>>,
    /// Headers only the gateway may set upstream; client copies are always removed.
    pub(crate) owned_headers: Vec<http::HeaderName>,
    /// Each route's limiters, indexed like `config.routes`.
    pub(crate) limiters: Vec<Vec<Arc<Limiter>>>,
    /// The Redis connection cluster limits share; kept across reloads that keep its settings.
    redis: Option<Arc<RedisStore>>,
}

/// Identity header that is never accepted from clients, even without `forward_claims`,
/// because backends may trust it (the backend's `TRUST_GATEWAY_IDENTITY`).
const ALWAYS_OWNED: &str = "x-user-id";

/// How long a reload may spend warming up new pools before it swaps them in anyway.
const WARM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a `jwt:` section fetches its key set from, independent of pool positions: two
/// verifiers with the same origin see the same keys.
fn jwks_origin(config: &Config) -> Option<String> {
    let jwks = config.jwt.as_ref()?.jwks.as_ref()?;
    Some(match &jwks.source {
        crate::config::JwksSource::Url(url) => format!("url {url}"),
        crate::config::JwksSource::Pool { pool, path } => {
            format!("pool {} {path}", config.pools.get(*pool)?.name)
        }
    })
}

impl Runtime {
    /// Build the runtime for `config`, taking over from `previous` what must survive a
    /// reload: a pool whose settings are unchanged is kept as it is; a pool of the same name
    /// with other settings is succeeded by one that inherits its members and health (see
    /// `Pool::succeed`); an unchanged `jwt:` keeps its verifier (keys and cached tokens), a
    /// changed one starts with the old keys when it fetches from the same place; a limiter
    /// whose route name and spec are unchanged keeps its counters.
    pub(crate) fn build(
        config: Arc<Config>,
        resolver: &Arc<TokioAsyncResolver>,
        previous: Option<&Runtime>,
    ) -> std::result::Result<Self, String> {
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|pc| {
                let old_pools = previous.map_or(&[][..], |p| &p.pools[..]);
                if let Some(same) = old_pools.iter().find(|old| old.config == *pc) {
                    return Arc::clone(same);
                }
                let resolver = Arc::clone(resolver);
                match old_pools.iter().find(|old| old.name() == pc.name) {
                    Some(old) => Arc::new(Pool::succeed(pc.clone(), resolver, old)),
                    None => Arc::new(Pool::new(pc.clone(), resolver)),
                }
            })
            .collect();
        let verifier = match &config.jwt {
            None => None,
            Some(jwt) => {
                let origin = jwks_origin(&config);
                let old = previous.and_then(|p| {
                    let v = p.verifier.as_ref()?;
                    Some((v, jwks_origin(&p.config) == origin))
                });
                match old {
                    Some((v, true)) if same_verification(v.config(), jwt) => Some(Arc::clone(v)),
                    _ => {
                        let v = Verifier::new(jwt, jwks_pool(&config, &pools))?;
                        if let Some((old, true)) = old {
                            v.inherit_keys(old);
                        }
                        Some(Arc::new(v))
                    }
                }
            }
        };
        let verification_limiter = config
            .jwt
            .as_ref()
            .and_then(|j| j.verification_limit.as_ref())
            .map(|spec| {
                let old = previous.and_then(|p| p.verification_limiter.as_ref());
                keep_or_build(old, spec, || {
                    Limiter::new(spec, &config.rate_limiting, None, "jwt:verifications")
                })
            });
        let mut owned_headers = vec![http::HeaderName::from_static(ALWAYS_OWNED)];
        for (_, header) in config.jwt.iter().flat_map(|j| &j.forward_claims) {
            if !owned_headers.contains(header) {
                owned_headers.push(header.clone());
            }
        }
        for secret in config
            .pools
            .iter()
            .filter_map(|p| p.forward_secret.as_ref())
        {
            if !owned_headers.contains(&secret.header) {
                owned_headers.push(secret.header.clone());
            }
        }
        let same_store = previous.is_some_and(|p| p.config.rate_limiting == config.rate_limiting);
        let redis = match previous {
            Some(p) if same_store => p.redis.clone(),
            _ => RedisStore::new(&config.rate_limiting),
        };
        let limiters = config
            .routes
            .iter()
            .map(|route| {
                let old = previous.filter(|_| same_store).and_then(|p| {
                    let index = p.config.routes.iter().position(|r| r.name == route.name)?;
                    Some(&p.limiters[index])
                });
                route
                    .rate_limits
                    .iter()
                    .enumerate()
                    .map(|(j, spec)| {
                        keep_or_build(old.and_then(|o| o.get(j)), spec, || {
                            Limiter::new(
                                spec,
                                &config.rate_limiting,
                                redis.clone(),
                                // Route names are unique; no position in the file, which
                                // a reload may shift differently on each gateway.
                                &format!("{}:{j}", route.name),
                            )
                        })
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            router: Router::new(&config.routes),
            config,
            pools,
            verifier,
            verification_limiter,
            owned_headers,
            limiters,
            redis,
        })
    }

    /// Make the pools this runtime does not share with `previous` ready to take traffic
    /// (members discovered, first checks run), all at once and within `WARM_DEADLINE`.
    pub(crate) async fn warm(&self, previous: &Runtime) {
        let fresh = self
            .pools
            .iter()
            .filter(|p| !previous.pools.iter().any(|old| Arc::ptr_eq(old, p)));
        futures::future::join_all(fresh.map(|p| p.warm(WARM_DEADLINE))).await;
    }

    /// Called once this runtime serves: a kept verifier now fetches from this runtime's pool.
    pub(crate) fn activate(&self) {
        if let Some(v) = &self.verifier {
            v.set_jwks_pool(jwks_pool(&self.config, &self.pools));
        }
    }
}

/// Whether two `jwt:` sections verify tokens the same way: all but `verification_limit`,
/// which the runtime applies, not the verifier (changing it keeps keys and cached tokens).
fn same_verification(a: &crate::config::JwtConfig, b: &crate::config::JwtConfig) -> bool {
    let strip = |j: &crate::config::JwtConfig| crate::config::JwtConfig {
        verification_limit: None,
        ..j.clone()
    };
    strip(a) == strip(b)
}

/// `old` when it enforces `spec` already (it keeps its counters), else a new limiter.
fn keep_or_build(
    old: Option<&Arc<Limiter>>,
    spec: &crate::config::RateLimit,
    build: impl FnOnce() -> Limiter,
) -> Arc<Limiter> {
    match old {
        Some(limiter) if limiter.spec == *spec => Arc::clone(limiter),
        _ => Arc::new(build()),
    }
}

/// The pool `config`'s JWKS is fetched from, if it names one.
fn jwks_pool(config: &Config, pools: &[Arc<Pool>]) -> Option<Arc<Pool>> {
    match &config.jwt.as_ref()?.jwks.as_ref()?.source {
        crate::config::JwksSource::Pool { pool, .. } => pools.get(*pool).cloned(),
        crate::config::JwksSource::Url(_) => None,
    }
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Invalid,
}

impl Ctx {
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
        request_filters::route(session, ctx)?;
        request_filters::authenticate(session, ctx).await?;
        request_filters::check_content_length(session, ctx)?;
        request_filters::rate_limit(session, ctx).await?;
        request_filters::respond_fixed(session, ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        request_filters::count_body(body.as_ref(), ctx)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let pool = ctx
            .pool()
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "route has no pool"))?;
        let key = request_filters::hash_key(session, ctx, &pool.config.balance);
        let Some(addr) = pool.select(&key, &ctx.tried) else {
            return Error::e_explain(
                errors::NO_HEALTHY_ENDPOINT,
                format!("pool {} has no healthy endpoint", pool.name()),
            );
        };
        if !ctx.tried.is_empty() {
            metrics::RETRIES.with_label_values(&[pool.name()]).inc();
        }
        ctx.tried.push(addr);
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(pool.peer(addr)))
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
        request_filters::rewrite_upstream_request(session, upstream_request, ctx)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(pool), Some(addr)) = (ctx.pool(), ctx.tried.last()) {
            metrics::CONNECT_FAILURES
                .with_label_values(&[pool.name()])
                .inc();
            if e.etype() == &ErrorType::ConnectRefused {
                pool.report_refused(*addr);
            } else {
                pool.report_failure(*addr);
            }
            // Nothing was sent, so any method may go to another endpoint.
            e.set_retry(ctx.tried.len() <= pool.config.retries.attempts);
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
        let mut e = e.more_context(format!("Peer: {peer}"));
        let Some(pool) = ctx.pool() else { return e };
        if e.esource() == &pingora::ErrorSource::Upstream {
            if let Some(addr) = ctx.tried.last() {
                pool.report_failure(*addr);
            }
        }
        let method = &session.req_header().method;
        let idempotent = *method == http::Method::GET || *method == http::Method::HEAD;
        let retry = pool.config.retries.idempotent_on_reset
            && idempotent
            && !ctx.response_started
            && !session.as_ref().retry_buffer_truncated()
            && ctx.tried.len() <= pool.config.retries.attempts;
        e.set_retry(retry);
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response_filters::from_upstream(upstream_response, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response_filters::to_client(upstream_response, ctx)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        response_filters::fail_to_proxy(session, e, ctx).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        response_filters::log_request(session, e, ctx);
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // Every request, failed or not, gets exactly one access-log line from `logging`.
        true
    }
}
