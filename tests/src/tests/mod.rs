//! End-to-end tests: real gateway process, real upstreams, real sockets.

mod acme;
mod auth;
mod balancing;
mod config_schema;
mod connections;
mod cors_browser;
mod dashboards;
mod deploy;
mod discovery;
mod edge;
mod entry_points;
mod explain;
mod failures;
mod generated;
mod hardening;
mod health;
mod https;
mod https_edge;
mod lifecycle;
mod limits;
mod observability;
mod openapi;
mod rate_limits;
mod reload;
mod requests;
mod routing;
mod stack;
mod status_page;
mod traffic;

use crate::config::{GatewayConfig, Pool, Route};
use crate::gateway::{self, TestGateway};

/// Start a gateway with `pool` as `p` and a catch-all route `all` to it.
async fn proxy_all(pool: Pool) -> TestGateway {
    gateway::start(
        &GatewayConfig::new()
            .pool("p", pool)
            .route(Route::prefix("/").name("all").pool("p")),
    )
    .await
}

/// GET `url` and return (status, x-upstream, body).
async fn get(client: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    let resp = client.get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    let upstream = resp
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, upstream, resp.text().await.expect("body"))
}

/// The value of the sample `name` (with its labels, e.g. `x_total{a=\"b\"}`) on the
/// gateway's `/metrics`, if present.
async fn metric_value(gw: &TestGateway, name: &str) -> Option<f64> {
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}
