use super::proxy_all;
use crate::config::{Balance, Pool};
use crate::load::Load;
use crate::upstream::Upstream;

#[tokio::test]
async fn round_robin_spreads_requests_evenly_over_three_upstreams() {
    // Arrange
    let ups = [
        Upstream::spawn("a").await,
        Upstream::spawn("b").await,
        Upstream::spawn("c").await,
    ];
    let gw = proxy_all(Pool::upstreams(&[&ups[0], &ups[1], &ups[2]])).await;
    gw.wait_ready().await;

    // Act
    let report = Load::start(&gw.url("/rr"), 3, 300).stop_when_done().await;

    // Assert
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    for u in &ups {
        assert_eq!(
            report.by_upstream.get(&u.name),
            Some(&100),
            "{:?}",
            report.by_upstream
        );
    }
}

#[tokio::test]
async fn upstream_connections_are_reused_under_steady_load() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = proxy_all(Pool::upstreams(&[&up])).await;
    gw.wait_ready().await;

    // Act
    let report = Load::start(&gw.url("/reuse"), 8, 4000)
        .stop_when_done()
        .await;

    // Assert: 8 concurrent clients need about 8 upstream connections, not one per request.
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.ok, 4000);
    let opened = up.connections();
    assert!(
        opened <= 16,
        "opened {opened} upstream connections for 4000 requests"
    );
}

#[tokio::test]
async fn consistent_hash_on_a_header_keeps_a_key_on_one_upstream() {
    // Arrange
    let ups = [
        Upstream::spawn("a").await,
        Upstream::spawn("b").await,
        Upstream::spawn("c").await,
    ];
    let gw = proxy_all(
        Pool::upstreams(&[&ups[0], &ups[1], &ups[2]])
            .balance(Balance::ConsistentHash)
            .hash_key("header:x-user"),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let mut seen = std::collections::HashMap::<String, std::collections::HashSet<String>>::new();
    for user in 0..20 {
        for _ in 0..5 {
            let resp = client
                .get(gw.url("/h"))
                .header("x-user", format!("u{user}"))
                .send()
                .await
                .unwrap();
            let up = resp.headers()["x-upstream"].to_str().unwrap().to_owned();
            seen.entry(format!("u{user}")).or_default().insert(up);
        }
    }

    // Assert
    assert!(seen.values().all(|s| s.len() == 1), "{seen:?}");
    let used: std::collections::HashSet<_> = seen.values().flatten().collect();
    assert!(
        used.len() >= 2,
        "20 keys should spread over more than one upstream: {used:?}"
    );
}
