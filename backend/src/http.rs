//! The HTTP layer: request reading, identity, routing table and JSON replies.
//!
//! Handlers take a [`Request`] (already read, body size-limited) and return
//! `Result<Reply, ApiError>`; [`serve`] turns errors into problem+json, sets `X-Instance`
//! and `X-Request-Id`, and records metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::{auth, jobs, todos};

pub type Reply = http::Response<Full<Bytes>>;

/// A request with its body read.
pub struct Request<'a> {
    pub state: &'a AppState,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub request_id: String,
}

impl Request<'_> {
    /// The JSON body as `T`: 415 without a JSON content type, 400 for malformed JSON, unknown
    /// or missing fields.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let is_json = self
            .parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::MalformedBody(format!("invalid JSON body: {e}")))
    }

    /// The authenticated user: from the gateway's `X-User-Id` when identity from the gateway
    /// is trusted and the request proves it came from the gateway (the shared secret), else
    /// from the bearer token verified here.
    pub fn user(&self) -> Result<Uuid, ApiError> {
        let header = |name| {
            self.parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        if let Some(secret) = &self.state.gateway_secret {
            let from_gateway = self
                .parts
                .headers
                .get(self.state.settings.gateway_identity_secret_header.as_str())
                .is_some_and(|v| constant_time_eq(v.as_bytes(), secret));
            if from_gateway {
                return header("x-user-id")
                    .and_then(|v| Uuid::parse_str(v).ok())
                    .ok_or(ApiError::Unauthorized);
            }
        }
        let token = header(header::AUTHORIZATION.as_str())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(ApiError::Unauthorized)?;
        self.state
            .tokens
            .verify(token)
            .ok_or(ApiError::Unauthorized)
    }

    pub fn query(&self, key: &str) -> Option<String> {
        self.parts.uri.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| v.to_owned())
        })
    }
}

/// Compare secrets without an early exit that would tell, by timing, how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut resp = http::Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn empty(status: StatusCode) -> Reply {
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut resp = http::Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The segments of `path` when it is in canonical form, else `None`.
///
/// Canonical: starts with `/`, no empty segment (no `//`, no trailing slash), no `.` or `..`
/// segment, no percent-encoding (nothing this API serves needs one). The gateway normalizes
/// paths before routing; answering only the canonical spelling here means a path that
/// slipped past it in another spelling (and so past the limits of its exact route) finds
/// nothing rather than the same handler.
pub fn canonical_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    segments
        .iter()
        .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.contains('%'))
        .then_some(segments)
}

/// Route template (for metrics) and handler outcome.
async fn dispatch(req: Request<'_>) -> (&'static str, Result<Reply, ApiError>) {
    let path = req.parts.uri.path().to_owned();
    let Some(segments) = canonical_segments(&path) else {
        return ("other", Err(ApiError::NotFound));
    };
    let method = req.parts.method.clone();
    match (method, segments.as_slice()) {
        (Method::GET, ["healthz"]) => ("/healthz", Ok(text(StatusCode::OK, "text/plain", "ok\n"))),
        (Method::GET, ["readyz"]) => ("/readyz", Ok(req.state.readiness().await)),
        (Method::GET, ["metrics"]) => ("/metrics", Ok(req.state.render_metrics().await)),
        (Method::GET, [".well-known", "jwks.json"]) => {
            ("/.well-known/jwks.json", Ok(auth::routes::jwks(&req)))
        }
        (Method::POST, ["auth", "register"]) => {
            ("/auth/register", auth::routes::register(req).await)
        }
        (Method::POST, ["auth", "login"]) => ("/auth/login", auth::routes::login(req).await),
        (Method::GET, ["todos"]) => ("/todos", todos::routes::list(req).await),
        (Method::POST, ["todos"]) => ("/todos", jobs::routes::create_todo(req).await),
        (Method::GET, ["todos", id]) => ("/todos/{id}", todos::routes::get(&req, id).await),
        (Method::PATCH, ["todos", id]) => ("/todos/{id}", todos::routes::update(&req, id).await),
        (Method::DELETE, ["todos", id]) => ("/todos/{id}", todos::routes::delete(&req, id).await),
        (Method::GET, ["jobs", id]) => ("/jobs/{id}", jobs::routes::get(&req, id).await),
        (
            _,
            ["healthz" | "readyz" | "metrics" | "todos" | "jobs"]
            | ["auth", _]
            | ["todos" | "jobs", _],
        ) => ("other", Err(ApiError::MethodNotAllowed)),
        _ => ("other", Err(ApiError::NotFound)),
    }
}

/// Entry point for every request on a connection.
pub async fn serve(
    state: Arc<AppState>,
    req: http::Request<Incoming>,
) -> Result<Reply, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
    let method = parts.method.clone();
    let limit = state.settings.max_body_bytes;
    let (route, outcome) = match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            let req = Request {
                state: &state,
                parts,
                body: collected.to_bytes(),
                request_id: request_id.clone(),
            };
            dispatch(req).await
        }
        Err(_) => ("other", Err(ApiError::PayloadTooLarge(limit))),
    };
    let mut reply = outcome.unwrap_or_else(|e| e.into_response(&request_id));
    let headers = reply.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&state.instance) {
        headers.insert("x-instance", v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    let status = reply.status().as_u16();
    state.metrics.observe_request(
        route,
        crate::metrics::method_label(&method),
        status,
        started.elapsed(),
    );
    tracing::info!(
        target: "access", request_id, method = %method, route, status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0, "request"
    );
    Ok(reply)
}
