//! Self-signed certificates for the HTTPS tests, made by the `openssl` command (Debian's
//! `openssl` package) the way an operator would make one.

use std::path::Path;
use std::process::Command;

use crate::config::CertificateFiles;

/// The key type of a generated certificate.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

/// A self-signed server certificate for `names` (subjectAltName DNS entries, `*.` allowed),
/// valid for 30 days, written as `<stem>.crt` and `<stem>.key` in `dir`. As a `ca_file` it
/// is its own trust anchor.
pub fn self_signed(dir: &Path, stem: &str, names: &[&str], kind: KeyKind) -> CertificateFiles {
    let files = CertificateFiles {
        cert_file: dir.join(format!("{stem}.crt")),
        key_file: dir.join(format!("{stem}.key")),
    };
    let key = match kind {
        KeyKind::EcdsaP256 => ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        KeyKind::Rsa2048 => ["-newkey", "rsa:2048", "-pkeyopt", "rsa_keygen_bits:2048"],
    };
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30"])
        .args(key)
        .arg("-keyout")
        .arg(&files.key_file)
        .arg("-out")
        .arg(&files.cert_file)
        .args(["-subj", &format!("/CN={}", names[0])])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        // A server certificate, not a CA: verifiers refuse a CA certificate as a leaf.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .output()
        .expect("openssl is installed (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    files
}

/// The subject CN of the certificate a TLS server at `port` presents for `sni` (none: no
/// SNI), with extra `openssl s_client` arguments such as `-tls1_1`; `None` when the
/// handshake fails.
pub async fn presented_cn(port: u16, sni: Option<&str>, extra: &[&str]) -> Option<String> {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject=CN = "))
        .map(str::to_owned)
}
