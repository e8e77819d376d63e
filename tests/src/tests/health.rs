use super::{get, metric_value, proxy_all};
use crate::assert_eventually;
use crate::config::{CircuitBreaker, HealthCheck, Pool};
use crate::upstream::Upstream;

#[tokio::test]
async fn failing_active_check_ejects_an_endpoint_and_passing_restores_it() {
    // Arrange
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = proxy_all(
        Pool::upstreams(&[&a, &b]).health_check(
            HealthCheck::http("/healthz")
                .interval("100ms")
                .unhealthy_threshold(2),
        ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act 1: b fails its check.
    b.set_healthy(false);
    let readyz = gw.admin_url("/readyz");
    assert_eventually!(
        client
            .get(&readyz)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("\"healthy\":false"),
        "b was never marked unhealthy"
    );
    let before = b.requests();
    for _ in 0..20 {
        assert_eq!(get(&client, &gw.url("/h")).await.1.as_deref(), Some("a"));
    }
    assert_eq!(b.requests(), before);

    // Act 2: b recovers.
    b.set_healthy(true);
    assert_eventually!(
        get(&client, &gw.url("/h")).await.1.as_deref() == Some("b"),
        "b never received traffic again"
    );
}

#[tokio::test]
async fn consecutive_5xx_eject_an_endpoint_passively() {
    // Arrange
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    b.set_failing(true);
    let gw = proxy_all(
        Pool::upstreams(&[&a, &b]).circuit_breaker(
            CircuitBreaker::new()
                .consecutive_failures(2)
                .open_for("60s"),
        ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&client, &gw.url("/p")).await.0);
    }

    // Assert: b answered twice (two 500s, passed through), then was ejected.
    assert_eq!(b.requests(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 2);
    assert!(statuses[statuses.len() - 10..].iter().all(|s| *s == 200));
    assert!(gw
        .metrics()
        .await
        .contains("gateway_upstream_ejections_total{pool=\"p\"} 1"));
}

#[tokio::test]
async fn failures_never_eject_more_than_the_pools_max_ejected_percent() {
    // Arrange: two failing endpoints, each opened by one failure; at most half may be out.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    a.set_failing(true);
    b.set_failing(true);
    let gw = proxy_all(
        Pool::upstreams(&[&a, &b]).circuit_breaker(
            CircuitBreaker::new()
                .consecutive_failures(1)
                .open_for("60s")
                .max_ejected_percent(50),
        ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(get(&client, &gw.url("/e")).await);
    }

    // Assert: one breaker opened, the other endpoint kept taking every request (a pool is
    // never ejected whole), and each answer came from an upstream, not a gateway 502.
    let ejections = metric_value(&gw, "gateway_upstream_ejections_total{pool=\"p\"}").await;
    assert_eq!(ejections, Some(1.0));
    for (status, upstream, body) in &answers {
        assert!(upstream.is_some(), "not sent upstream: {status} {body}");
    }
    assert_eq!(a.requests() + b.requests(), 6);
    assert!(
        gw.log()
            .contains("max_ejected_percent of the pool is out already"),
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn an_ejected_endpoint_returns_after_its_cooldown() {
    // Arrange
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    b.set_failing(true);
    let gw = proxy_all(
        Pool::upstreams(&[&a, &b])
            .resolve_interval("100ms")
            .circuit_breaker(CircuitBreaker::new().consecutive_failures(1).open_for("1s")),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let gauge = format!(
        "gateway_upstream_endpoint_healthy{{endpoint=\"{}\",pool=\"p\"}}",
        b.addr
    );

    // Act: one 500 ejects b.
    for _ in 0..2 {
        get(&client, &gw.url("/c")).await;
    }
    assert!(gw.metrics().await.contains(&format!("{gauge} 0")));
    b.set_failing(false);

    // Assert: after the cooldown b is back, in traffic and in the gauge.
    assert_eventually!(
        get(&client, &gw.url("/c")).await.1.as_deref() == Some("b"),
        "b never came back"
    );
    assert_eventually!(
        gw.metrics().await.contains(&format!("{gauge} 1")),
        "gauge stayed 0"
    );
}

#[tokio::test]
async fn an_upstream_shedding_load_with_503_and_retry_after_is_not_ejected() {
    // Arrange: ejection after 2 failures in a row; both endpoints shed load on /shed.
    let (up, other) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = proxy_all(
        Pool::upstreams(&[&up, &other])
            .circuit_breaker(CircuitBreaker::new().consecutive_failures(2)),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act: five load-shedding answers, then five real failures.
    let mut shed = Vec::new();
    for _ in 0..5 {
        shed.push(
            client
                .get(gw.url("/shed"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    let ejections_after_shedding =
        metric_value(&gw, "gateway_upstream_ejections_total{pool=\"p\"}").await;
    up.set_failing(true);
    for _ in 0..6 {
        client.get(gw.url("/x")).send().await.unwrap();
    }

    // Assert: the 503s reached the client untouched, and only real failures eject.
    assert_eq!(shed, vec![503; 5]);
    assert_eq!(ejections_after_shedding.unwrap_or(0.0), 0.0);
    let ejections = metric_value(&gw, "gateway_upstream_ejections_total{pool=\"p\"}").await;
    assert!(ejections >= Some(1.0), "{ejections:?}");
}
