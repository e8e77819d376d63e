//! Keys pinned to one algorithm, from the config or a JWKS document.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::config::StaticKey;

/// A public key (or configured secret) pinned to one algorithm.
#[derive(Clone)]
pub(crate) struct Key {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
    pub(super) key: DecodingKey,
    /// What the key was made from (the JWK's JSON, or the config entry), to tell whether a
    /// refreshed set differs from the current one.
    origin: String,
}

impl Key {
    /// The key a config entry describes (its material was checked at validation).
    pub(super) fn from_config(k: &StaticKey) -> Option<Self> {
        let key = crate::config::decoding_key(k.alg, &k.material).ok()?;
        Some(Self {
            alg: k.alg,
            kid: k.kid.clone(),
            key,
            origin: format!("config:{:?}:{:?}", k.alg, k.kid),
        })
    }
}

/// Whether two key sets hold the same keys (in any order).
pub(super) fn same_keys(a: &[Key], b: &[Key]) -> bool {
    fn origins(keys: &[Key]) -> Vec<&str> {
        let mut o: Vec<&str> = keys.iter().map(|k| k.origin.as_str()).collect();
        o.sort_unstable();
        o
    }
    origins(a) == origins(b)
}

/// A JWKS document larger than this is refused (real ones are a few KiB).
pub(super) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The usable keys of a JWKS document. A document that is not a JWK set, or that yields no
/// usable key, is an error: the last good keys must never be replaced by an empty set.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let keys = keys_from_jwks(&set);
    if keys.is_empty() {
        return Err(format!(
            "no usable public key among {} in the set",
            set.keys.len()
        ));
    }
    Ok(keys)
}

/// Public keys of a JWK set, each pinned to its declared or implied algorithm. Symmetric
/// keys are skipped: a published HMAC secret would let anyone mint tokens.
fn keys_from_jwks(set: &JwkSet) -> Vec<Key> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let implied = match &jwk.algorithm {
                AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => Some(Algorithm::ES256),
                    EllipticCurve::P384 => Some(Algorithm::ES384),
                    _ => None,
                },
                AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
                AlgorithmParameters::OctetKey(_) => return None,
            };
            let alg = match jwk.common.key_algorithm {
                Some(declared) => algorithm_of(declared)?,
                None => implied?,
            };
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return None;
            }
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key {
                alg,
                kid: jwk.common.key_id.clone(),
                key,
                origin: serde_json::to_string(jwk).unwrap_or_default(),
            })
        })
        .collect()
}

fn algorithm_of(k: KeyAlgorithm) -> Option<Algorithm> {
    Some(match k {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        _ => return None,
    })
}
