//! Traffic management on the request path: admission under a pool's `max_in_flight`, the
//! retry decision (attempts, idempotency, a replayable body, the retry budget, the route's
//! deadline), retries on an upstream status, the jittered backoff before a retry that
//! follows an answer, and the route's timeouts.

use std::sync::Arc;
use std::time::Duration;

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use tokio::sync::OwnedSemaphorePermit;

use super::{errors, Ctx};
use crate::metrics;
use crate::upstream::admission::{Admission, Refused};
use crate::upstream::mirror::Mirror;
use crate::upstream::Pool;

/// A request's place under its pool's `max_in_flight`, held to the end of the request
/// (retries included).
pub(crate) struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    admission: Arc<Admission>,
}

impl Admitted {
    /// With `adaptive_limit`: what the pool's answer to this request says of its load.
    pub(crate) fn observe(&self, latency: Duration, overloaded: bool) {
        self.admission.observe(latency, overloaded);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.admission.release(permit);
        }
    }
}

/// With `split`, choose this request's pool: the one `override_header` names, else the
/// sticky key's bucket, else a random one, in proportion to the weights.
pub(super) fn choose_pool(session: &Session, ctx: &mut Ctx) {
    let Some(split) = ctx.route().and_then(|r| r.split.clone()) else {
        return;
    };
    let rt = ctx.runtime.clone();
    let pool_name = |index: usize| {
        rt.as_ref()
            .and_then(|rt| rt.pools.get(index))
            .map(|p| p.name())
    };
    let headers = &session.req_header().headers;
    let asked = split.override_header.as_ref().and_then(|h| {
        let wanted = headers.get(h)?.to_str().ok()?.trim();
        split
            .pools
            .iter()
            .map(|(index, _)| *index)
            .find(|index| pool_name(*index) == Some(wanted))
    });
    let chosen = asked.unwrap_or_else(|| {
        let total: u64 = split.pools.iter().map(|(_, w)| u64::from(*w)).sum();
        let sticky = split
            .sticky
            .as_ref()
            .and_then(|key| sticky_value(session, ctx, key));
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let mut point = match sticky {
            Some(bytes) => fnv1a(&bytes) % total,
            None => ((unit_random() * total as f64) as u64).min(total - 1),
        };
        for (index, weight) in &split.pools {
            if point < u64::from(*weight) {
                return *index;
            }
            point -= u64::from(*weight);
        }
        split.pools[0].0
    });
    if let Some(crate::config::RouteAction::Proxy { pool, .. }) = ctx.route_action.as_mut() {
        *pool = chosen;
    }
    if let (Some(route), Some(pool)) = (ctx.route_name.as_deref(), pool_name(chosen)) {
        metrics::SPLIT_REQUESTS
            .with_label_values(&[route, pool])
            .inc();
    }
}

/// The sticky key's value for this request, if it has one.
fn sticky_value(session: &Session, ctx: &Ctx, key: &crate::config::StickyKey) -> Option<Vec<u8>> {
    use crate::config::StickyKey;
    let headers = &session.req_header().headers;
    match key {
        StickyKey::Subject => ctx.subject.as_ref().map(|s| s.as_bytes().to_vec()),
        StickyKey::ClientIp => ctx.client_ip.map(|ip| ip.to_string().into_bytes()),
        StickyKey::Header(name) => headers.get(name).map(|v| v.as_bytes().to_vec()),
        StickyKey::Cookie(name) => cookie(headers, name).map(|v| v.as_bytes().to_vec()),
    }
}

/// The value of the cookie `name` in the request's `Cookie` fields.
fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// FNV-1a: a hash that is the same in every gateway process, so a sticky client lands on
/// the same pool whichever replica it reaches.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A request a route's `mirror` sampled: the mirror, what the upstream was sent, and the
/// body so far.
pub(crate) struct MirrorCopy {
    mirror: Arc<Mirror>,
    header: Option<RequestHeader>,
    body: bytes::BytesMut,
}

/// Whether the route's `mirror` copies this request (its sampled share, with a body no
/// larger than `max_body` as announced).
pub(super) fn sample_mirror(session: &Session, ctx: &mut Ctx) {
    let Some(mirror) = ctx
        .runtime
        .as_ref()
        .and_then(|rt| rt.mirrors.get(ctx.route_index)?.clone())
    else {
        return;
    };
    if !mirror.sampled(unit_random()) {
        return;
    }
    let announced = super::request_filters::declared_length(session).unwrap_or(0);
    if announced > mirror.settings.max_body {
        mirror.skipped();
        return;
    }
    ctx.mirror = Some(MirrorCopy {
        mirror,
        header: None,
        body: bytes::BytesMut::new(),
    });
}

/// Keep what the upstream is sent, for the copy.
pub(super) fn keep_for_mirror(req: &RequestHeader, ctx: &mut Ctx) {
    if let Some(copy) = ctx.mirror.as_mut() {
        copy.header = Some(req.clone());
    }
}

/// Keep a chunk of the request body for the copy; a body larger than `max_body` is not
/// copied.
pub(super) fn mirror_body(chunk: Option<&bytes::Bytes>, ctx: &mut Ctx) {
    let (Some(copy), Some(chunk)) = (ctx.mirror.as_mut(), chunk) else {
        return;
    };
    if (copy.body.len() + chunk.len()) as u64 > copy.mirror.settings.max_body {
        copy.mirror.skipped();
        ctx.mirror = None;
        return;
    }
    copy.body.extend_from_slice(chunk);
}

/// After the client's answer: send the copy, when the request reached an upstream with its
/// whole body.
pub(super) fn send_mirror(session: &mut Session, ctx: &mut Ctx) {
    let Some(MirrorCopy {
        mirror,
        header: Some(header),
        body,
    }) = ctx.mirror.take()
    else {
        return;
    };
    if session.as_mut().is_body_done() {
        mirror.send(header, body.freeze());
    }
}

/// Wait for a place under the route's pool's `max_in_flight`, or refuse with 503.
pub(super) async fn admit(ctx: &mut Ctx) -> Result<()> {
    let Some(pool) = ctx.pool().cloned() else {
        return Ok(());
    };
    let Some(admission) = pool.admission.clone() else {
        return Ok(());
    };
    match admission.admit().await {
        Ok(permit) => {
            ctx.admitted = Some(Admitted {
                permit: Some(permit),
                admission,
            });
            Ok(())
        }
        Err(refused) => {
            let why = match refused {
                Refused::QueueFull => "queue full",
                Refused::QueueTimeout => "queue timeout",
            };
            Error::e_explain(
                errors::OVERLOADED,
                format!("pool {} is at max_in_flight: {why}", pool.name()),
            )
        }
    }
}

/// What went wrong with the attempt that might be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The connection was not made: nothing was sent.
    Connect,
    /// The connection broke or timed out before the response header.
    Reset,
    /// The upstream answered with a status of `retries.on_status`.
    Status,
}

/// RFC 9110's idempotent methods: sending one twice has the effect of sending it once.
fn idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ]
    .contains(method)
}

/// Whether the request body can be sent again: what was read of it is still in Pingora's
/// buffer, and it is no larger than `retries.replay_body` (as read, or as announced).
fn replayable(session: &Session, ctx: &Ctx, pool: &Pool) -> bool {
    let limit = pool.config.retries.replay_body;
    let announced = super::request_filters::declared_length(session).unwrap_or(0);
    !session.as_ref().retry_buffer_truncated() && ctx.body_bytes <= limit && announced <= limit
}

/// Whether the attempt that just failed gets another one. A retry after a reset or a
/// status is counted against the pool's retry budget; one after a failed connect is not
/// (nothing reached the upstream, so it adds no load there, and a replica that stops must
/// not make requests fail while its breaker is opening): `attempts` bounds those.
pub(super) fn may_retry(session: &Session, ctx: &mut Ctx, pool: &Pool, failure: Failure) -> bool {
    let retries = &pool.config.retries;
    if ctx.tried.len() > retries.attempts || remaining(ctx) == Some(Duration::ZERO) {
        return false;
    }
    let req = session.req_header();
    let safe = idempotent(&req.method)
        || retries
            .idempotency_header
            .as_ref()
            .is_some_and(|h| req.headers.contains_key(h));
    let allowed = match failure {
        Failure::Connect => true,
        Failure::Reset => {
            retries.idempotent_on_reset
                && !ctx.response_started
                && safe
                && replayable(session, ctx, pool)
        }
        Failure::Status => safe && replayable(session, ctx, pool),
    };
    if !allowed {
        return false;
    }
    if failure != Failure::Connect && !pool.budget.try_retry() {
        metrics::RETRY_BUDGET_EXHAUSTED
            .with_label_values(&[pool.name()])
            .inc();
        return false;
    }
    if failure != Failure::Connect {
        ctx.backoffs += 1;
        ctx.backoff_due = true;
    }
    true
}

/// The upstream answered with a status `retries.on_status` lists: when another attempt
/// may follow, end this one with an error that Pingora retries (nothing has reached the
/// client yet). The breaker has judged the answer already (`response_filters::judge_answer`).
pub(super) fn retry_on_status(
    session: &Session,
    resp: &ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    let Some(pool) = ctx.pool().cloned() else {
        return Ok(());
    };
    let status = resp.status.as_u16();
    if !pool.config.retries.on_status.contains(status) {
        return Ok(());
    }
    if !may_retry(session, ctx, &pool, Failure::Status) {
        return Ok(());
    }
    let mut e = Error::explain(
        errors::RETRY_ON_STATUS,
        format!("upstream answered {status}; retrying"),
    );
    e.set_retry(true);
    Err(e)
}

/// Before a retry that follows an answer or a reset: wait a random time up to
/// `backoff * 2^(n-1)` (at most `max_backoff`), so that retries of many requests do not
/// arrive together ("full jitter").
pub(super) async fn back_off(ctx: &mut Ctx, pool: &Pool) {
    if !std::mem::take(&mut ctx.backoff_due) {
        return;
    }
    let r = &pool.config.retries;
    let ceiling = r
        .backoff
        .saturating_mul(1 << ctx.backoffs.saturating_sub(1).min(16))
        .min(r.max_backoff);
    let mut wait = ceiling.mul_f64(unit_random());
    if let Some(left) = remaining(ctx) {
        wait = wait.min(left);
    }
    if wait > Duration::ZERO {
        tokio::time::sleep(wait).await;
    }
}

/// What is left of the route's `timeouts.request`; `None` without one.
fn remaining(ctx: &Ctx) -> Option<Duration> {
    let deadline = ctx.route()?.timeouts.request?;
    Some(deadline.saturating_sub(ctx.started.elapsed()))
}

/// The route's `timeouts` on one attempt: `upstream_response` replaces the pool's read
/// timeout, and every timeout is cut to what is left of the deadline (504 once it passed).
pub(super) fn apply_route_timeouts(ctx: &Ctx, peer: &mut HttpPeer) -> Result<()> {
    let Some(timeouts) = ctx.route().map(|r| &r.timeouts) else {
        return Ok(());
    };
    let options = &mut peer.options;
    if let Some(read) = timeouts.upstream_response {
        options.read_timeout = Some(read);
    }
    let Some(left) = remaining(ctx) else {
        return Ok(());
    };
    if left.is_zero() {
        return Error::e_explain(
            errors::DEADLINE_EXCEEDED,
            "the route's timeouts.request passed",
        );
    }
    for timeout in [
        &mut options.connection_timeout,
        &mut options.read_timeout,
        &mut options.write_timeout,
    ] {
        *timeout = Some(timeout.map_or(left, |t| t.min(left)));
    }
    Ok(())
}

/// `timeouts.deadline_header`: the milliseconds left, for the upstream to give up in time.
pub(super) fn send_deadline(req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    let (Some(header), Some(left)) = (
        ctx.route().and_then(|r| r.timeouts.deadline_header.clone()),
        remaining(ctx),
    ) else {
        return Ok(());
    };
    req.insert_header(header, left.as_millis().to_string())
}

/// A number in [0, 1) that differs per call: the standard library's randomly keyed hasher
/// over a counter (jitter needs spread, not secrecy).
pub(crate) fn unit_random() -> f64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let bits = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .hash_one(COUNTER.fetch_add(1, Relaxed));
    #[allow(clippy::cast_precision_loss)]
    let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_units_spread_over_the_interval() {
        let draws: Vec<f64> = (0..1000).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let low = draws.iter().filter(|u| **u < 0.5).count();
        assert!((400..600).contains(&low), "{low} of 1000 below one half");
    }

    #[test]
    fn a_sticky_cookie_is_found_in_any_cookie_field() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "theme=dark; sid=abc".parse().unwrap());
        headers.append(http::header::COOKIE, "user=ada".parse().unwrap());

        assert_eq!(cookie(&headers, "sid"), Some("abc"));
        assert_eq!(cookie(&headers, "user"), Some("ada"));
        assert_eq!(cookie(&headers, "id"), None, "no prefix match");
    }

    #[test]
    fn the_sticky_hash_is_the_same_in_every_process() {
        // FNV-1a's published test vector: replicas agree on the bucket of a key.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn only_idempotent_methods_are_retried_after_an_answer() {
        assert!(idempotent(&http::Method::GET));
        assert!(idempotent(&http::Method::PUT));
        assert!(idempotent(&http::Method::DELETE));
        assert!(!idempotent(&http::Method::POST));
        assert!(!idempotent(&http::Method::PATCH));
    }
}
