//! The gateway's own failures and the one table ([`fate`]) that decides how any error is
//! answered: status, detail, the policy to count, keep-alive, and extra headers.
//!
//! Every response the gateway produces itself is `application/problem+json` (RFC 9457) and
//! carries the request id, so a client can quote it and an operator can find the log line.

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// No route matches the request.
pub(crate) const ROUTE_NOT_FOUND: ErrorType = ErrorType::new("RouteNotFound");
/// The route's pool has no endpoint that may take traffic.
pub(crate) const NO_HEALTHY_ENDPOINT: ErrorType = ErrorType::new("NoHealthyEndpoint");
/// The request target is longer than `limits.max_uri_bytes`.
pub(crate) const URI_TOO_LONG: ErrorType = ErrorType::new("UriTooLong");
/// The request headers are larger than `limits.max_header_bytes`.
pub(crate) const HEADERS_TOO_LARGE: ErrorType = ErrorType::new("HeadersTooLarge");
/// The request body is larger than the route's `body_limit`.
pub(crate) const BODY_TOO_LARGE: ErrorType = ErrorType::new("BodyTooLarge");
/// A route with `auth` got no valid bearer token.
pub(crate) const UNAUTHORIZED: ErrorType = ErrorType::new("Unauthorized");
/// A rate limit of the route refused the request.
pub(crate) const RATE_LIMITED: ErrorType = ErrorType::new("RateLimited");
/// A cluster rate limit with `fail_open: false` could not reach Redis.
pub(crate) const RATE_LIMIT_UNAVAILABLE: ErrorType = ErrorType::new("RateLimitUnavailable");
/// The request is well-formed HTTP but not acceptable (e.g. a `..` path segment).
pub(crate) const BAD_REQUEST: ErrorType = ErrorType::new("BadRequest");
/// The route's `ip_allow` / `ip_deny` refuses the client's address.
pub(crate) const FORBIDDEN: ErrorType = ErrorType::new("Forbidden");
/// A route with `basic_auth` got no valid user and password.
pub(crate) const BASIC_UNAUTHORIZED: ErrorType = ErrorType::new("BasicUnauthorized");
/// A route with `api_keys` got no known key.
pub(crate) const API_KEY_UNAUTHORIZED: ErrorType = ErrorType::new("ApiKeyUnauthorized");
/// A route's `forward_auth` service could not decide (timeout, error, breaker open).
pub(crate) const FORWARD_AUTH_UNAVAILABLE: ErrorType = ErrorType::new("ForwardAuthUnavailable");
/// The pool's `max_in_flight` is reached and its queue is full or timed out.
pub(crate) const OVERLOADED: ErrorType = ErrorType::new("Overloaded");
/// The upstream answered with a status `retries.on_status` retries; never answered, since
/// it is raised only when another attempt follows.
pub(crate) const RETRY_ON_STATUS: ErrorType = ErrorType::new("RetryOnStatus");
/// The route's `timeouts.request` passed before an attempt could start.
pub(crate) const DEADLINE_EXCEEDED: ErrorType = ErrorType::new("DeadlineExceeded");
/// A token names a key the gateway cannot know yet: no JWKS has loaded since it started.
pub(crate) const KEYS_UNAVAILABLE: ErrorType = ErrorType::new("KeysUnavailable");
/// Every permit for password hashing is taken.
pub(crate) const HASHING_BUSY: ErrorType = ErrorType::new("HashingBusy");

/// Extra headers a rejection carries, chosen with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advice {
    None,
    /// `WWW-Authenticate` (RFC 6750), bare or with `error="invalid_token"` as the request
    /// phase found.
    Challenge,
    /// `WWW-Authenticate: Basic` (RFC 7617) with the route's realm.
    BasicChallenge,
    /// `WWW-Authenticate: ApiKey` naming the header the key goes in.
    ApiKeyChallenge,
    /// `Retry-After` and `RateLimit-*` from the refusing limit's decision.
    RateLimit,
    /// `Retry-After: 1`: try again shortly.
    RetryShortly,
}

/// Everything about how a failed request is answered, decided in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fate {
    /// The status; 0 when nobody is left to answer (the client went away).
    pub(crate) status: u16,
    /// A detail that is safe to show the client.
    pub(crate) detail: &'static str,
    /// The policy that refused, for `gateway_policy_rejections_total`.
    pub(crate) policy: Option<&'static str>,
    /// Whether the refusal came before any upstream work or body read: the connection is
    /// then in a known state and may stay open when the request had no body. Malformed or
    /// oversized requests (400, 413, 414, 431) close it.
    pub(crate) keep_alive: bool,
    pub(crate) advice: Advice,
}

impl Fate {
    const fn new(status: u16, detail: &'static str) -> Self {
        Self {
            status,
            detail,
            policy: None,
            keep_alive: false,
            advice: Advice::None,
        }
    }

    const fn refused_by(mut self, policy: &'static str) -> Self {
        self.policy = Some(policy);
        self
    }

    const fn before_upstream(mut self) -> Self {
        self.keep_alive = true;
        self
    }

    const fn advising(mut self, advice: Advice) -> Self {
        self.advice = advice;
        self
    }
}

/// The one table: what answer any error gets.
pub(crate) fn fate(e: &Error) -> Fate {
    match e.etype() {
        ErrorType::HTTPStatus(code) => Fate::new(*code, "The request was rejected."),
        t if *t == ROUTE_NOT_FOUND => {
            Fate::new(404, "No route matches this request.").before_upstream()
        }
        t if *t == NO_HEALTHY_ENDPOINT => {
            Fate::new(502, "No healthy upstream endpoint is available.").before_upstream()
        }
        t if *t == URI_TOO_LONG => Fate::new(414, "The request target is too long."),
        t if *t == HEADERS_TOO_LARGE => Fate::new(431, "The request header fields are too large."),
        t if *t == BAD_REQUEST => Fate::new(400, "The request is malformed."),
        t if *t == UNAUTHORIZED => Fate::new(401, "A valid bearer token is required.")
            .refused_by("auth")
            .before_upstream()
            .advising(Advice::Challenge),
        t if *t == FORBIDDEN => Fate::new(403, "This route does not serve your address.")
            .refused_by("ip_access")
            .before_upstream(),
        t if *t == BASIC_UNAUTHORIZED => Fate::new(401, "A valid user and password are required.")
            .refused_by("basic_auth")
            .before_upstream()
            .advising(Advice::BasicChallenge),
        t if *t == API_KEY_UNAUTHORIZED => Fate::new(401, "A valid API key is required.")
            .refused_by("api_key")
            .before_upstream()
            .advising(Advice::ApiKeyChallenge),
        t if *t == FORWARD_AUTH_UNAVAILABLE => Fate::new(
            503,
            "The authentication service is unavailable; retry shortly.",
        )
        .refused_by("forward_auth")
        .before_upstream()
        .advising(Advice::RetryShortly),
        t if *t == KEYS_UNAVAILABLE => Fate::new(
            503,
            "The token's signing keys are not loaded yet; retry shortly.",
        )
        .refused_by("auth")
        .before_upstream()
        .advising(Advice::RetryShortly),
        t if *t == HASHING_BUSY => {
            Fate::new(503, "Too many password checks are running; retry shortly.")
                .refused_by("basic_auth")
                .before_upstream()
                .advising(Advice::RetryShortly)
        }
        t if *t == RATE_LIMITED => Fate::new(
            429,
            "Too many requests; retry after the time in Retry-After.",
        )
        .refused_by("rate_limit")
        .before_upstream()
        .advising(Advice::RateLimit),
        t if *t == RATE_LIMIT_UNAVAILABLE => {
            Fate::new(503, "The rate limiter is unavailable; retry shortly.")
                .refused_by("rate_limit")
                .before_upstream()
                .advising(Advice::RetryShortly)
        }
        t if *t == OVERLOADED => Fate::new(
            503,
            "The upstream is at its capacity; retry after the time in Retry-After.",
        )
        .refused_by("overload")
        .before_upstream()
        .advising(Advice::RetryShortly),
        t if *t == RETRY_ON_STATUS => {
            Fate::new(502, "The upstream could not be reached or failed.")
        }
        t if *t == DEADLINE_EXCEEDED => {
            Fate::new(504, "The request did not complete within its deadline.")
        }
        t if *t == BODY_TOO_LARGE => {
            Fate::new(413, "The request body is larger than this route accepts.")
                .refused_by("body_limit")
        }
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            Fate::new(504, "The upstream did not answer in time.")
        }
        _ => match e.esource() {
            ErrorSource::Upstream => Fate::new(502, "The upstream could not be reached or failed."),
            ErrorSource::Downstream => match e.etype() {
                // The client is gone; there is nobody to answer.
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                    Fate::new(0, "")
                }
                _ => Fate::new(400, "The request is malformed."),
            },
            ErrorSource::Internal | ErrorSource::Unset => {
                Fate::new(500, "The gateway failed to handle the request.")
            }
        },
    }
}

/// The RFC 9457 body.
pub(crate) fn problem_body(status: u16, detail: &str, request_id: &str) -> Bytes {
    let title = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    });
    Bytes::from(body.to_string())
}

/// Write a complete problem+json response to the client; `decorate` adds the headers its
/// cause and route call for.
pub(crate) async fn respond_problem(
    session: &mut Session,
    status: u16,
    detail: &str,
    request_id: &str,
    hsts: Option<http::HeaderValue>,
    decorate: impl FnOnce(&mut pingora::http::ResponseHeader) -> pingora::Result<()>,
) -> pingora::Result<()> {
    let body = problem_body(status, detail, request_id);
    let mut header = super::headers::own_response(status, request_id, hsts)?;
    decorate(&mut header)?;
    header.insert_header(http::header::CONTENT_TYPE, "application/problem+json")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_map_to_their_statuses() {
        let cases = [
            (ROUTE_NOT_FOUND, 404),
            (NO_HEALTHY_ENDPOINT, 502),
            (URI_TOO_LONG, 414),
            (HEADERS_TOO_LARGE, 431),
            (BAD_REQUEST, 400),
            (BODY_TOO_LARGE, 413),
            (UNAUTHORIZED, 401),
            (RATE_LIMITED, 429),
            (RATE_LIMIT_UNAVAILABLE, 503),
            (FORBIDDEN, 403),
            (BASIC_UNAUTHORIZED, 401),
            (HASHING_BUSY, 503),
            (API_KEY_UNAUTHORIZED, 401),
            (FORWARD_AUTH_UNAVAILABLE, 503),
        ];
        for (etype, status) in cases {
            let e = Error::explain(etype.clone(), "test");
            assert_eq!(fate(&e).status, status, "{etype:?}");
        }
    }

    #[test]
    fn upstream_timeouts_are_504_and_refusals_502() {
        let mut timeout = Error::new(ErrorType::ReadTimedout);
        timeout.as_up();
        let mut refused = Error::new(ErrorType::ConnectRefused);
        refused.as_up();

        assert_eq!(fate(&timeout).status, 504);
        assert_eq!(fate(&refused).status, 502);
    }

    #[test]
    fn each_refusal_carries_its_policy_connection_and_headers() {
        let rate = fate(&Error::explain(RATE_LIMITED, "t"));
        let auth = fate(&Error::explain(UNAUTHORIZED, "t"));
        let body = fate(&Error::explain(BODY_TOO_LARGE, "t"));
        let bad = fate(&Error::explain(BAD_REQUEST, "t"));

        assert_eq!(
            (rate.policy, rate.keep_alive, rate.advice),
            (Some("rate_limit"), true, Advice::RateLimit)
        );
        assert_eq!(
            (auth.policy, auth.keep_alive, auth.advice),
            (Some("auth"), true, Advice::Challenge)
        );
        assert_eq!((body.policy, body.keep_alive), (Some("body_limit"), false));
        assert_eq!(
            (bad.policy, bad.keep_alive),
            (None, false),
            "malformed: close"
        );
    }

    #[test]
    fn problem_body_names_status_and_request_id() {
        let body = problem_body(404, "No route matches this request.", "abc");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();

        assert_eq!(json["status"], 404);
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["request_id"], "abc");
    }
}
