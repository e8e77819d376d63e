use std::time::Duration;

use super::get;
use crate::assert_eventually;
use crate::config::{GatewayConfig, HealthCheck, Pool, RateLimit, Route};
use crate::gateway::{self, TestGateway};
use crate::load::Load;
use crate::upstream::Upstream;

/// Pool `p` of `a`, and routes `a` (rate limited) and `steady` to it.
fn config(a: &Upstream) -> GatewayConfig {
    GatewayConfig::new()
        .pool(
            "p",
            Pool::upstreams(&[a]).health_check(HealthCheck::http("/healthz").interval("5s")),
        )
        .route(
            Route::prefix("/a")
                .name("a")
                .pool("p")
                .rate_limit(RateLimit::route(1, "1m").burst(3)),
        )
        .route(Route::prefix("/steady").name("steady").pool("p"))
}

/// `line:column` (1-based) where `needle` starts in `text`, which holds it exactly once.
fn position_of(text: &str, needle: &str) -> String {
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} in:\n{text}");
    text.lines()
        .enumerate()
        .find_map(|(i, line)| Some(format!("{}:{}", i + 1, line.find(needle)? + 1)))
        .expect("found above")
}

async fn metric(gw: &TestGateway, line: &str) -> bool {
    gw.metrics().await.lines().any(|l| l == line)
}

#[tokio::test]
async fn an_edited_config_applies_under_load_without_failed_requests_and_keeps_state() {
    // Arrange: a pool with a slow active check (a rebuilt pool would wait for it) and a
    // rate limit whose counter must survive.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = gateway::start(&config(&a)).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(get(&client, &gw.url("/a")).await.0, 200);
    }
    assert_eq!(get(&client, &gw.url("/a")).await.0, 429);
    let load = Load::start(&gw.url("/steady"), 4, 1_000_000);

    // Act: add a pool and a route.
    gw.rewrite_config(
        &config(&a)
            .pool("q", Pool::upstreams(&[&b]))
            .route(Route::prefix("/b").name("b").pool("q")),
    );
    assert_eventually!(
        get(&client, &gw.url("/b")).await.1.as_deref() == Some("b"),
        "new route never served"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;

    // Assert
    assert!(
        report.failures.is_empty(),
        "{:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(report.ok > 50);
    assert_eq!(
        get(&client, &gw.url("/a")).await.0,
        429,
        "the unchanged limit kept its counter"
    );
    assert!(metric(&gw, "gateway_config_last_reload_success 1").await);
    assert!(metric(&gw, "gateway_config_reloads_total{result=\"ok\"} 1").await);
    assert!(gw.log().contains("\"pools_kept\":1"), "{}", gw.log());
}

#[tokio::test]
async fn an_invalid_edit_is_rejected_with_its_line_and_the_old_config_keeps_serving() {
    // Arrange
    let a = Upstream::spawn("a").await;
    let gw = gateway::start(&config(&a)).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    gw.rewrite_config(&config(&a).route(Route::prefix("/x").pool("nowhere")));
    assert_eventually!(
        metric(&gw, "gateway_config_last_reload_success 0").await,
        "the bad config was not noticed"
    );

    // Assert
    assert_eq!(get(&client, &gw.url("/steady")).await.0, 200);
    assert_eq!(
        get(&client, &gw.url("/x")).await.0,
        404,
        "nothing of the bad config applied"
    );
    // The error points at the offending key, wherever the generated file put it.
    let at = position_of(
        &std::fs::read_to_string(&gw.config_path).unwrap(),
        "pool: nowhere",
    );
    let log = gw.log();
    assert!(
        log.contains(&format!(
            "gateway.yaml:{at}: routes[2].pool: unknown pool \\\"nowhere\\\" (known: p)"
        )),
        "{log}"
    );
    assert!(metric(&gw, "gateway_config_reloads_total{result=\"error\"} 1").await);

    // Act 2: fixing the file applies it.
    gw.rewrite_config(&config(&a).route(Route::prefix("/x").pool("p")));
    assert_eventually!(
        get(&client, &gw.url("/x")).await.0 == 200,
        "the fixed config never applied"
    );
    assert!(metric(&gw, "gateway_config_last_reload_success 1").await);
}

#[tokio::test]
async fn sighup_reloads_and_listener_changes_are_reported_as_needing_a_restart() {
    // Arrange
    let a = Upstream::spawn("a").await;
    let gw = gateway::start(&config(&a)).await;
    gw.wait_ready().await;

    // Act 1: SIGHUP with an unchanged file still reloads.
    gw.hangup();
    assert_eventually!(
        metric(&gw, "gateway_config_reloads_total{result=\"ok\"} 1").await,
        "SIGHUP did not reload"
    );

    // Act 2: move the admin listener.
    let moved = std::fs::read_to_string(&gw.config_path).unwrap().replace(
        &gw.admin.to_string(),
        &format!("127.0.0.1:{}", crate::free_port()),
    );
    gw.rewrite_raw(&moved);

    // Assert
    assert_eventually!(
        gw.log().contains("need a restart"),
        "listener change not reported"
    );
    let log = gw.log();
    let warning = log.lines().find(|l| l.contains("need a restart")).unwrap();
    assert!(warning.contains("listeners"), "{warning}");
    assert!(
        tokio::net::TcpStream::connect(gw.admin).await.is_ok(),
        "the old listener keeps serving"
    );
}
