//! The routing table and the per-request entry point: a request is read (body size-limited),
//! routed on its canonical path to a handler, and its outcome answered and counted.
//!
//! # Layout
//! - `auth`: `POST /auth/register`, `POST /auth/login`, `GET /.well-known/jwks.json`.
//! - `todos`: `GET /todos`, `GET|PATCH|DELETE /todos/{id}`.
//! - `jobs`: `POST /todos` (accepts a job) and `GET /jobs/{id}`.
//! - `health`: `/healthz`, `/readyz`, `/metrics`.
//! - `openapi`: `GET /openapi.json`, the OpenAPI document built from [`Operation`] and the
//!   handlers' request and response types.

pub(crate) mod auth;
pub(crate) mod health;
pub(crate) mod jobs;
pub mod openapi;
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

/// Every operation of the API: the routing table and the OpenAPI document
/// (`openapi::document`) are both built from it, so neither can name an operation the
/// other lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Jwks,
    Register,
    Login,
    ListTodos,
    CreateTodo,
    GetTodo,
    UpdateTodo,
    DeleteTodo,
    GetJob,
}

impl Operation {
    pub(crate) const ALL: [Self; 13] = [
        Self::Healthz,
        Self::Readyz,
        Self::Metrics,
        Self::OpenApi,
        Self::Jwks,
        Self::Register,
        Self::Login,
        Self::ListTodos,
        Self::CreateTodo,
        Self::GetTodo,
        Self::UpdateTodo,
        Self::DeleteTodo,
        Self::GetJob,
    ];

    /// The method and the path template (`{id}` is one segment), which is also the route's
    /// metrics label.
    pub(crate) fn route(self) -> (Method, &'static str) {
        match self {
            Self::Healthz => (Method::GET, "/healthz"),
            Self::Readyz => (Method::GET, "/readyz"),
            Self::Metrics => (Method::GET, "/metrics"),
            Self::OpenApi => (Method::GET, "/openapi.json"),
            Self::Jwks => (Method::GET, "/.well-known/jwks.json"),
            Self::Register => (Method::POST, "/auth/register"),
            Self::Login => (Method::POST, "/auth/login"),
            Self::ListTodos => (Method::GET, "/todos"),
            Self::CreateTodo => (Method::POST, "/todos"),
            Self::GetTodo => (Method::GET, "/todos/{id}"),
            Self::UpdateTodo => (Method::PATCH, "/todos/{id}"),
            Self::DeleteTodo => (Method::DELETE, "/todos/{id}"),
            Self::GetJob => (Method::GET, "/jobs/{id}"),
        }
    }
}

/// The operation `method` and `segments` (canonical) name, with the `{id}` segment when its
/// template has one; a path some operation serves with another method is 405.
pub(crate) fn resolve<'p>(
    method: &Method,
    segments: &[&'p str],
) -> Result<(Operation, Option<&'p str>), ApiError> {
    let mut path_served = false;
    for op in Operation::ALL {
        let (op_method, template) = op.route();
        let Some(id) = template_match(template, segments) else {
            continue;
        };
        if op_method == method {
            return Ok((op, id));
        }
        path_served = true;
    }
    Err(if path_served {
        ApiError::MethodNotAllowed
    } else {
        ApiError::NotFound
    })
}

/// `Some(id)` when `segments` fit `template` (`Some(None)` without an `{id}`).
fn template_match<'p>(template: &str, segments: &[&'p str]) -> Option<Option<&'p str>> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut id = None;
    for (part, segment) in parts.iter().zip(segments) {
        match *part {
            "{id}" => id = Some(*segment),
            literal if literal == *segment => {}
            _ => return None,
        }
    }
    Some(id)
}

/// Route template (for metrics) and handler outcome.
async fn dispatch(req: Request<'_>) -> (&'static str, Result<Reply, ApiError>) {
    let path = req.parts.uri.path().to_owned();
    let Some(segments) = canonical_segments(&path) else {
        return ("other", Err(ApiError::NotFound));
    };
    let (op, id) = match resolve(&req.parts.method, &segments) {
        Ok(found) => found,
        Err(e) => return ("other", Err(e)),
    };
    let id = id.unwrap_or_default();
    let outcome = match op {
        Operation::Healthz => Ok(health::healthz()),
        Operation::Readyz => Ok(health::readyz(req.state).await),
        Operation::Metrics => Ok(health::metrics(req.state).await),
        Operation::OpenApi => Ok(openapi::serve()),
        Operation::Jwks => auth::jwks(&req),
        Operation::Register => auth::register(req).await,
        Operation::Login => auth::login(req).await,
        Operation::ListTodos => todos::list(req).await,
        Operation::CreateTodo => jobs::create_todo(req).await,
        Operation::GetTodo => todos::get(&req, id).await,
        Operation::UpdateTodo => todos::update(&req, id).await,
        Operation::DeleteTodo => todos::delete(&req, id).await,
        Operation::GetJob => jobs::get(&req, id).await,
    };
    (op.route().1, outcome)
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
