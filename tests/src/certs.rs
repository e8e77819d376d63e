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
    let subject = format!("/CN={}", names[0]);
    let san = format!("subjectAltName={}", san.join(","));
    let named = ["-subj", &subject, "-addext", &san];
    let args = os(&["req", "-x509", "-nodes", "-days", "30"])
        .chain(os(&key))
        .chain([os1("-keyout"), files.key_file.as_os_str()])
        .chain([os1("-out"), files.cert_file.as_os_str()])
        .chain(os(&named))
        // A server certificate, not a CA: verifiers refuse a CA certificate as a leaf.
        .chain(os(&["-addext", "basicConstraints=critical,CA:FALSE"]));
    openssl(args);
    files
}

/// A throwaway CA (`<stem>-ca.crt`) and a server certificate it signed for `localhost` and
/// 127.0.0.1 (`<stem>.crt`, `<stem>.key`), valid for 2 days: for a test server such as
/// Pebble that its clients verify with the CA file.
pub fn ca_signed_localhost(dir: &Path, stem: &str) -> (std::path::PathBuf, CertificateFiles) {
    let ca_key = dir.join(format!("{stem}-ca.key"));
    let ca = dir.join(format!("{stem}-ca.crt"));
    let csr = dir.join(format!("{stem}.csr"));
    let ext = dir.join(format!("{stem}.ext"));
    let files = CertificateFiles {
        cert_file: dir.join(format!("{stem}.crt")),
        key_file: dir.join(format!("{stem}.key")),
    };
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .expect("write extensions");
    let p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let steps: [Vec<&std::ffi::OsStr>; 3] = [
        os(&[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ])
        .chain(os(&p256))
        .chain(os(&["-addext", "basicConstraints=critical,CA:TRUE"]))
        .chain([
            os1("-keyout"),
            ca_key.as_os_str(),
            os1("-out"),
            ca.as_os_str(),
        ])
        .collect(),
        os(&["req", "-nodes", "-subj", "/CN=localhost"])
            .chain(os(&p256))
            .chain([
                os1("-keyout"),
                files.key_file.as_os_str(),
                os1("-out"),
                csr.as_os_str(),
            ])
            .collect(),
        os(&["x509", "-req", "-days", "2"])
            .chain([os1("-in"), csr.as_os_str(), os1("-CA"), ca.as_os_str()])
            .chain([os1("-CAkey"), ca_key.as_os_str(), os1("-CAcreateserial")])
            .chain([os1("-extfile"), ext.as_os_str()])
            .chain([os1("-out"), files.cert_file.as_os_str()])
            .collect(),
    ];
    for args in steps {
        openssl(args);
    }
    (ca, files)
}

/// Run `openssl` with `args`; a failure fails the test with openssl's own message.
fn openssl<'a>(args: impl IntoIterator<Item = &'a std::ffi::OsStr>) {
    let args: Vec<&std::ffi::OsStr> = args.into_iter().collect();
    crate::run_ok(
        Command::new("openssl").args(&args),
        &format!("openssl {args:?} (Debian package openssl)"),
    );
}

/// `curl -k` to `https://host:port/path` with `host` resolved to loopback and `args` added
/// (`--http2`, headers): the HTTP version curl used and the body.
pub async fn curl_https(port: u16, host: &str, path: &str, args: &[&str]) -> (String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "--max-time", "10", "-w", "\n%{http_version}"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(args)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .await
        .expect("curl is installed");
    assert!(out.status.success(), "curl over HTTPS failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').expect("curl's -w line");
    (version.to_owned(), body.to_owned())
}

fn os<'a>(args: &'a [&'a str]) -> impl Iterator<Item = &'a std::ffi::OsStr> {
    args.iter().map(std::ffi::OsStr::new)
}

fn os1(arg: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(arg)
}

/// The serial number (hex, as `openssl x509 -serial` prints it) of the certificate a TLS
/// server at `port` presents for `sni`; `None` when the handshake fails.
pub async fn presented_serial(port: u16, sni: &str) -> Option<String> {
    let hello = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", sni])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl is installed");
    let mut x509 = tokio::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is installed");
    let mut stdin = x509.stdin.take().expect("piped");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &hello.stdout)
        .await
        .ok()?;
    drop(stdin);
    let out = x509.wait_with_output().await.ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("serial=")
        .map(str::to_owned)
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
