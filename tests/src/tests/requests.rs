use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::proxy_all;
use crate::config::Pool;
use crate::gateway::TestGateway;
use crate::upstream::Upstream;

async fn echo_gateway(up: &Upstream) -> TestGateway {
    let gw = proxy_all(Pool::upstreams(&[up])).await;
    gw.wait_ready().await;
    gw
}

/// Send raw bytes and read the whole answer (the gateway closes after an error).
async fn raw(gw: &TestGateway, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "gateway hung on {:?}",
        String::from_utf8_lossy(&request[..request.len().min(60)])
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn forwarding_headers_are_set_and_client_spoofs_replaced() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = echo_gateway(&up).await;

    // Act
    let resp = reqwest::Client::new()
        .get(gw.url("/f"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.test")
        .header("host", "shop.test")
        .send()
        .await
        .unwrap();
    let response_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let echo: serde_json::Value = resp.json().await.unwrap();
    let h = &echo["headers"];

    // Assert
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.test");
    assert_eq!(h["x-request-id"], response_id.as_str());
    let id = uuid_version(&response_id);
    assert_eq!(id, Some(7), "generated ids are UUIDv7: {response_id}");
}

fn uuid_version(id: &str) -> Option<u32> {
    // xxxxxxxx-xxxx-Vxxx-...: the version is the first hex digit of the third group.
    let group = id.split('-').nth(2)?;
    group.chars().next()?.to_digit(16)
}

#[tokio::test]
async fn incoming_request_id_is_kept_and_hop_by_hop_headers_are_stripped() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = echo_gateway(&up).await;

    // Act
    let resp = reqwest::Client::new()
        .get(gw.url("/h"))
        .header("x-request-id", "client-id-1")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-id-1");
    let echo: serde_json::Value = resp.json().await.unwrap();
    let h = echo["headers"].as_object().unwrap();

    // Assert
    assert_eq!(h["x-request-id"], "client-id-1");
    for dropped in ["x-drop-me", "proxy-authorization", "te", "keep-alive"] {
        assert!(
            !h.contains_key(dropped),
            "{dropped} reached the upstream: {h:?}"
        );
    }
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_4xx_and_never_reach_the_upstream() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = echo_gateway(&up).await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"HELLO THERE\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (
            "bad header line",
            b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "bad content-length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        ("uri too long", long_uri.into_bytes(), "HTTP/1.1 414"),
        ("headers too large", big_header.into_bytes(), "HTTP/1.1 431"),
        (
            "dot segments",
            b"GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
    ];

    for (name, request, expected) in cases {
        // Act
        let answer = raw(&gw, &request).await;

        // Assert
        assert!(
            answer.starts_with(expected),
            "{name}: got {:?}",
            &answer[..answer.len().min(200)]
        );
    }
    assert_eq!(up.requests(), 0);
    let ok = reqwest::get(gw.url("/still-alive")).await.unwrap();
    assert_eq!(ok.status(), 200, "gateway survived the bad requests");
}

#[tokio::test]
async fn gateway_made_errors_are_problem_json() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = echo_gateway(&up).await;

    // Act
    let answer = raw(
        &gw,
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000)).as_bytes(),
    )
    .await;

    // Assert
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"status\":414"), "{answer}");
}
