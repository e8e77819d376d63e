//! `tls:`: certificates for the HTTPS listener and the TLS settings of client connections.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    #[serde(default)]
    pub(crate) certificates: Vec<CertificateFile>,
    #[serde(default)]
    pub(crate) default_certificate: Option<CertificateFile>,
    #[serde(default)]
    pub(crate) min_version: TlsVersionFile,
    #[serde(default)]
    pub(crate) redirect_http: bool,
    #[serde(default)]
    pub(crate) hsts: Option<HstsFile>,
    #[serde(default)]
    pub(crate) acme: Option<AcmeFile>,
    #[serde(default)]
    pub(crate) self_signed: Option<SelfSignedFile>,
}

/// `tls.self_signed`: a certificate the gateway makes for itself on first start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelfSignedFile {
    pub(crate) names: Vec<String>,
    pub(crate) storage: String,
}

/// `tls.acme`: certificates obtained and renewed from an ACME CA (RFC 8555), HTTP-01.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcmeFile {
    pub(crate) directory_url: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
    pub(crate) domains: Vec<String>,
    pub(crate) storage: String,
    #[serde(default = "thirty_days", deserialize_with = "duration")]
    pub(crate) renew_before: Duration,
    /// Trusted roots for the directory's HTTPS (a private CA such as step-ca or Pebble).
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
}

fn thirty_days() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

/// `Strict-Transport-Security` on HTTPS responses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HstsFile {
    #[serde(default = "one_year", deserialize_with = "duration")]
    pub(crate) max_age: Duration,
    #[serde(default)]
    pub(crate) include_subdomains: bool,
}

fn one_year() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

/// A PEM certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateFile {
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsVersionFile {
    #[default]
    V1_2,
    V1_3,
}

impl<'de> Deserialize<'de> for TlsVersionFile {
    /// `1.2` and `1.3`, written as numbers (what YAML makes of them) or strings.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => format!("{n}"),
            Raw::Text(t) => t,
        };
        match text.trim() {
            "1.2" => Ok(Self::V1_2),
            "1.3" => Ok(Self::V1_3),
            other => Err(serde::de::Error::custom(format!(
                "unsupported TLS version {other:?}; write 1.2 or 1.3 (1.0 and 1.1 are refused)"
            ))),
        }
    }
}
