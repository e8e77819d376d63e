//! The HTTPS listener, driven by real clients: `curl` (HTTP/2 through ALPN, HTTP/1.1) and
//! `openssl s_client` (protocol versions, SNI).

use std::path::Path;

use crate::certs::{presented_cn, self_signed, KeyKind};
use crate::config::{
    CertificateFiles, GatewayConfig, Hsts, Limits, Listeners, Pool, PoolTls, Respond, Route, Tls,
};
use crate::gateway::{self, TestGateway};
use crate::upstream::Upstream;

/// A gateway in front of `up` with an ECDSA certificate for `example.test` and
/// `*.wild.test`, and `tls` adjusted by `adjust`.
async fn https_gateway(dir: &Path, up: &Upstream, adjust: impl FnOnce(Tls) -> Tls) -> TestGateway {
    let named = self_signed(
        dir,
        "named",
        &["example.test", "*.wild.test"],
        KeyKind::EcdsaP256,
    );
    gateway::start(
        &GatewayConfig::new()
            .tls(adjust(Tls::new().certificate(named)))
            .pool("p", Pool::upstreams(&[up]))
            .route(Route::prefix("/").pool("p")),
    )
    .await
}

/// `curl -k` through the HTTPS listener as `host` (resolved to loopback); the HTTP version
/// curl used and the body.
async fn curl(gw: &TestGateway, host: &str, path: &str, version: &str) -> (String, String) {
    let port = gw.https.expect("an HTTPS listener").port();
    let out = tokio::process::Command::new("curl")
        .args(["-sk", version, "--max-time", "10"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version}"])
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .await
        .expect("curl is installed");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, http_version) = text.rsplit_once('\n').expect("curl's -w line");
    (http_version.to_owned(), body.to_owned())
}

#[tokio::test]
async fn http2_and_http11_are_served_over_tls_and_the_upstream_learns_https() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let gw = https_gateway(dir.path(), &up, |t| t).await;
    gw.wait_ready().await;

    // Act
    let (h2, h2_body) = curl(&gw, "example.test", "/x", "--http2").await;
    let (h1, h1_body) = curl(&gw, "example.test", "/y", "--http1.1").await;

    // Assert: ALPN chose each protocol, and the upstream was told the scheme.
    assert_eq!(h2, "2", "{h2_body}");
    assert_eq!(h1, "1.1", "{h1_body}");
    for body in [&h2_body, &h1_body] {
        let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(echoed["upstream"], "a");
        assert_eq!(echoed["headers"]["x-forwarded-proto"], "https", "{echoed}");
    }
    let plain: serde_json::Value = reqwest::get(gw.url("/z"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["headers"]["x-forwarded-proto"], "http");
    crate::assert_eventually!(
        gw.log().contains("\"protocol\":\"HTTP/2.0\"") && gw.log().contains("\"tls\":true"),
        "the access log does not record the protocol:\n{}",
        gw.log()
    );
}

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

#[tokio::test]
async fn sni_picks_the_certificate_and_the_default_answers_the_rest() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let fallback = self_signed(dir.path(), "default", &["default.test"], KeyKind::Rsa2048);
    let gw = https_gateway(dir.path(), &up, |t| t.default_certificate(fallback)).await;
    let port = gw.https.unwrap().port();

    // Act
    let exact = presented_cn(port, Some("example.test"), &[]).await;
    let wildcard = presented_cn(port, Some("api.wild.test"), &[]).await;
    let too_deep = presented_cn(port, Some("a.b.wild.test"), &[]).await;
    let unknown = presented_cn(port, Some("other.test"), &[]).await;
    let no_sni = presented_cn(port, None, &[]).await;

    // Assert
    assert_eq!(exact.as_deref(), Some("example.test"));
    assert_eq!(wildcard.as_deref(), Some("example.test"), "*.wild.test");
    assert_eq!(
        too_deep.as_deref(),
        Some("default.test"),
        "a wildcard is one label"
    );
    assert_eq!(unknown.as_deref(), Some("default.test"));
    assert_eq!(no_sni.as_deref(), Some("default.test"));
    // Every certificate's expiry is published (30-day self-signed certificates).
    let metrics = gw.metrics().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for name in ["example.test", "default.test"] {
        let expiry: f64 = metrics
            .lines()
            .find(|l| {
                l.starts_with("gateway_tls_certificate_expiry_timestamp_seconds{")
                    && l.contains(&format!("name=\"{name}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no expiry for {name}:\n{metrics}"));
        let days = (expiry - now) / 86_400.0;
        assert!(
            (29.0..=31.0).contains(&days),
            "{name} expires in {days} days"
        );
    }
}

#[tokio::test]
async fn without_a_default_an_unknown_name_is_refused() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let gw = https_gateway(dir.path(), &up, |t| t).await;
    let port = gw.https.unwrap().port();

    // Act
    let unknown = presented_cn(port, Some("other.test"), &[]).await;
    let known = presented_cn(port, Some("example.test"), &[]).await;

    // Assert
    assert_eq!(unknown, None, "no certificate, no handshake");
    assert_eq!(known.as_deref(), Some("example.test"));
    crate::assert_eventually!(
        gw.metrics()
            .await
            .contains("gateway_tls_handshake_failures_total{reason=\"error\"} 1"),
        "the failed handshake was not counted:\n{}",
        gw.metrics().await
    );
}

#[tokio::test]
async fn old_protocol_versions_are_refused_and_min_version_is_honoured() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let default = https_gateway(dir.path(), &up, |t| t).await;
    let strict = https_gateway(dir.path(), &up, |t| t.min_version("1.3")).await;
    let (port, strict_port) = (default.https.unwrap().port(), strict.https.unwrap().port());
    let sni = Some("example.test");

    // Act + Assert: TLS 1.0 and 1.1 never; 1.2 unless min_version is 1.3.
    assert_eq!(presented_cn(port, sni, &["-tls1"]).await, None, "TLS 1.0");
    assert_eq!(presented_cn(port, sni, &["-tls1_1"]).await, None, "TLS 1.1");
    assert!(
        presented_cn(port, sni, &["-tls1_2"]).await.is_some(),
        "TLS 1.2"
    );
    assert!(
        presented_cn(port, sni, &["-tls1_3"]).await.is_some(),
        "TLS 1.3"
    );
    assert_eq!(presented_cn(strict_port, sni, &["-tls1_2"]).await, None);
    assert!(presented_cn(strict_port, sni, &["-tls1_3"]).await.is_some());
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_without_a_signal_or_a_restart() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let gw = https_gateway(dir.path(), &up, |t| t).await;
    let port = gw.https.unwrap().port();
    let pid = gw.pid();
    assert_eq!(
        presented_cn(port, Some("example.test"), &[])
            .await
            .as_deref(),
        Some("example.test")
    );

    // Act: a new certificate for the same names, with another CN, written over the old
    // files (as certbot or an operator would); no signal, no edit of the config.
    let staged = tempfile::tempdir().unwrap();
    let renewed = self_signed(
        staged.path(),
        "renewed",
        &["renewed.example.test", "example.test", "*.wild.test"],
        KeyKind::EcdsaP256,
    );
    std::fs::copy(&renewed.cert_file, dir.path().join("named.crt")).unwrap();
    std::fs::copy(&renewed.key_file, dir.path().join("named.key")).unwrap();

    // Assert
    crate::assert_eventually!(
        presented_cn(port, Some("example.test"), &[])
            .await
            .as_deref()
            == Some("renewed.example.test"),
        "the renewed certificate was never served:\n{}",
        gw.log()
    );
    assert_eq!(gw.pid(), pid, "same process");
}

#[test]
fn gateway_check_names_the_certificate_file_that_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = self_signed(dir.path(), "good", &["example.test"], KeyKind::EcdsaP256);
    let other = self_signed(dir.path(), "other", &["other.test"], KeyKind::EcdsaP256);
    let config = dir.path().join("gw.yaml");
    let mismatched = CertificateFiles {
        cert_file: good.cert_file.clone(),
        key_file: other.key_file,
    };
    let missing = CertificateFiles {
        cert_file: dir.path().join("missing.crt"),
        key_file: good.key_file,
    };
    let listeners = Listeners {
        https: Some("127.0.0.1:8443".parse().unwrap()),
        ..Listeners::new(
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:9091".parse().unwrap(),
        )
    };
    let text = GatewayConfig::new()
        .listeners(listeners)
        .tls(Tls::new().certificate(mismatched).certificate(missing))
        .route(Route::prefix("/").respond(Respond::status(200)))
        .to_yaml();
    std::fs::write(&config, text).unwrap();

    let out = std::process::Command::new(gateway::gateway_bin())
        .arg("check")
        .arg(&config)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tls.certificates[0].cert_file")
            && stderr.contains("other.key does not belong to")
            && stderr.contains("good.crt"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tls.certificates[1].cert_file") && stderr.contains("missing.crt"),
        "{stderr}"
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
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(gw.url(path)).send();

    // Act
    let trusted = get("/trusted").await.unwrap();
    let (trusted_status, trusted_body) = (trusted.status(), trusted.text().await.unwrap());
    let untrusted = get("/system").await.unwrap();
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
