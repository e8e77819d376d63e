//! `jwt:`.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `jwt:`: how bearer tokens are verified on routes with `auth: required | optional`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtFile {
    /// Accepted `iss` values; a token must carry one of them.
    pub(crate) issuers: Vec<String>,
    /// Accepted `aud` values; a token must name at least one of them.
    pub(crate) audiences: Vec<String>,
    #[serde(default = "default_leeway", deserialize_with = "duration")]
    pub(crate) leeway: Duration,
    /// Claims that must be present besides `exp`.
    #[serde(default = "default_required_claims")]
    pub(crate) required_claims: Vec<String>,
    /// Claim -> upstream header, e.g. `sub: X-User-Id`.
    #[serde(default)]
    pub(crate) forward_claims: serde_yaml::Mapping,
    #[serde(default)]
    pub(crate) jwks: Option<JwksFile>,
    #[serde(default)]
    pub(crate) keys: Vec<StaticKeyFile>,
    /// Signature checks allowed per client (tokens verified before are free).
    #[serde(default)]
    pub(crate) verification_limit: Option<VerificationLimitFile>,
}

/// `jwt.verification_limit`: like a rate limit, always per client address and local.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerificationLimitFile {
    pub(crate) rate: u64,
    #[serde(deserialize_with = "duration")]
    pub(crate) per: Duration,
    #[serde(default)]
    pub(crate) burst: Option<u64>,
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_required_claims() -> Vec<String> {
    vec!["sub".to_owned()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwksFile {
    /// `http://host:port/path`; or leave out and name a `pool` and `path`.
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) pool: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default = "default_jwks_refresh", deserialize_with = "duration")]
    pub(crate) refresh_interval: Duration,
    /// Shortest time between two fetches triggered by unknown key ids.
    #[serde(default = "default_jwks_cooldown", deserialize_with = "duration")]
    pub(crate) min_refresh_interval: Duration,
    #[serde(default = "default_jwks_timeout", deserialize_with = "duration")]
    pub(crate) timeout: Duration,
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_cooldown() -> Duration {
    Duration::from_secs(10)
}

fn default_jwks_timeout() -> Duration {
    Duration::from_secs(2)
}

/// A key given directly: a PEM or JWK public key file, or an HMAC secret (never the default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticKeyFile {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) pem_file: Option<String>,
    /// A JSON file holding one public JWK.
    #[serde(default)]
    pub(crate) jwk_file: Option<String>,
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
}
