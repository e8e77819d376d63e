//! Access tokens: signed with the service's asymmetric key (EdDSA or ES256), published as a
//! JWKS so the gateway can verify them without a shared secret.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::Digest as _;
use uuid::Uuid;

/// Why a token key could not be loaded; start-up fails with this, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a PKCS#8 PEM Ed25519 or P-256 private key")]
    Format { path: String },
}

/// A JWK set (RFC 7517): the public keys that verify this API's tokens.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct JwkSet {
    /// Public JWKs (`kty`, `crv`, `x`, `kid`, `alg`, `use`), one per signing key.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub keys: Vec<serde_json::Value>,
}

pub struct TokenKeys {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Tokens whose signature, issuer and audience were verified, by their exact text: the
    /// user and the expiry, which is still checked on every use. A client sends the same
    /// token for many requests, and the signature check is most of a cached read's CPU. The
    /// cache belongs to these keys, so a key change starts with an empty one.
    verified: quick_cache::sync::Cache<String, (Uuid, u64)>,
}

/// Verified tokens kept per replica (about 300 bytes each).
const VERIFIED_TOKENS: usize = 10_000;

/// Seconds of clock skew `exp` is allowed.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, serde::Serialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
}

impl TokenKeys {
    pub fn load(
        path: &Path,
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem, issuer, audience, ttl).ok_or_else(|| KeyError::Format {
            path: path.display().to_string(),
        })
    }

    pub fn from_pem(pem: &str, issuer: &str, audience: &str, ttl: Duration) -> Option<Self> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let (alg, encoding, public_bytes, jwk_fields) = if let Ok(key) =
            ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        {
            let public = key.verifying_key().to_bytes().to_vec();
            let fields = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&public)});
            (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(pem.as_bytes()).ok()?,
                public,
                fields,
            )
        } else {
            let key = p256::SecretKey::from_pkcs8_pem(pem).ok()?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &key.public_key(),
                false,
            );
            let fields = serde_json::json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x()?), "y": URL_SAFE_NO_PAD.encode(point.y()?),
            });
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(pem.as_bytes()).ok()?,
                point.as_bytes().to_vec(),
                fields,
            )
        };
        let kid = URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(&public_bytes)[..12]);
        let mut jwk = jwk_fields;
        jwk["kid"] = kid.clone().into();
        jwk["use"] = "sig".into();
        jwk["alg"] = if alg == Algorithm::EdDSA {
            "EdDSA"
        } else {
            "ES256"
        }
        .into();
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).ok()?;
        let decoding = DecodingKey::from_jwk(&parsed).ok()?;
        Some(Self {
            alg,
            kid,
            encoding,
            decoding,
            jwk,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// `{"keys": [...]}` for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    pub fn issue(&self, user_id: Uuid) -> anyhow::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("Failed to read the clock")?
            .as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("Failed to sign a token")
    }

    /// The user a token names, if it is valid: signature with the pinned algorithm, `exp`,
    /// `iss`, `aud`.
    /// A token verified before is looked up by its text, and only its expiry is checked.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((user, exp)) = self.verified.get(token) {
            return (now <= exp + LEEWAY_SECONDS).then_some(user);
        }
        let mut validation = Validation::new(self.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        // `sub` and `exp` are read; the other registered claims are checked by `validation`.
        #[derive(serde::Deserialize)]
        struct Subject {
            sub: String,
            exp: u64,
        }
        let data = jsonwebtoken::decode::<Subject>(token, &self.decoding, &validation).ok()?;
        let user = Uuid::parse_str(&data.claims.sub).ok()?;
        self.verified
            .insert(token.to_owned(), (user, data.claims.exp));
        Some(user)
    }
}

/// A fresh Ed25519 key in PKCS#8 PEM, for tests and the dev setup.
pub fn generate_ed25519_pem() -> String {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_pem(
            &generate_ed25519_pem(),
            "iss",
            "aud",
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let keys = keys();
        let user = Uuid::new_v4();
        let token = keys.issue(user).unwrap();

        assert_eq!(keys.verify(&token), Some(user));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(keys.verify(&tampered), None);
        assert_eq!(keys.verify(&other_keys_token(user)), None);
    }

    #[test]
    fn a_verified_token_is_remembered_but_its_expiry_is_checked_on_every_use() {
        let keys = keys();
        let user = Uuid::new_v4();
        let token = keys.issue(user).unwrap();
        assert_eq!(keys.verify(&token), Some(user));
        let remembered = keys.verified.get(&token);
        assert!(
            matches!(remembered, Some((u, _)) if u == user),
            "{remembered:?}"
        );

        // The same entry, past its expiry and the leeway.
        let past = jsonwebtoken::get_current_timestamp() - LEEWAY_SECONDS - 1;
        keys.verified.insert(token.clone(), (user, past));
        assert_eq!(keys.verify(&token), None);
    }

    fn other_keys_token(user: Uuid) -> String {
        keys().issue(user).unwrap()
    }

    #[test]
    fn the_jwks_names_the_key_and_its_algorithm() {
        let keys = keys();
        let jwks = keys.jwks();
        assert_eq!(jwks.keys[0]["alg"], "EdDSA");
        assert_eq!(jwks.keys[0]["kid"], keys.kid.as_str());
    }
}
