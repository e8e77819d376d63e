//! `tls:`: certificates for the HTTPS listener and the TLS settings of client connections.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::Human;

/// `tls:`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// Certificates picked by the client's SNI: exact names first, then `*.` wildcards.
    #[serde(default)]
    pub(crate) certificates: Vec<CertificateFile>,
    /// For clients without SNI or with a name no certificate has; without it such
    /// handshakes are refused.
    #[serde(default)]
    pub(crate) default_certificate: Option<CertificateFile>,
    /// The lowest TLS version offered: `1.2` or `1.3`.
    #[serde(default)]
    pub(crate) min_version: TlsVersionFile,
    /// Answer every request on the HTTP listener with a 308 to HTTPS (except ACME
    /// challenges and routes with `https_redirect: false`).
    #[serde(default)]
    pub(crate) redirect_http: bool,
    /// `Strict-Transport-Security` on every HTTPS response.
    #[serde(default)]
    pub(crate) hsts: Option<HstsFile>,
    /// A certificate obtained and renewed from an ACME CA such as Let's Encrypt.
    #[serde(default)]
    pub(crate) acme: Option<AcmeFile>,
    /// Development only: a self-signed certificate made on first start.
    #[serde(default)]
    pub(crate) self_signed: Option<SelfSignedFile>,
}

/// `tls.self_signed`: a certificate the gateway makes for itself on first start.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelfSignedFile {
    /// DNS names and IP addresses of the certificate.
    pub(crate) names: Vec<String>,
    /// Where it is kept and reused on later starts.
    pub(crate) storage: String,
}

/// `tls.acme`: certificates obtained and renewed from an ACME CA (RFC 8555), HTTP-01.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcmeFile {
    /// The CA's ACME directory (`https://`), e.g.
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub(crate) directory_url: String,
    /// The account's contact, for the CA's expiry and policy mail.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// DNS names of the certificate (no wildcards); each must reach this gateway's HTTP
    /// listener on port 80.
    #[schemars(length(min = 1))]
    pub(crate) domains: Vec<String>,
    /// A directory for the account key, the certificate and its key; gateways sharing it
    /// share one certificate.
    pub(crate) storage: String,
    /// Renew when the certificate expires within this.
    #[serde(default = "thirty_days", with = "Human")]
    pub(crate) renew_before: Duration,
    /// Trusted roots for the directory's HTTPS (a private CA such as step-ca or Pebble).
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
}

fn thirty_days() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

/// `Strict-Transport-Security` on HTTPS responses.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HstsFile {
    /// `max-age` of the header.
    #[serde(default = "one_year", with = "Human")]
    pub(crate) max_age: Duration,
    /// Adds `; includeSubDomains`.
    #[serde(default)]
    pub(crate) include_subdomains: bool,
}

fn one_year() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

/// A PEM certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateFile {
    /// A PEM chain, leaf first, relative to the config file.
    pub(crate) cert_file: String,
    /// Its PEM private key (RSA, ECDSA P-256/P-384 or Ed25519).
    pub(crate) key_file: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsVersionFile {
    #[default]
    V1_2,
    V1_3,
}

impl Serialize for TlsVersionFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        })
    }
}

impl JsonSchema for TlsVersionFile {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TlsVersion".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`1.2` or `1.3` (TLS 1.0 and 1.1 are never offered).",
            "enum": [1.2, 1.3, "1.2", "1.3"],
        })
    }
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
