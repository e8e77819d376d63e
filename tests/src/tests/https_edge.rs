//! The HTTPS edge around the listener, with real clients: redirects from HTTP and HSTS,
//! HTTP/2 streams under auth and rate limits, HTTP/2 deadlines, and TLS to upstreams.

use super::https::curl;
use crate::certs::{self_signed, KeyKind};
use crate::config::{GatewayConfig, Hsts, Limits, Pool, PoolTls, Respond, Route, Tls};
use crate::gateway;
use crate::upstream::Upstream;

#[tokio::test]
async fn plain_http_is_redirected_to_https_but_acme_and_opted_out_routes_and_hsts_is_sent_over_tls()
{
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let named = self_signed(dir.path(), "named", &["example.test"], KeyKind::EcdsaP256);
    let gw = gateway::start(
        &GatewayConfig::new()
            .tls(
                Tls::new()
                    .certificate(named)
                    .redirect_http(true)
                    .hsts(Hsts::new().max_age("365d").include_subdomains(true)),
            )
            .pool("p", Pool::upstreams(&[&up]))
            .route(Route::prefix("/plain").pool("p").https_redirect(false))
            .route(Route::prefix("/").pool("p")),
    )
    .await;
    gw.wait_ready().await;
    let port = gw.https.unwrap().port();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |path: &str| {
        client
            .post(gw.url(path))
            .header("host", "example.test")
            .body("kept")
            .send()
    };

    // Act
    let redirected = post("/api/x?y=1").await.unwrap();
    let acme = post("/.well-known/acme-challenge/token").await.unwrap();
    let opted_out = post("/plain/z").await.unwrap();
    let (version, body) = curl(&gw, "example.test", "/api/x", "--http2").await;
    let headers = tokio::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-D", "-"])
        .args(["--resolve", &format!("example.test:{port}:127.0.0.1")])
        .arg(format!("https://example.test:{port}/api/x"))
        .output()
        .await
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_ascii_lowercase();

    // Assert: 308 keeps the method and body; the location names the HTTPS listener's port.
    assert_eq!(redirected.status(), 308);
    assert_eq!(
        redirected.headers()["location"],
        format!("https://example.test:{port}/api/x?y=1").as_str()
    );
    assert!(
        redirected
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "no HSTS over plain HTTP"
    );
    assert_eq!(acme.status(), 200, "ACME challenges stay on HTTP");
    assert_eq!(opted_out.status(), 200, "https_redirect: false");
    assert_eq!(version, "2", "{body}");
    assert!(
        headers.contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{headers}"
    );
}

/// An `openssl s_client` speaking ALPN `h2` to the HTTPS listener that writes `send` and
/// keeps its input open; whether the gateway closed the connection within `limit`.
async fn h2_connection_closed_within(port: u16, send: &[u8], limit: std::time::Duration) -> bool {
    use tokio::io::AsyncWriteExt as _;
    let mut client = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-nocommands", "-alpn", "h2"])
        .args(["-servername", "example.test", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl is installed");
    let mut stdin = client.stdin.take().expect("piped");
    stdin.write_all(send).await.unwrap();
    stdin.flush().await.unwrap();
    let closed = tokio::time::timeout(limit, client.wait()).await.is_ok();
    drop(stdin);
    closed
}

#[tokio::test]
async fn http2_connections_that_send_nothing_or_stay_idle_are_closed() {
    // Arrange: short deadlines.
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let named = self_signed(dir.path(), "named", &["example.test"], KeyKind::EcdsaP256);
    let gw = gateway::start(
        &GatewayConfig::new()
            .limits(Limits::new().header_timeout("1s").idle_timeout("2s"))
            .tls(Tls::new().certificate(named))
            .pool("p", Pool::upstreams(&[&up]))
            .route(Route::prefix("/").pool("p")),
    )
    .await;
    let port = gw.https.unwrap().port();
    // The client preface and an empty SETTINGS frame: a valid HTTP/2 connection, no stream.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let patience = std::time::Duration::from_secs(8);

    // Act + Assert
    assert!(
        h2_connection_closed_within(port, b"", patience).await,
        "a connection that never sent its preface was kept"
    );
    assert!(
        h2_connection_closed_within(port, &preface, patience).await,
        "an idle HTTP/2 connection was kept"
    );
    assert!(
        gw.metrics()
            .await
            .contains("gateway_downstream_timeouts_total{phase=\"header\"} 1"),
        "the silent connection was closed by the header deadline:\n{}",
        gw.metrics().await
    );
}

#[tokio::test]
async fn every_http2_stream_goes_through_auth_and_rate_limits() {
    // Arrange: a route that needs a token and allows 3 requests a minute per client.
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let key = crate::jwks::SigningKey::generate("k1");
    let jwks = crate::jwks::JwksServer::spawn(&[&key]).await;
    let named = self_signed(dir.path(), "named", &["example.test"], KeyKind::EcdsaP256);
    let gw = gateway::start(
        &GatewayConfig::new()
            .tls(Tls::new().certificate(named))
            .jwt(crate::jwks::jwt_section(&jwks.url()))
            .pool("p", Pool::upstreams(&[&up]))
            .route(
                Route::prefix("/api")
                    .pool("p")
                    .auth(crate::config::Auth::Required)
                    .rate_limit(crate::config::RateLimit::client_ip(3, "1m")),
            ),
    )
    .await;
    gw.wait_ready().await;
    let port = gw.https.unwrap().port();
    let token = key.sign(&crate::jwks::claims("ada"));

    // Act: six requests multiplexed on an HTTP/2 connection, then one without a token.
    let url = format!("https://example.test:{port}/api/x");
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "--http2", "--parallel", "--parallel-immediate"])
        .args(["--resolve", &format!("example.test:{port}:127.0.0.1")])
        .args(["-H", &format!("authorization: Bearer {token}")])
        .args(["-w", "%{http_code} %{http_version}\n"])
        .args((0..6).flat_map(|_| ["-o", "/dev/null", url.as_str()]))
        .output()
        .await
        .unwrap();
    let (anonymous, _) = curl(&gw, "example.test", "/api/x", "--http2").await;
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();

    // Assert: the limit counted streams, not connections; every answer was HTTP/2.
    let mut answers: Vec<&str> = lines.lines().collect();
    answers.sort_unstable();
    assert_eq!(
        answers,
        ["200 2", "200 2", "200 2", "429 2", "429 2", "429 2"],
        "{lines}"
    );
    assert_eq!(anonymous, "2");
    crate::assert_eventually!(
        gw.log().contains("\"status\":401"),
        "the request without a token was not refused:\n{}",
        gw.log()
    );
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_its_ca_and_name() {
    // Arrange: the upstream is another gateway terminating TLS for `up.test` with a
    // self-signed certificate (which is then its own CA).
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "up", &["up.test"], KeyKind::EcdsaP256);
    let upstream = gateway::start(
        &GatewayConfig::new()
            .tls(Tls::new().certificate(cert.clone()))
            .route(Route::prefix("/").respond(Respond::status(200).body("from tls upstream"))),
    )
    .await;
    let endpoint = [upstream.https.unwrap()];
    let pool = |tls: PoolTls| Pool::endpoints(endpoint).tls(tls);
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool(
                "trusted",
                pool(PoolTls::new().sni("up.test").ca_file(&cert.cert_file)),
            )
            .pool("system_roots", pool(PoolTls::new().sni("up.test")))
            .pool(
                "wrong_name",
                pool(PoolTls::new().sni("other.test").ca_file(&cert.cert_file)),
            )
            .pool(
                "unverified",
                pool(PoolTls::new().sni("up.test").verify(false)),
            )
            .route(Route::prefix("/trusted").pool("trusted"))
            .route(Route::prefix("/system").pool("system_roots"))
            .route(Route::prefix("/wrong").pool("wrong_name"))
            .route(Route::prefix("/unverified").pool("unverified")),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(gw.url(path)).send();

    // Act
    let trusted = get("/trusted").await.unwrap();
    let (trusted_status, trusted_body) = (trusted.status(), trusted.text().await.unwrap());
    let untrusted = get("/system").await.expect("an answer to /system");
    let closes = untrusted.headers().get("connection").cloned();
    let untrusted = untrusted.status();
    let wrong_name = get("/wrong").await.unwrap().status();
    let unverified = get("/unverified").await.unwrap().status();

    // Assert
    assert_eq!(trusted_status, 200, "{trusted_body}");
    assert_eq!(trusted_body, "from tls upstream");
    assert_eq!(untrusted, 502, "a certificate no trusted root signed");
    assert_eq!(
        closes.as_ref().and_then(|v| v.to_str().ok()),
        Some("close"),
        "a 502 closes the connection and says so"
    );
    assert_eq!(wrong_name, 502, "a certificate for another name");
    assert_eq!(unverified, 200, "verify: false");
    crate::assert_eventually!(
        gw.log().contains("\"route\":\"/wrong\"") && gw.log().contains("certificate"),
        "no clear log line for the failed verification:\n{}",
        gw.log()
    );
}
