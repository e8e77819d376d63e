//! The admin listener, kept off the public port: the status page (`/`, rendered here from
//! the data `/status.json` serves), `/status.json`, `/metrics`, `/healthz` and `/readyz`.

mod page;
mod status;

pub(crate) use status::{Sampler, Traffic};

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics;
use crate::reload::ReloadHistory;
use crate::runtime::Runtime;

pub(crate) struct AdminApp {
    /// Shared with the proxy so readiness reflects the pools actually serving.
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
    /// The reloader's record of the start and the last reloads.
    pub(crate) history: Arc<ReloadHistory>,
    /// Samples of the request counters, for each route's last minute.
    pub(crate) traffic: Arc<Traffic>,
    /// When the process started (wall clock, and monotonic for the uptime).
    pub(crate) started: (SystemTime, Instant),
}

/// The page's static parts: no build step, no third-party code.
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// The page may load its own script, style and JSON and nothing else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                           connect-src 'self'; img-src 'self'; base-uri 'none'; \
                           form-action 'none'; frame-ancestors 'none'";

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

/// A part of the status page, with headers that keep it to itself.
fn asset(content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = reply(StatusCode::OK, content_type, body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The JSON Schema of `/status.json`: `config/status.schema.json`, kept current by a test.
pub fn status_schema() -> String {
    crate::config::render_schema::<status::Status>()
}

impl AdminApp {
    /// The status, read now.
    fn read_status(&self) -> status::Status {
        self.traffic.sample();
        let runtime = self.runtime.load();
        status::status(&runtime, &self.history, &self.traffic, self.started)
    }

    /// `/status.json`: the status page's data.
    fn status(&self) -> Response<Vec<u8>> {
        let body = serde_json::to_vec(&self.read_status()).unwrap_or_default();
        let mut response = reply(StatusCode::OK, "application/json", body);
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }

    /// Ready when every pool has at least one endpoint passing its checks and a configured
    /// JWKS has been fetched (before that every token would be refused).
    fn readiness(&self) -> Response<Vec<u8>> {
        let rt = self.runtime.load();
        let mut ready = true;
        let pools: serde_json::Map<String, serde_json::Value> = rt
            .pools
            .iter()
            .map(|pool| {
                let healthy = pool.has_healthy_endpoint();
                ready &= healthy;
                let endpoints: Vec<serde_json::Value> = pool
                    .endpoint_health()
                    .into_iter()
                    .map(|s| {
                        serde_json::json!({
                            "endpoint": s.addr.to_string(),
                            "healthy": s.routable,
                            "breaker": s.breaker,
                        })
                    })
                    .collect();
                let mut status = serde_json::json!({"ready": healthy, "endpoints": endpoints});
                if let Some(admission) = &pool.admission {
                    status["in_flight"] = admission.in_flight().into();
                    status["queued"] = admission.queued().into();
                    status["max_in_flight"] = admission.settings.max_in_flight.into();
                }
                (pool.name().to_owned(), status)
            })
            .collect();
        let jwks = rt.verifier.as_ref().is_none_or(|v| v.has_jwks_keys());
        ready &= jwks;
        let body =
            serde_json::json!({"ready": ready, "pools": pools, "jwks_loaded": jwks}).to_string();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        reply(status, "application/json", body.into_bytes())
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics::render(),
            ),
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => self.readiness(),
            "/" => asset(
                "text/html; charset=utf-8",
                page::render(&self.read_status()).into_bytes(),
            ),
            "/status.js" => asset("text/javascript; charset=utf-8", PAGE_JS.into()),
            "/status.css" => asset("text/css; charset=utf-8", PAGE_CSS.into()),
            "/status.json" => self.status(),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
