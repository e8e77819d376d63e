//! `jwt:`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{path_text, setters, strings, Dur};

/// `jwt:`: how bearer tokens are verified.
#[derive(Debug, Clone, Serialize)]
pub struct Jwt {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway: Option<Dur>,
    /// An `Option`: the gateway's default is `[sub]`, not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_claims: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub forward_claims: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Jwks>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<StaticKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_limit: Option<VerificationLimit>,
}

impl Jwt {
    /// Tokens must carry one of `issuers` and name one of `audiences`.
    pub fn new(issuers: &[&str], audiences: &[&str]) -> Self {
        Self {
            issuers: strings(issuers),
            audiences: strings(audiences),
            leeway: None,
            required_claims: None,
            forward_claims: BTreeMap::new(),
            jwks: None,
            keys: Vec::new(),
            verification_limit: None,
        }
    }

    /// Add a `forward_claims` entry: send `claim` upstream as `header`.
    pub fn forward_claim(mut self, claim: &str, header: &str) -> Self {
        self.forward_claims
            .insert(claim.to_owned(), header.to_owned());
        self
    }

    /// Set `required_claims` (besides `exp`).
    pub fn required_claims(mut self, claims: &[&str]) -> Self {
        self.required_claims = Some(strings(claims));
        self
    }

    /// Append a `keys` entry.
    pub fn key(mut self, key: StaticKey) -> Self {
        self.keys.push(key);
        self
    }

    setters!(jwks: Jwks, verification_limit: VerificationLimit);
    setters!(into leeway: Dur);
}

/// `jwt.jwks`: where the key set is fetched from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Jwks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_refresh_interval: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl Jwks {
    /// Fetch from `url` (`http://host:port/path`).
    pub fn url(url: &str) -> Self {
        Self {
            url: Some(url.to_owned()),
            ..Self::default()
        }
    }

    /// Fetch `path` from an endpoint of `pool`.
    pub fn pool(pool: &str, path: &str) -> Self {
        Self {
            pool: Some(pool.to_owned()),
            path: Some(path.to_owned()),
            ..Self::default()
        }
    }

    setters!(into refresh_interval: Dur, min_refresh_interval: Dur, timeout: Dur);
}

/// One entry of `jwt.keys`: a key given directly, for the algorithm `alg`.
#[derive(Debug, Clone, Serialize)]
pub struct StaticKey {
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pem_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwk_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
}

impl StaticKey {
    /// A PEM public key file.
    pub fn pem_file(alg: &str, path: impl AsRef<Path>) -> Self {
        Self {
            pem_file: Some(path_text(path)),
            ..Self::of(alg)
        }
    }

    /// A JSON file holding one public JWK.
    pub fn jwk_file(alg: &str, path: impl AsRef<Path>) -> Self {
        Self {
            jwk_file: Some(path_text(path)),
            ..Self::of(alg)
        }
    }

    /// An HMAC secret read from a file.
    pub fn secret_file(alg: &str, path: impl AsRef<Path>) -> Self {
        Self {
            secret_file: Some(path_text(path)),
            ..Self::of(alg)
        }
    }

    /// An HMAC secret read from the environment variable `var`.
    pub fn secret_env(alg: &str, var: &str) -> Self {
        Self {
            secret_env: Some(var.to_owned()),
            ..Self::of(alg)
        }
    }

    fn of(alg: &str) -> Self {
        Self {
            alg: alg.to_owned(),
            kid: None,
            pem_file: None,
            jwk_file: None,
            secret_env: None,
            secret_file: None,
        }
    }

    setters!(into kid: String);
}

/// `jwt.verification_limit`: signature checks allowed per client.
#[derive(Debug, Clone, Serialize)]
pub struct VerificationLimit {
    pub rate: u64,
    pub per: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

impl VerificationLimit {
    /// `rate` checks `per` period.
    pub fn new(rate: u64, per: impl Into<Dur>) -> Self {
        Self {
            rate,
            per: per.into(),
            burst: None,
        }
    }

    setters!(burst: u64);
}
