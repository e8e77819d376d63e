//! Client connections the gateway must not let exhaust it: trickled headers, idle keep-alive
//! connections, more connections than the cap, and one client taking every slot.

use std::time::Duration;

use super::metric_value;
use crate::assert_eventually;
use crate::config::{GatewayConfig, Limits, Pool, Route};
use crate::gateway::{self, TestGateway};
use crate::upstream::Upstream;

/// A gateway in front of `up` with the given `limits:`.
async fn with_limits(up: &Upstream, limits: Limits) -> TestGateway {
    let gw = gateway::start(
        &GatewayConfig::new()
            .limits(limits)
            .pool("p", Pool::upstreams(&[up]))
            .route(Route::prefix("/").name("all").pool("p")),
    )
    .await;
    gw.wait_ready().await;
    gw
}

/// Whether the server closed `conn` (EOF or reset) within the harness' patience.
async fn closed_by_server(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(crate::patience(), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn three_hundred_slow_header_clients_are_cut_off_and_do_not_delay_others() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, Limits::new().header_timeout("2s")).await;
    let addr = gw.http;

    // Act: 300 clients start a request header and then send one byte every half second.
    let slow: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .unwrap();
                let started = std::time::Instant::now();
                // Trickle until the gateway gives up on us (writes then fail) or 20 s pass.
                while started.elapsed() < Duration::from_secs(20) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if conn.write_all(b"X").await.is_err() {
                        break;
                    }
                }
                closed_by_server(&mut conn).await
            })
        })
        .collect();
    // Meanwhile, ordinary clients.
    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let started = std::time::Instant::now();
        let resp = client.get(gw.url("/fast")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut cut_off = 0;
    for task in slow {
        if task.await.unwrap() {
            cut_off += 1;
        }
    }

    // Assert
    assert_eq!(cut_off, 300, "every trickling client was disconnected");
    assert!(
        slowest < Duration::from_secs(1),
        "an ordinary request took {slowest:?} beside the slow clients"
    );
    let timeouts = metric_value(&gw, "gateway_downstream_timeouts_total{phase=\"header\"}").await;
    assert!(timeouts >= Some(300.0), "{timeouts:?}");
    assert_eq!(up.requests(), 50, "no slow request reached the upstream");
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, Limits::new().idle_timeout("1s")).await;

    // Act: one connection says nothing; another makes a request and then idles.
    let mut silent = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut kept = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    kept.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    // Assert
    assert!(
        closed_by_server(&mut silent).await,
        "a silent client is closed"
    );
    assert!(
        closed_by_server(&mut kept).await,
        "an idle keep-alive client is closed"
    );
    let idle = metric_value(&gw, "gateway_downstream_timeouts_total{phase=\"idle\"}").await;
    assert!(idle >= Some(2.0), "{idle:?}");
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_at_once() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange: room for 5 connections, all taken by idle clients.
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, Limits::new().max_connections(5)).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(gw.http).await.unwrap());
    }
    assert_eventually!(
        metric_value(&gw, "gateway_downstream_connections").await == Some(5.0),
        "the five connections were never counted"
    );

    // Act
    let mut sixth = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let _ = sixth.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let refused = closed_by_server(&mut sixth).await;
    held.pop();
    let client = reqwest::Client::new();
    assert_eventually!(
        client
            .get(gw.url("/x"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200),
        "a freed slot was never usable"
    );

    // Assert
    assert!(refused, "the sixth connection was closed");
    let rejected = metric_value(&gw, "gateway_downstream_connections_rejected_total").await;
    assert!(rejected >= Some(1.0), "{rejected:?}");
}

#[tokio::test]
async fn one_client_cannot_take_every_connection_when_capped_per_client() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange: 3 connections per client address, 100 in all.
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, Limits::new().max_connections_per_client(3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(gw.http).await.unwrap());
    }
    assert_eventually!(
        metric_value(&gw, "gateway_downstream_connections").await == Some(3.0),
        "the three connections were never counted"
    );

    // Act: a fourth from the same address (127.0.0.1), and one from another (127.0.0.2).
    let mut fourth = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let _ = fourth
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let refused = closed_by_server(&mut fourth).await;
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(gw.http).await.unwrap();
    other
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut other, &mut answer)
        .await
        .unwrap();

    // Assert
    assert!(refused, "the fourth connection of one client was closed");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "another client still gets in"
    );
}
