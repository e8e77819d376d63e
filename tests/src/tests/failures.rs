use super::{get, proxy_all};
use crate::assert_eventually;
use crate::config::{CircuitBreaker, GatewayConfig, HealthCheck, Pool, Retries, Route, Timeouts};
use crate::gateway;
use crate::load::Load;
use crate::upstream::Upstream;

#[tokio::test]
async fn killing_an_upstream_under_get_load_causes_no_client_errors() {
    // Arrange
    let mut ups = [
        Upstream::spawn("a").await,
        Upstream::spawn("b").await,
        Upstream::spawn("c").await,
    ];
    let gw = proxy_all(
        Pool::upstreams(&[&ups[0], &ups[1], &ups[2]])
            .health_check(HealthCheck::tcp().interval("200ms"))
            .circuit_breaker(
                CircuitBreaker::new()
                    .consecutive_failures(1)
                    .open_for("30s"),
            ),
    )
    .await;
    gw.wait_ready().await;
    let load = Load::start(&gw.url("/k"), 8, 200_000);
    assert_eventually!(ups[1].requests() > 50, "b got no traffic");

    // Act
    ups[1].kill().await;
    let killed_at = load.snapshot().ok;
    assert_eventually!(
        load.snapshot().ok > killed_at + 1000,
        "traffic stalled after the kill"
    );
    let report = load.stop().await;

    // Assert
    assert!(
        report.failures.is_empty(),
        "{} failures, first: {:?}",
        report.failures.len(),
        report.failures.first()
    );
    let retries = super::metric_value(&gw, "gateway_upstream_retries_total{pool=\"p\"}").await;
    assert!(
        retries >= Some(1.0),
        "requests that met the dead endpoint went to another one: {retries:?}"
    );
}

#[tokio::test]
async fn a_slow_upstream_gets_a_504_problem() {
    // Arrange
    let up = Upstream::spawn("slow").await;
    let gw = proxy_all(
        Pool::upstreams(&[&up])
            .timeouts(Timeouts::new().read("300ms"))
            .retries(Retries::new().attempts(0)),
    )
    .await;
    gw.wait_ready().await;

    // Act
    let resp = reqwest::get(gw.url("/slow/3000")).await.unwrap();

    // Assert
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 504);
}

#[tokio::test]
async fn an_unreachable_pool_is_a_502_after_retrying_every_endpoint() {
    // Arrange: two addresses nobody listens on (port 1 of unused loopback addresses; a
    // "free" high port could be taken by a parallel test between check and use).
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool(
                "p",
                Pool::endpoints(["127.0.0.77:1", "127.0.0.78:1"])
                    .circuit_breaker(CircuitBreaker::new().consecutive_failures(0)),
            )
            .route(Route::prefix("/").pool("p")),
    )
    .await;

    // Act
    let resp = reqwest::get(gw.url("/x")).await.unwrap();

    // Assert
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 502);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("gateway_upstream_connect_failures_total{pool=\"p\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_healthy_endpoint_is_a_502_and_not_ready() {
    // Arrange
    let up = Upstream::spawn("sick").await;
    up.set_healthy(false);
    let gw = proxy_all(
        Pool::upstreams(&[&up]).health_check(HealthCheck::http("/healthz").interval("100ms")),
    )
    .await;
    // The endpoint's first check has run (and failed) before the request.
    assert_eventually!(
        gw.log().contains("endpoint fails its health check"),
        "the first health check never ran:\n{}",
        gw.log()
    );
    let client = reqwest::Client::new();

    // Act
    let (status, _, body) = get(&client, &gw.url("/x")).await;
    let ready = client
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .status();

    // Assert
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("No healthy upstream endpoint"));
    assert_eq!(ready, 503);
    assert_eq!(up.requests(), 0);
}
