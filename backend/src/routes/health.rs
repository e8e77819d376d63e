//! `GET /healthz`, `/readyz` and `/metrics`.

use std::time::Duration;

use crate::http::{text, Reply};
use crate::state::AppState;

/// Alive: the process answers.
pub(crate) fn healthz() -> Reply {
    text(http::StatusCode::OK, "text/plain", "ok\n")
}

/// 200 when PostgreSQL and Redis answer within a second, else 503.
pub(crate) async fn readyz(state: &AppState) -> Reply {
    let db = tokio::time::timeout(Duration::from_secs(1), crate::db::ping(&state.db))
        .await
        .is_ok_and(|r| r.is_ok());
    let redis = state
        .redis
        .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
        .await
        .is_ok();
    let status = if db && redis {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        postgres: db,
        redis,
    };
    text(
        status,
        "application/json",
        serde_json::to_string(&body).unwrap_or_default(),
    )
}

/// Whether each dependency answered within a second.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Readiness {
    pub(crate) postgres: bool,
    pub(crate) redis: bool,
}

/// The Prometheus text, with the pool and stream gauges read now.
pub(crate) async fn metrics(state: &AppState) -> Reply {
    let size = i64::from(state.db.size());
    let idle = i64::try_from(state.db.num_idle()).unwrap_or(0);
    state
        .metrics
        .db_pool
        .with_label_values(&["in_use"])
        .set(size - idle);
    state.metrics.db_pool.with_label_values(&["idle"]).set(idle);
    if let Ok((pending, lag)) = state.queue.backlog().await {
        state
            .metrics
            .stream
            .with_label_values(&["pending"])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        state
            .metrics
            .stream
            .with_label_values(&["lag"])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
    text(
        http::StatusCode::OK,
        "text/plain; version=0.0.4",
        state.metrics.render(),
    )
}
