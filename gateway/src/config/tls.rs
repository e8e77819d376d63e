//! Certificates of the HTTPS listener: read once, at validation, into the model (like JWT
//! key material in `keys.rs`), so `gateway check` and the running listener see the same
//! bytes and a certificate replaced on disk counts as a changed config on the next reload.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CertificateDer, CryptoProvider, PrivateKeyDer};
use rustls_pki_types::pem::PemObject as _;

/// `pools.<name>.tls`: how the gateway speaks TLS to a pool's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Sent as SNI and checked against the endpoint's certificate.
    pub sni: String,
    /// Verify the endpoint's certificate chain and name (off only for testing).
    pub verify: bool,
    /// Trusted roots for this pool (DER), instead of the system's.
    pub ca: Option<Vec<Vec<u8>>>,
}

/// The DER certificates of a PEM bundle of trusted roots.
pub(crate) fn load_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    certs
        .into_iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(&der)
                .map_err(|e| format!("{}: unreadable certificate: {e}", path.display()))?;
            Ok(der.to_vec())
        })
        .collect()
}

/// `tls:` of the config: what the HTTPS listener serves.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Chosen by the client's SNI against each certificate's names.
    pub certificates: Vec<Certificate>,
    /// For clients without SNI or with a name no certificate has; without one, such a
    /// handshake is refused.
    pub default_certificate: Option<Certificate>,
    pub min_version: TlsVersion,
    /// Answer requests on the HTTP listener with a 308 to HTTPS (but ACME challenges and
    /// routes that opt out).
    pub redirect_http: bool,
    /// `Strict-Transport-Security` for HTTPS responses, ready to send.
    pub hsts: Option<http::HeaderValue>,
    /// Certificates obtained from an ACME CA, beside (or instead of) the files above.
    pub acme: Option<AcmeConfig>,
    /// A certificate the gateway makes and keeps for these names, for development: it
    /// answers the names no other certificate has, when there is no `default_certificate`.
    pub self_signed: Option<SelfSigned>,
    /// The hash (as `content_hash` makes it) of the digest of the certificate and key bytes
    /// loaded, computed once: what the reloader compares the files on disk with.
    pub(crate) fingerprint: String,
}

impl TlsConfig {
    fn all(&self) -> impl Iterator<Item = &Certificate> {
        self.certificates.iter().chain(&self.default_certificate)
    }

    /// The `fingerprint` of `certificates` and `default_certificate` as loaded.
    pub(crate) fn fingerprint_of(
        certificates: &[Certificate],
        default: Option<&Certificate>,
    ) -> String {
        let all = certificates.iter().chain(default);
        super::content_hash(&digest(all.flat_map(|c| [&c.content.0, &c.content.1])))
    }

    /// The digest of what the files hold now (unhashed: the reloader's two-reads rule
    /// hashes it), so the reloader can serve a renewed certificate without an edit of the
    /// config. `None` while a file cannot be read (a renewal may be replacing it).
    pub(crate) fn fingerprint_on_disk(&self) -> Option<String> {
        let mut files = Vec::new();
        for cert in self.all() {
            files.push(std::fs::read(&cert.cert_file).ok()?);
            files.push(std::fs::read(&cert.key_file).ok()?);
        }
        Some(digest(files.iter()))
    }
}

/// The SHA-256 of each file, in order.
fn digest<'a>(files: impl Iterator<Item = &'a Vec<u8>>) -> String {
    use sha2::Digest as _;
    let mut out = String::new();
    for bytes in files {
        for b in sha2::Sha256::digest(bytes) {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// `tls.self_signed`: DNS names and IP addresses, and the directory the certificate is
/// kept in (generated there on first start, reused after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    pub names: Vec<String>,
    pub storage: PathBuf,
}

/// `tls.acme`: one certificate for `domains`, obtained from `directory_url` with HTTP-01
/// challenges answered on the HTTP listener, kept under `storage`, renewed `renew_before`
/// its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub directory_url: String,
    /// Contact for the account (`mailto:`), which the CA uses for expiry notices.
    pub email: Option<String>,
    /// Lowercase DNS names, the first one naming the certificate's files.
    pub domains: Vec<String>,
    pub storage: PathBuf,
    pub renew_before: Duration,
    /// Trusted roots for the directory's HTTPS, instead of the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        })
    }
}

/// One certificate chain with its key, loaded and checked.
#[derive(Clone)]
pub struct Certificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// DNS names of the leaf's subjectAltName, lowercase; `*.example.com` for wildcards.
    pub names: Vec<String>,
    /// The leaf's notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
    pub key: Arc<CertifiedKey>,
    /// The files' bytes, which decide whether a reload changed the certificate.
    content: Arc<(Vec<u8>, Vec<u8>)>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.cert_file == other.cert_file
            && self.key_file == other.key_file
            && self.content == other.content
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_file", &self.cert_file)
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Read and check a certificate chain and its key; the error names what is wrong.
pub(crate) fn load_certificate(cert_file: &Path, key_file: &Path) -> Result<Certificate, String> {
    let cert_pem = std::fs::read(cert_file)
        .map_err(|e| format!("cannot read certificate file {}: {e}", cert_file.display()))?;
    let key_pem = std::fs::read(key_file)
        .map_err(|e| format!("cannot read key file {}: {e}", key_file.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert_file.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{}: holds no certificate", cert_file.display()));
    };
    let (names, not_after) = leaf_names(leaf)
        .map_err(|e| format!("{}: unreadable certificate: {e}", cert_file.display()))?;
    if names.is_empty() {
        return Err(format!(
            "{}: the certificate names no DNS name in subjectAltName",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key_file.display()))?;
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        format!(
            "{}: unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519): {e}",
            key_file.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} does not belong to {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(Certificate {
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        names,
        not_after,
        key: Arc::new(certified),
        content: Arc::new((cert_pem, key_pem)),
    })
}

/// The leaf's DNS names (lowercase) and its notAfter.
fn leaf_names(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let names = cert
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((names, cert.validity().not_after.timestamp()))
}
