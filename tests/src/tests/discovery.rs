use std::net::Ipv4Addr;

use crate::assert_eventually;
use crate::config::{Dns, GatewayConfig, HealthCheck, Pool, Route};
use crate::dns::DnsServer;
use crate::gateway::{self, TestGateway};
use crate::load::Load;
use crate::upstream::Upstream;

const NAME: &str = "svc.test";

/// Three upstreams on 127.0.0.2-4 sharing one port, so one DNS name can list any of them.
async fn upstreams() -> (Vec<Upstream>, u16) {
    let a = Upstream::spawn_on("a", "127.0.0.2:0".parse().unwrap()).await;
    let port = a.addr.port();
    let b = Upstream::spawn_on("b", format!("127.0.0.3:{port}").parse().unwrap()).await;
    let c = Upstream::spawn_on("c", format!("127.0.0.4:{port}").parse().unwrap()).await;
    (vec![a, b, c], port)
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

async fn gateway_for(dns: &DnsServer, port: u16, grace: &str) -> TestGateway {
    gateway::start(
        &GatewayConfig::new()
            .dns(Dns::nameservers([dns.addr]))
            .pool(
                "p",
                Pool::endpoints([format!("{NAME}:{port}")])
                    .resolve_interval("100ms")
                    .dns_grace(grace)
                    .health_check(HealthCheck::http("/healthz").interval("200ms")),
            )
            .route(Route::prefix("/").pool("p")),
    )
    .await
}

#[tokio::test]
async fn endpoints_added_and_removed_in_dns_follow_while_traffic_flows() {
    // Arrange
    let dns = DnsServer::spawn().await;
    let (ups, port) = upstreams().await;
    dns.set(NAME, &[ip(2)]);
    let gw = gateway_for(&dns, port, "30s").await;
    gw.wait_ready().await;
    let load = Load::start(&gw.url("/d"), 4, 200_000);

    // Act 1: scale up to three.
    dns.set(NAME, &[ip(2), ip(3), ip(4)]);
    assert_eventually!(
        ups[1].requests() > 10 && ups[2].requests() > 10,
        "new endpoints got no traffic: {:?}",
        load.snapshot().by_upstream
    );

    // Act 2: scale down to one.
    dns.set(NAME, &[ip(4)]);
    assert_eventually!(
        {
            let before = (ups[0].requests(), ups[1].requests());
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            before == (ups[0].requests(), ups[1].requests())
        },
        "removed endpoints still get traffic"
    );
    let report = load.stop().await;

    // Assert
    assert!(
        report.failures.is_empty(),
        "{:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(report.ok > 100);
}

#[tokio::test]
async fn a_name_that_stops_resolving_keeps_its_endpoints_for_the_grace_period_only() {
    // Arrange
    let dns = DnsServer::spawn().await;
    let (_ups, port) = upstreams().await;
    dns.set(NAME, &[ip(2)]);
    let gw = gateway_for(&dns, port, "2s").await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act: NXDOMAIN from now on.
    dns.remove(NAME);
    assert_eventually!(
        gw.log().contains("name stopped resolving"),
        "the failed resolution was never noticed"
    );
    let during_grace = client.get(gw.url("/g")).send().await.unwrap().status();

    // Assert: still served inside the grace period, 502 after it, and the drop is logged.
    assert_eq!(during_grace, 200);
    assert_eventually!(
        client
            .get(gw.url("/g"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 502),
        "pool was not emptied after the grace period"
    );
    assert!(gw.log().contains("grace period"), "{}", gw.log());
}

#[tokio::test]
async fn a_new_endpoint_gets_no_traffic_before_its_first_passing_check() {
    // Arrange
    let dns = DnsServer::spawn().await;
    let (ups, port) = upstreams().await;
    ups[1].set_healthy(false);
    dns.set(NAME, &[ip(2)]);
    let gw = gateway_for(&dns, port, "30s").await;
    gw.wait_ready().await;
    let load = Load::start(&gw.url("/n"), 2, 100_000);

    // Act: b appears in DNS but fails its check for a while, then recovers.
    dns.set(NAME, &[ip(2), ip(3)]);
    // b is discovered and has failed a check: the window the assertion is about.
    let b = format!("{}:{port}", ip(3));
    assert_eventually!(
        gw.log()
            .lines()
            .any(|l| l.contains("endpoint fails its health check") && l.contains(&b)),
        "b was never discovered and checked:\n{}",
        gw.log()
    );
    assert!(
        gw.metrics()
            .await
            .lines()
            .any(|l| l.contains(&b) && l.ends_with(" 0")),
        "b is listed as not routable"
    );
    let before_healthy = ups[1].requests();
    ups[1].set_healthy(true);
    assert_eventually!(ups[1].requests() > 0, "b never got traffic after passing");
    let report = load.stop().await;

    // Assert
    assert_eq!(before_healthy, 0, "b got traffic before any passing check");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}
