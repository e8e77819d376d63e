//! The admin listener: `/metrics`, `/healthz` and `/readyz`, kept off the public port.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics;
use crate::runtime::Runtime;

pub(crate) struct AdminApp {
    /// Shared with the proxy so readiness reflects the pools actually serving.
    pub(crate) runtime: Arc<ArcSwap<Runtime>>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

impl AdminApp {
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
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
