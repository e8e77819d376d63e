//! The routing table and the per-request entry point: a request is read (body size-limited),
//! routed on its canonical path to a handler, and its outcome answered and counted.
//!
//! # Layout
//! - `auth`: `POST /auth/register`, `POST /auth/login`, `GET /.well-known/jwks.json`.
//! - `todos`: `GET /todos`, `GET|PATCH|DELETE /todos/{id}`.
//! - `jobs`: `POST /todos` (accepts a job) and `GET /jobs/{id}`.
//! - `health`: `/healthz`, `/readyz`, `/metrics`.

pub(crate) mod auth;
pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod todos;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::{Reply, Request};
use crate::state::AppState;

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
        (Method::GET, ["healthz"]) => ("/healthz", Ok(health::healthz())),
        (Method::GET, ["readyz"]) => ("/readyz", Ok(health::readyz(req.state).await)),
        (Method::GET, ["metrics"]) => ("/metrics", Ok(health::metrics(req.state).await)),
        (Method::GET, [".well-known", "jwks.json"]) => {
            ("/.well-known/jwks.json", Ok(auth::jwks(&req)))
        }
        (Method::POST, ["auth", "register"]) => ("/auth/register", auth::register(req).await),
        (Method::POST, ["auth", "login"]) => ("/auth/login", auth::login(req).await),
        (Method::GET, ["todos"]) => ("/todos", todos::list(req).await),
        (Method::POST, ["todos"]) => ("/todos", jobs::create_todo(req).await),
        (Method::GET, ["todos", id]) => ("/todos/{id}", todos::get(&req, id).await),
        (Method::PATCH, ["todos", id]) => ("/todos/{id}", todos::update(&req, id).await),
        (Method::DELETE, ["todos", id]) => ("/todos/{id}", todos::delete(&req, id).await),
        (Method::GET, ["jobs", id]) => ("/jobs/{id}", jobs::get(&req, id).await),
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
    let mut reply = outcome.unwrap_or_else(|e| {
        e.log(&request_id);
        e.into_response(&request_id)
    });
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
