//! Key material for `jwt.keys`: read once, at validation, into the model. The verifier
//! builds its keys from these bytes and never reads a file itself. A key therefore can
//! never differ between `gateway check` and the running verifier, and a key file
//! rotated in place counts as a changed config on the next reload, since the model
//! compares contents, not paths.

use std::fmt;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Secret bytes (an HMAC key): compared by content, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The material of one configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// A PEM public key (EdDSA, EC or RSA).
    Pem(Vec<u8>),
    /// One public JWK, as JSON.
    Jwk(String),
    /// An HMAC secret (from an environment variable or a file).
    Secret(Secret),
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The decoding key `material` makes for `alg`; the error says why it makes none.
pub(crate) fn decoding_key(alg: Algorithm, material: &KeyMaterial) -> Result<DecodingKey, String> {
    match material {
        KeyMaterial::Pem(pem) => match alg {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            _ if is_hmac(alg) => return Err("HMAC keys are secrets, not PEM files".to_owned()),
            _ => DecodingKey::from_rsa_pem(pem),
        }
        .map_err(|e| format!("not a {alg:?} public key in PEM: {e}")),
        KeyMaterial::Jwk(text) => {
            let jwk: Jwk = serde_json::from_str(text).map_err(|e| format!("not a JWK: {e}"))?;
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                return Err("holds a symmetric key; use secret_file for HMAC".to_owned());
            }
            DecodingKey::from_jwk(&jwk).map_err(|e| format!("not a usable JWK: {e}"))
        }
        KeyMaterial::Secret(secret) if is_hmac(alg) => {
            Ok(DecodingKey::from_secret(secret.expose()))
        }
        KeyMaterial::Secret(_) => Err(format!("{alg:?} needs a public key, not a secret")),
    }
}

/// Read a PEM key file.
pub(crate) fn read_pem(path: &Path) -> Result<KeyMaterial, String> {
    std::fs::read(path)
        .map(KeyMaterial::Pem)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Read a JWK file.
pub(crate) fn read_jwk(path: &Path) -> Result<KeyMaterial, String> {
    std::fs::read_to_string(path)
        .map(KeyMaterial::Jwk)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Read an HMAC secret from a file (surrounding whitespace trimmed).
pub(crate) fn read_secret_file(path: &Path) -> Result<KeyMaterial, String> {
    std::fs::read(path)
        .map(|bytes| KeyMaterial::Secret(Secret(bytes.trim_ascii().to_vec())))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Read an HMAC secret from an environment variable.
pub(crate) fn read_secret_env(name: &str) -> Result<KeyMaterial, String> {
    std::env::var(name)
        .map(|value| KeyMaterial::Secret(Secret(value.into_bytes())))
        .map_err(|_| format!("environment variable {name} is not set"))
}

/// A secret given directly (tests and fuzzing).
pub(crate) fn secret(bytes: &[u8]) -> KeyMaterial {
    KeyMaterial::Secret(Secret(bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_never_print() {
        let a = secret(b"one");
        assert_eq!(a, secret(b"one"));
        assert_ne!(a, secret(b"two"));
        assert_eq!(format!("{a:?}"), "Secret(Secret(3 bytes))");
    }

    #[test]
    fn material_is_checked_against_its_algorithm() {
        assert!(decoding_key(Algorithm::HS256, &secret(b"s")).is_ok());
        assert!(decoding_key(Algorithm::EdDSA, &secret(b"s")).is_err());
        assert!(decoding_key(Algorithm::EdDSA, &KeyMaterial::Pem(b"junk".to_vec())).is_err());
        let symmetric = r#"{"kty":"oct","k":"c2VjcmV0"}"#.to_owned();
        let err = decoding_key(Algorithm::HS256, &KeyMaterial::Jwk(symmetric)).unwrap_err();
        assert!(err.contains("symmetric"), "{err}");
    }
}
