//! `jwt:`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Human;

/// `jwt:`: how bearer tokens are verified on routes with `auth: required | optional`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtFile {
    /// Accepted `iss` values; a token must carry one of them.
    pub(crate) issuers: Vec<String>,
    /// Accepted `aud` values; a token must name at least one of them.
    pub(crate) audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (at most 5m).
    #[serde(default = "default_leeway", with = "Human")]
    pub(crate) leeway: Duration,
    /// Claims that must be present besides `exp`.
    #[serde(default = "default_required_claims")]
    pub(crate) required_claims: Vec<String>,
    /// Claim -> upstream header, e.g. `sub: X-User-Id`.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub(crate) forward_claims: serde_yaml::Mapping,
    /// Where the JWK set is fetched: a `url`, or a `pool` and `path`.
    #[serde(default)]
    pub(crate) jwks: Option<JwksFile>,
    /// Static keys: `{ alg, kid, pem_file | jwk_file }`, or HMAC
    /// `{ alg: HS256, kid, secret_env | secret_file }`.
    #[serde(default)]
    pub(crate) keys: Vec<StaticKeyFile>,
    /// Signature checks allowed per client (tokens verified before are free).
    #[serde(default)]
    pub(crate) verification_limit: Option<VerificationLimitFile>,
}

/// `jwt.verification_limit`: like a rate limit, always per client address and local.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerificationLimitFile {
    /// Signature checks allowed per `per`.
    #[schemars(range(min = 1))]
    pub(crate) rate: u64,
    /// The period of `rate`.
    #[serde(with = "Human")]
    pub(crate) per: Duration,
    /// Checks allowed back to back; `rate` when left out.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub(crate) burst: Option<u64>,
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_required_claims() -> Vec<String> {
    vec!["sub".to_owned()]
}

/// `jwt.jwks`: a JWK set fetched over HTTP.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwksFile {
    /// `http://host:port/path`; or leave out and name a `pool` and `path`.
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// A pool whose healthy endpoints serve the JWK set.
    #[serde(default)]
    pub(crate) pool: Option<String>,
    /// With `pool`: the path of the JWK set (`/.well-known/jwks.json` when left out).
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// Periodic re-fetch.
    #[serde(default = "default_jwks_refresh", with = "Human")]
    pub(crate) refresh_interval: Duration,
    /// Shortest time between two fetches triggered by unknown key ids.
    #[serde(default = "default_jwks_cooldown", with = "Human")]
    pub(crate) min_refresh_interval: Duration,
    /// Longest wait per fetch.
    #[serde(default = "default_jwks_timeout", with = "Human")]
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticKeyFile {
    /// The one algorithm this key verifies: `EdDSA`, `ES256`, `ES384`, `RS256`, `PS256`,
    /// ..., or `HS256`, `HS384`, `HS512` with a secret.
    pub(crate) alg: String,
    /// The key id tokens name in their header.
    #[serde(default)]
    pub(crate) kid: Option<String>,
    /// A PEM public key file, relative to the config file.
    #[serde(default)]
    pub(crate) pem_file: Option<String>,
    /// A JSON file holding one public JWK.
    #[serde(default)]
    pub(crate) jwk_file: Option<String>,
    /// HMAC only: an environment variable holding the secret.
    #[serde(default)]
    pub(crate) secret_env: Option<String>,
    /// HMAC only: a file holding the secret, relative to the config file.
    #[serde(default)]
    pub(crate) secret_file: Option<String>,
}
