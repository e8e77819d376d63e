use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::proxy_all;
use crate::config::{GatewayConfig, Limits, Pool, Route};
use crate::gateway::{self, TestGateway};
use crate::upstream::Upstream;

async fn limited_gateway(up: &Upstream) -> TestGateway {
    let gw = gateway::start(
        &GatewayConfig::new()
            .limits(Limits::new().max_body_bytes("1MiB"))
            .pool("p", Pool::upstreams(&[up]))
            .route(Route::prefix("/small").pool("p").body_limit(4096_u64))
            .route(Route::prefix("/").pool("p")),
    )
    .await;
    gw.wait_ready().await;
    gw
}

/// Send a chunked POST of `total` bytes in 1000-byte chunks; return the response head.
async fn post_chunked(gw: &TestGateway, path: &str, total: usize) -> String {
    let mut stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("3e8\r\n{}\r\n", "z".repeat(1000));
    for _ in 0..total / 1000 {
        // The gateway may answer and close before the body ends; later writes then fail.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut out))
        .await
        .expect("gateway answered")
        .unwrap_or(0);
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_without_touching_the_upstream() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = limited_gateway(&up).await;
    let connections_before = up.connections();

    // Act
    let resp = reqwest::Client::new()
        .post(gw.url("/small/upload"))
        .body(vec![b'x'; 5000])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(up.requests(), 0);
    assert_eq!(
        up.connections(),
        connections_before,
        "no upstream connection was opened"
    );
}

#[tokio::test]
async fn a_chunked_body_crossing_the_limit_gets_413_and_never_arrives_complete() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = limited_gateway(&up).await;

    // Act
    let answer = post_chunked(&gw, "/small/stream", 20_000).await;

    // Assert
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The gateway streams the body upstream until the limit, then cuts it off: the upstream
    // sees its read break, never a complete body.
    crate::assert_eventually!(
        up.state.broken_bodies.load(SeqCst) == 1,
        "the upstream never saw the body break off"
    );
    let largest = up.state.largest_body.load(SeqCst);
    assert!(
        largest <= 4096,
        "upstream received a complete {largest}-byte body"
    );
}

#[tokio::test]
async fn bodies_within_the_limit_pass_whole() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = limited_gateway(&up).await;

    // Act
    let chunked = post_chunked(&gw, "/small/ok", 3000).await;
    let big_default = reqwest::Client::new()
        .post(gw.url("/big"))
        .body(vec![b'y'; 500_000])
        .send()
        .await
        .unwrap();

    // Assert
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(chunked.contains("\"body_len\":3000"), "{chunked}");
    assert_eq!(big_default.status(), 200);
    assert_eq!(up.state.largest_body.load(SeqCst), 500_000);
}

#[tokio::test]
async fn the_default_limit_applies_to_routes_without_their_own() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = proxy_all(Pool::upstreams(&[&up])).await;
    gw.wait_ready().await;

    // Act: 10 MiB is the default; one byte more is refused on the declared length alone.
    let mut stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let head = format!(
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        10 * 1024 * 1024 + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut out))
        .await
        .unwrap()
        .unwrap();

    // Assert
    assert!(String::from_utf8_lossy(&out[..n]).starts_with("HTTP/1.1 413"));
    assert_eq!(up.requests(), 0);
}
