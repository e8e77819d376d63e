//! The HTTPS listener, driven by real clients: `curl` (HTTP/2 through ALPN, HTTP/1.1) and
//! `openssl s_client` (protocol versions, SNI).

use std::path::Path;

use crate::certs::{presented_cn, self_signed, KeyKind};
use crate::config::{CertificateFiles, GatewayConfig, Listeners, Pool, Respond, Route, Tls};
use crate::gateway::{self, TestGateway};
use crate::upstream::Upstream;

/// A gateway in front of `up` with an ECDSA certificate for `example.test` and
/// `*.wild.test`, and `tls` adjusted by `adjust`.
pub(super) async fn https_gateway(
    dir: &Path,
    up: &Upstream,
    adjust: impl FnOnce(Tls) -> Tls,
) -> TestGateway {
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
pub(super) async fn curl(
    gw: &TestGateway,
    host: &str,
    path: &str,
    version: &str,
) -> (String, String) {
    let port = gw.https.expect("an HTTPS listener").port();
    crate::certs::curl_https(port, host, path, &[version]).await
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
async fn a_broken_certificate_on_disk_is_rejected_and_the_old_one_keeps_serving() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::spawn("a").await;
    let gw = https_gateway(dir.path(), &up, |t| t).await;
    let port = gw.https.unwrap().port();

    // Act: the certificate file is overwritten with something that is not one.
    std::fs::write(dir.path().join("named.crt"), "not a certificate\n").unwrap();

    // Assert: the reload is refused, says why, and the loaded certificate still serves.
    crate::assert_eventually!(
        gw.metrics()
            .await
            .contains("gateway_config_last_reload_success 0"),
        "the broken certificate was not rejected:\n{}",
        gw.log()
    );
    assert!(gw.log().contains("named.crt"), "{}", gw.log());
    assert_eq!(
        presented_cn(port, Some("example.test"), &[])
            .await
            .as_deref(),
        Some("example.test")
    );
}
