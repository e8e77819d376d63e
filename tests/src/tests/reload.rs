use std::time::Duration;

use super::{endpoints, get};
use crate::assert_eventually;
use crate::gateway::{self, TestGateway};
use crate::load::Load;
use crate::upstream::Upstream;

fn body(a: &Upstream, extra_pools: &str, extra_routes: &str) -> String {
    format!(
        "pools:\n  p:\n    endpoints: {}\n    health_check: {{ kind: http, path: /healthz, interval: 5s }}\n{extra_pools}\
         routes:\n- {{ name: a, match: {{ path_prefix: /a }}, pool: p, rate_limits: [{{ key: route, rate: 1, per: 1m, burst: 3 }}] }}\n\
         - {{ name: steady, match: {{ path_prefix: /steady }}, pool: p }}\n{extra_routes}",
        endpoints(&[a])
    )
}

async fn metric(gw: &TestGateway, line: &str) -> bool {
    gw.metrics().await.lines().any(|l| l == line)
}

#[tokio::test]
async fn an_edited_config_applies_under_load_without_failed_requests_and_keeps_state() {
    // Arrange: a pool with a slow active check (a rebuilt pool would wait for it) and a
    // rate limit whose counter must survive.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = gateway::start(&body(&a, "", "")).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(get(&client, &gw.url("/a")).await.0, 200);
    }
    assert_eq!(get(&client, &gw.url("/a")).await.0, 429);
    let load = Load::start(&gw.url("/steady"), 4, 1_000_000);

    // Act: add a pool and a route.
    gw.rewrite_config(&body(
        &a,
        &format!("  q: {{ endpoints: {} }}\n", endpoints(&[&b])),
        "- { name: b, match: { path_prefix: /b }, pool: q }\n",
    ));
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
    let gw = gateway::start(&body(&a, "", "")).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    gw.rewrite_config(&body(
        &a,
        "",
        "- { match: { path_prefix: /x }, pool: nowhere }\n",
    ));
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
    let log = gw.log();
    assert!(
        log.contains("gateway.yaml:14:33: routes[2].pool: unknown pool \\\"nowhere\\\" (known: p)"),
        "{log}"
    );
    assert!(metric(&gw, "gateway_config_reloads_total{result=\"error\"} 1").await);

    // Act 2: fixing the file applies it.
    gw.rewrite_config(&body(&a, "", "- { match: { path_prefix: /x }, pool: p }\n"));
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
    let gw = gateway::start(&body(&a, "", "")).await;
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
        &format!("127.0.0.1:{}", gateway::free_port()),
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
