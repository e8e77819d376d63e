use std::process::{Command, Stdio};

use tokio::io::AsyncWriteExt as _;

use crate::assert_eventually;
use crate::config::{GatewayConfig, Pool, Route};
use crate::gateway::{self, TestGateway};
use crate::upstream::Upstream;

/// A gateway with one route `api` for `/api` to `up`.
async fn api_gateway(up: &Upstream) -> TestGateway {
    gateway::start(
        &GatewayConfig::new()
            .pool("p", Pool::upstreams(&[up]))
            .route(Route::prefix("/api").name("api").pool("p")),
    )
    .await
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_requests_by_route_and_source() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = api_gateway(&up).await;
    gw.wait_ready().await;
    for _ in 0..3 {
        reqwest::get(gw.url("/api/x")).await.unwrap();
    }
    reqwest::get(gw.url("/missing")).await.unwrap();

    // Act: counters move in the logging phase, just after each response is sent.
    let expected = [
        "gateway_requests_total{code=\"200\",method=\"GET\",route=\"api\",source=\"upstream\"} 3"
            .to_owned(),
        "gateway_requests_total{code=\"404\",method=\"GET\",route=\"none\",source=\"gateway\"} 1"
            .to_owned(),
        "gateway_request_duration_seconds_count{route=\"api\"} 3".to_owned(),
        format!(
            "gateway_upstream_endpoint_healthy{{endpoint=\"{}\",pool=\"p\"}} 1",
            up.addr
        ),
        "gateway_requests_in_flight 0".to_owned(),
        "gateway_upstream_connections_total{pool=\"p\",reused=\"false\"} 1".to_owned(),
    ];
    assert_eventually!(
        {
            let text = gw.metrics().await;
            expected.iter().all(|e| text.contains(e.as_str()))
        },
        "missing some of {expected:?} in:\n{}",
        gw.metrics().await
    );
    let text = gw.metrics().await;

    // Assert
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_request_gets_one_json_access_log_line() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = api_gateway(&up).await;
    gw.wait_ready().await;

    // Act
    reqwest::Client::new()
        .get(gw.url("/api/logged"))
        .header("x-request-id", "log-me")
        .send()
        .await
        .unwrap();

    // Assert: the line is written in the logging phase, just after the response is sent.
    let access_lines = || -> Vec<serde_json::Value> {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["fields"]["request_id"] == "log-me")
            .collect()
    };
    assert_eventually!(!access_lines().is_empty(), "no access line:\n{}", gw.log());
    let lines = access_lines();
    assert_eq!(lines.len(), 1, "{}", gw.log());
    let f = &lines[0]["fields"];
    assert_eq!(f["route"], "api");
    assert_eq!(f["pool"], "p");
    assert_eq!(f["status"], 200);
    assert_eq!(f["path"], "/api/logged");
    assert_eq!(f["endpoint"], up.addr.to_string());
    assert_eq!(f["client_ip"], "127.0.0.1");
    assert!(f["total_ms"].as_f64().is_some() && f["upstream_ms"].as_f64().is_some());
}

#[test]
fn promtool_is_available_for_the_metrics_check() {
    // The metrics test depends on promtool; fail loudly here if the install step is missing.
    let status = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "install the Debian package `prometheus`"
    );
}
