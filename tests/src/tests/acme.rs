//! Certificates from ACME, end to end against Let's Encrypt's test server Pebble: obtained
//! with HTTP-01 on the gateway's own HTTP listener, stored privately, shared by replicas,
//! renewed, and kept when the CA is gone.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::certs::presented_serial;
use crate::config::{Acme, GatewayConfig, Pool, Route, Tls};
use crate::gateway::{self, TestGateway};
use crate::pebble::Pebble;
use crate::upstream::Upstream;
use crate::{free_port, patience};

const DOMAIN: &str = "shop.example.test";

/// A gateway in front of `up` whose only certificate comes from `pebble` into `storage`.
fn acme_config(
    up: &Upstream,
    pebble: &Pebble,
    storage: &Path,
    renew_before: &str,
) -> GatewayConfig {
    acme_config_for(&[DOMAIN], up, pebble, storage, renew_before)
}

fn acme_config_for(
    domains: &[&str],
    up: &Upstream,
    pebble: &Pebble,
    storage: &Path,
    renew_before: &str,
) -> GatewayConfig {
    let acme = Acme::new(&pebble.directory_url, domains, storage)
        .email("ops@example.test".to_owned())
        .ca_file(pebble.ca_file.clone())
        .renew_before(renew_before);
    GatewayConfig::new()
        .tls(Tls::new().acme(acme))
        .pool("p", Pool::upstreams(&[up]))
        .route(Route::prefix("/").pool("p"))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The serial `gw` presents for `DOMAIN`, once it presents one from `pebble` (its first
/// certificate may still be on the way).
async fn serial_once_issued(gw: &TestGateway) -> String {
    let port = gw.https.expect("HTTPS listener").port();
    crate::assert_eventually!(
        within = patience() * 3,
        presented_serial(port, DOMAIN).await.is_some(),
        "no certificate for {DOMAIN}:\n{}",
        gw.log()
    );
    presented_serial(port, DOMAIN).await.expect("a certificate")
}

/// `curl` over HTTPS to `gw` as `DOMAIN`, verifying the chain against `root` (PEM file):
/// the HTTP status, or `None` when the handshake or verification fails.
async fn verified_status(gw: &TestGateway, root: &Path) -> Option<String> {
    let port = gw.https.expect("HTTPS listener").port();
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(root)
        .args(["--resolve", &format!("{DOMAIN}:{port}:127.0.0.1")])
        .arg(format!("https://{DOMAIN}:{port}/hello"))
        .output()
        .await
        .expect("curl is installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `gateway_acme_orders_total{result}` of `gw`.
async fn orders(gw: &TestGateway, result: &str) -> u64 {
    let line = format!("gateway_acme_orders_total{{result=\"{result}\"}} ");
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A test's own files, storage directory and upstream, and Pebble validating challenges on
/// the HTTP port returned (reserved for the first gateway).
struct Setup {
    dir: tempfile::TempDir,
    storage: std::path::PathBuf,
    up: Upstream,
    http: SocketAddr,
    pebble: Pebble,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let http = loopback(free_port());
    Setup {
        storage: dir.path().join("acme"),
        up: Upstream::spawn("a").await,
        pebble: Pebble::start(dir.path(), http.port()),
        http,
        dir,
    }
}

#[tokio::test]
async fn a_certificate_is_obtained_stored_privately_shared_and_renewed_through_a_replica() {
    // Arrange: Pebble validates challenges on gateway A's HTTP port.
    let Setup {
        dir,
        storage,
        up,
        http: a_http,
        pebble,
    } = setup().await;
    let root = dir.path().join("pebble-root.pem");

    // Act 1: A starts with no certificate and obtains one.
    let a = gateway::start_at(&acme_config(&up, &pebble, &storage, "30d"), a_http).await;
    let first = serial_once_issued(&a).await;

    // Assert 1: issued by Pebble's CA (the chain verifies), stored owner-only, published,
    // and the gateway ready.
    std::fs::write(&root, pebble.issuing_root().await).unwrap();
    assert_eq!(verified_status(&a, &root).await.as_deref(), Some("200"));
    for file in [
        format!("{DOMAIN}.crt.pem"),
        format!("{DOMAIN}.key.pem"),
        "127.0.0.1_".to_owned(),
    ] {
        let path = std::fs::read_dir(&storage)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&file))
            .unwrap_or_else(|| panic!("{file} in storage"));
        let path = if path.is_dir() {
            path.join("account.json")
        } else {
            path
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    assert_eq!(orders(&a, "ok").await, 1);
    let metrics = a.metrics().await;
    assert!(
        metrics.contains(&format!(
            "gateway_tls_certificate_expiry_timestamp_seconds{{file=\"{}\",name=\"{DOMAIN}\"}}",
            storage.join(format!("{DOMAIN}.crt.pem")).display()
        )),
        "{metrics}"
    );
    a.wait_ready().await;

    // Act 2: replica B shares the storage.
    let b = gateway::start(&acme_config(&up, &pebble, &storage, "30d")).await;

    // Assert 2: B serves A's certificate and orders nothing.
    assert_eq!(serial_once_issued(&b).await, first);
    assert_eq!(verified_status(&b, &root).await.as_deref(), Some("200"));
    assert_eq!(orders(&b, "ok").await + orders(&b, "error").await, 0);
    assert_eq!(pebble.issued(), 1);

    // Act 3: B's renewal window now covers the certificate. Pebble validates on A's port, so
    // A answers B's challenge from the shared storage.
    b.rewrite_config(&acme_config(&up, &pebble, &storage, "36500d"));

    // Assert 3: B renews; A picks up the renewed certificate from storage.
    let b_port = b.https.unwrap().port();
    crate::assert_eventually!(
        within = patience() * 3,
        presented_serial(b_port, DOMAIN)
            .await
            .is_some_and(|s| s != first),
        "B did not renew:\n{}",
        b.log()
    );
    let renewed = presented_serial(b_port, DOMAIN).await.unwrap();
    let a_port = a.https.unwrap().port();
    crate::assert_eventually!(
        presented_serial(a_port, DOMAIN).await.as_deref() == Some(renewed.as_str()),
        "A still serves the old certificate:\n{}",
        a.log()
    );
    assert_eq!(orders(&b, "ok").await, 1);
    assert_eq!(orders(&a, "ok").await, 1, "A did not order again");
    assert_eq!(pebble.issued(), 2);
    assert!(
        a.log().contains(".well-known/acme-challenge/") && a.log().contains("\"status\":200"),
        "A answered the challenge:\n{}",
        a.log()
    );
    assert_eq!(verified_status(&a, &root).await.as_deref(), Some("200"));
}

#[tokio::test]
async fn when_the_ca_is_gone_a_failed_renewal_keeps_the_certificate_serving() {
    // Arrange: a certificate obtained, then the CA stopped.
    let Setup {
        dir,
        storage,
        up,
        http,
        mut pebble,
    } = setup().await;
    let gw = gateway::start_at(&acme_config(&up, &pebble, &storage, "30d"), http).await;
    let serial = serial_once_issued(&gw).await;
    let root = dir.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.issuing_root().await).unwrap();
    pebble.stop().await;

    // Act: a second domain needs a new certificate. (A renewal window that covers the
    // certificate would not order yet: the same names wait an hour after an order.)
    let both = [DOMAIN, "www.example.test"];
    gw.rewrite_config(&acme_config_for(&both, &up, &pebble, &storage, "30d"));

    // Assert: the order fails, is logged and counted; the old certificate keeps serving
    // and the gateway stays ready.
    crate::assert_eventually!(
        within = patience() * 3,
        orders(&gw, "error").await == 1,
        "no failed order counted:\n{}",
        gw.log()
    );
    assert!(
        gw.log()
            .contains("ACME: order failed; the current certificate keeps serving"),
        "{}",
        gw.log()
    );
    let port = gw.https.unwrap().port();
    assert_eq!(presented_serial(port, DOMAIN).await, Some(serial));
    assert_eq!(verified_status(&gw, &root).await.as_deref(), Some("200"));
    gw.wait_ready().await;
}
