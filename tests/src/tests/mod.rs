//! End-to-end tests: real gateway process, real upstreams, real sockets.

mod auth;
mod balancing;
mod connections;
mod discovery;
mod failures;
mod hardening;
mod health;
mod lifecycle;
mod limits;
mod observability;
mod rate_limits;
mod reload;
mod requests;
mod routing;
mod stack;

use crate::gateway::{self, TestGateway};
use crate::upstream::Upstream;

/// Start a gateway with one pool `p` of `upstreams` and a catch-all route `all` to it.
/// `pool_extra` holds more keys of the pool, one per line (e.g. `retries: { attempts: 0 }`).
async fn proxy_all(upstreams: &[&Upstream], pool_extra: &str) -> TestGateway {
    let extra: String = pool_extra
        .lines()
        .map(|line| format!("    {}\n", line.trim()))
        .collect();
    gateway::start(&format!(
        "pools:\n  p:\n    endpoints: {}\n{extra}\
         routes:\n- {{ name: all, match: {{ path_prefix: / }}, pool: p }}\n",
        endpoints(upstreams)
    ))
    .await
}

/// A YAML list of the upstreams' addresses, for `endpoints:`.
fn endpoints(upstreams: &[&Upstream]) -> String {
    let list: Vec<String> = upstreams
        .iter()
        .map(|u| format!("\"{}\"", u.addr))
        .collect();
    format!("[{}]", list.join(", "))
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
