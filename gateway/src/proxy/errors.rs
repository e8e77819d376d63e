//! The gateway's own failures and the one table that turns any error into a status code.
//!
//! Every response the gateway produces itself is `application/problem+json` (RFC 9457) and
//! carries the request id, so a client can quote it and an operator can find the log line.

use bytes::Bytes;
use pingora::http::ResponseHeader;
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

/// Refusals of well-formed requests before any upstream work or body read: after them the
/// client connection is in a known state and may be kept alive when the request had no
/// body. Malformed or oversized requests (400, 413, 414, 431) still close the connection.
pub(crate) fn before_upstream(e: &Error) -> bool {
    [
        ROUTE_NOT_FOUND,
        NO_HEALTHY_ENDPOINT,
        UNAUTHORIZED,
        RATE_LIMITED,
        RATE_LIMIT_UNAVAILABLE,
    ]
    .contains(e.etype())
}

/// The policy that refused a request, for `gateway_policy_rejections_total`.
pub(crate) fn rejection_reason(e: &Error) -> Option<&'static str> {
    match e.etype() {
        t if *t == UNAUTHORIZED => Some("auth"),
        t if *t == BODY_TOO_LARGE => Some("body_limit"),
        t if *t == RATE_LIMITED || *t == RATE_LIMIT_UNAVAILABLE => Some("rate_limit"),
        _ => None,
    }
}

/// The status for an error, and a detail that is safe to show a client.
pub(crate) fn classify(e: &Error) -> (u16, &'static str) {
    match e.etype() {
        ErrorType::HTTPStatus(code) => (*code, "The request was rejected."),
        t if *t == ROUTE_NOT_FOUND => (404, "No route matches this request."),
        t if *t == NO_HEALTHY_ENDPOINT => (502, "No healthy upstream endpoint is available."),
        t if *t == URI_TOO_LONG => (414, "The request target is too long."),
        t if *t == HEADERS_TOO_LARGE => (431, "The request header fields are too large."),
        t if *t == BAD_REQUEST => (400, "The request is malformed."),
        t if *t == UNAUTHORIZED => (401, "A valid bearer token is required."),
        t if *t == RATE_LIMITED => (
            429,
            "Too many requests; retry after the time in Retry-After.",
        ),
        t if *t == RATE_LIMIT_UNAVAILABLE => {
            (503, "The rate limiter is unavailable; retry shortly.")
        }
        t if *t == BODY_TOO_LARGE => (413, "The request body is larger than this route accepts."),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            (504, "The upstream did not answer in time.")
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "The upstream could not be reached or failed."),
            ErrorSource::Downstream => match e.etype() {
                // The client is gone; there is nobody to answer.
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                    (0, "")
                }
                _ => (400, "The request is malformed."),
            },
            ErrorSource::Internal | ErrorSource::Unset => {
                (500, "The gateway failed to handle the request.")
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

/// Write a complete problem+json response to the client.
pub(crate) async fn respond_problem(
    session: &mut Session,
    status: u16,
    detail: &str,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> pingora::Result<()> {
    let body = problem_body(status, detail, request_id);
    let mut header = ResponseHeader::build(status, Some(4 + extra.len()))?;
    for (name, value) in extra {
        header.insert_header(*name, value.as_str())?;
    }
    header.insert_header(http::header::CONTENT_TYPE, "application/problem+json")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    header.insert_header("x-request-id", request_id)?;
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
        ];
        for (etype, status) in cases {
            let e = Error::explain(etype.clone(), "test");
            assert_eq!(classify(&e).0, status, "{etype:?}");
        }
    }

    #[test]
    fn upstream_timeouts_are_504_and_refusals_502() {
        let mut timeout = Error::new(ErrorType::ReadTimedout);
        timeout.as_up();
        let mut refused = Error::new(ErrorType::ConnectRefused);
        refused.as_up();

        assert_eq!(classify(&timeout).0, 504);
        assert_eq!(classify(&refused).0, 502);
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
