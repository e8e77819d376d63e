//! End-to-end tests: real gateway process, real upstreams, real sockets.

mod balancing;
mod discovery;
mod failures;
mod health;
mod lifecycle;
mod observability;
mod requests;
mod routing;

use crate::upstream::Upstream;

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
