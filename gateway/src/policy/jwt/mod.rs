//! Bearer-token verification: a pure [`Verifier`] (rules and keys in, verified claims out)
//! and a [`jwks::JwksRefresher`] that fetches JWKS documents and installs their keys.
//!
//! Every key is pinned to one algorithm: a token is only tried against keys whose algorithm
//! equals the token's `alg`, so `alg: none` (not an algorithm jsonwebtoken knows) and
//! algorithm confusion (an HS256 token "signed" with a public key as the secret) find no key.
//! HMAC keys are accepted only from the config, never from a JWKS document.
//!
//! # Layout
//! - `keys`: keys pinned to an algorithm; parsing a JWKS document.
//! - `cache`: verified tokens, tagged with the key-set generation.
//! - `jwks`: fetching (at start-up, on `refresh_interval`, on an unknown `kid`) through a
//!   narrow [`jwks::EndpointPicker`]; a failed fetch keeps the last good keys.

mod cache;
pub(crate) mod jwks;
mod keys;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, Validation};

use crate::config::JwtConfig;
use cache::VerifiedCache;
pub(crate) use keys::{parse_jwks, Key};

/// What a verified token contributes to the request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Verified {
    pub(crate) subject: Option<String>,
    /// Claims copied into upstream headers (`jwt.forward_claims`).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The token's `exp`, in seconds since the epoch.
    expires_at: u64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// It names a key id no key has: a JWKS refresh may find it.
    UnknownKid,
    /// Anything else; a short reason for logs, never shown to clients.
    Invalid(&'static str),
}

impl Rejected {
    /// The reason for logs.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::UnknownKid => "no key verifies this token (unknown kid)",
            Self::Invalid(reason) => reason,
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks tokens against the configured rules, the config's keys and the last JWK set
/// installed. Does no I/O.
pub(crate) struct Verifier {
    config: JwtConfig,
    static_keys: Vec<Key>,
    /// The last good key set from the JWKS endpoint (installed by the refresher).
    jwks_keys: ArcSwap<Vec<Key>>,
    /// Bumped after every change of the key set; cached verifications of older generations
    /// no longer count.
    key_generation: AtomicU64,
    /// Tokens verified recently (see `cache`).
    cache: VerifiedCache,
}

impl Verifier {
    /// A verifier for `config`; its keys' material was read and checked at validation.
    pub(crate) fn new(config: &JwtConfig) -> Self {
        Self {
            config: config.clone(),
            static_keys: config.keys.iter().filter_map(Key::from_config).collect(),
            jwks_keys: ArcSwap::from_pointee(Vec::new()),
            key_generation: AtomicU64::new(0),
            cache: VerifiedCache::new(100_000),
        }
    }

    pub(crate) fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// A verifier with one static HS256 key (`secret`) and fixed claims rules, for the fuzz
    /// targets and tests: they sign arbitrary claims with the secret and feed arbitrary
    /// tokens through the real checks.
    pub(crate) fn for_fuzzing(secret: &[u8]) -> Self {
        let config = JwtConfig {
            issuers: vec!["fuzz-issuer".to_owned()],
            audiences: vec!["fuzz-api".to_owned()],
            leeway: std::time::Duration::from_secs(30),
            required_claims: vec!["sub".to_owned()],
            forward_claims: vec![
                ("sub".to_owned(), HeaderName::from_static("x-user-id")),
                ("org".to_owned(), HeaderName::from_static("x-org")),
            ],
            jwks: None,
            keys: vec![crate::config::StaticKey {
                alg: Algorithm::HS256,
                kid: None,
                material: crate::config::secret(secret),
            }],
            verification_limit: None,
        };
        Self::new(&config)
    }

    /// Install a freshly fetched key set. Returns whether it differs from the current one;
    /// only then are cached verifications dropped (a key that left the set must stop
    /// vouching for tokens at once, while an unchanged set keeps them free).
    pub(crate) fn install_jwks(&self, keys: Vec<Key>) -> bool {
        if keys::same_keys(&self.jwks_keys.load(), &keys) {
            return false;
        }
        self.jwks_keys.store(Arc::new(keys));
        self.key_generation.fetch_add(1, Ordering::Release);
        self.cache.clear();
        true
    }

    /// Start with the keys `previous` last installed, when both fetch from the same place:
    /// a verifier rebuilt by a reload must not refuse every token until its first fetch.
    pub(crate) fn inherit_keys(&self, previous: &Verifier) {
        let keys = previous.jwks_keys.load_full();
        if !keys.is_empty() {
            self.jwks_keys.store(keys);
            self.key_generation.fetch_add(1, Ordering::Release);
        }
    }

    /// False while a configured JWKS has not been installed once: every token would fail
    /// until then, so `/readyz` waits for it.
    pub(crate) fn has_jwks_keys(&self) -> bool {
        self.config.jwks.is_none() || !self.jwks_keys.load().is_empty()
    }

    /// A verification of `token` under the current keys, if one is cached: free to ask,
    /// which is why per-client verification limits apply only past this point.
    pub(crate) fn cached(&self, token: &str) -> Option<Verified> {
        let generation = self.key_generation.load(Ordering::Acquire);
        self.cache.get(token, unix_now(), generation)
    }

    /// Check the signature and claims of `token`, and cache an accepted one.
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, Rejected> {
        // Read before the keys: if they change meanwhile, the entry is of an old generation.
        let generation = self.key_generation.load(Ordering::Acquire);
        let verified = self.check(token)?;
        self.cache.put(token, &verified, generation);
        Ok(verified)
    }

    fn check(&self, token: &str) -> Result<Verified, Rejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Rejected::Invalid("malformed token or unsupported alg"))?;
        if let Some(verified) = self
            .try_keys(token, header.alg, header.kid.as_deref())
            .map_err(Rejected::Invalid)?
        {
            return Ok(verified);
        }
        let unknown_kid = header
            .kid
            .as_deref()
            .is_some_and(|kid| !self.knows_kid(kid));
        if unknown_kid && self.config.jwks.is_some() {
            return Err(Rejected::UnknownKid);
        }
        Err(Rejected::Invalid("no key verifies this token"))
    }

    fn knows_kid(&self, kid: &str) -> bool {
        let jwks = self.jwks_keys.load();
        self.static_keys
            .iter()
            .chain(jwks.iter())
            .any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Try every key pinned to `alg` (and matching `kid` when both have one). `Ok(None)` when
    /// no key's signature matches; `Err` when a key matched but the claims are unacceptable.
    fn try_keys(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Option<Verified>, &'static str> {
        let jwks = self.jwks_keys.load();
        let candidates = self.static_keys.iter().chain(jwks.iter()).filter(|k| {
            k.alg == alg && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        });
        let validation = self.validation(alg);
        for key in candidates {
            use jsonwebtoken::errors::ErrorKind;
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => return self.accept(&data.claims).map(Some),
                Err(e) => match e.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidRsaKey(_) => {}
                    ErrorKind::ExpiredSignature => return Err("expired"),
                    ErrorKind::ImmatureSignature => return Err("not yet valid (nbf)"),
                    ErrorKind::InvalidIssuer => return Err("wrong issuer"),
                    ErrorKind::InvalidAudience => return Err("wrong audience"),
                    ErrorKind::MissingRequiredClaim(_) => return Err("missing required claim"),
                    _ => return Err("invalid token"),
                },
            }
        }
        Ok(None)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.config.leeway.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&self.config.issuers);
        v.set_audience(&self.config.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    fn accept(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Verified, &'static str> {
        if self
            .config
            .required_claims
            .iter()
            .any(|c| !claims.contains_key(c))
        {
            return Err("missing required claim");
        }
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let headers = self
            .config
            .forward_claims
            .iter()
            .filter_map(|(claim, header)| {
                let value = HeaderValue::from_str(&text(claims.get(claim)?)).ok()?;
                Some((header.clone(), value))
            })
            .collect();
        Ok(Verified {
            subject: claims.get("sub").map(text),
            headers,
            expires_at: claims
                .get("exp")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;

    use super::*;
    use crate::config::{JwksConfig, JwksSource};

    const SECRET: &[u8] = b"unit-test-secret";

    fn hs256(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "sub": "alice", "iss": "fuzz-issuer", "aud": "fuzz-api", "exp": unix_now() + 300,
        })
    }

    /// An Ed25519 signing key with its public JWK, as a JWKS would publish it.
    struct Signer {
        kid: String,
        key: jsonwebtoken::EncodingKey,
        jwk: serde_json::Value,
    }

    impl Signer {
        fn new(kid: &str) -> Self {
            let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap();
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(key.verifying_key().to_bytes());
            Self {
                kid: kid.to_owned(),
                key: jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
                jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}),
            }
        }

        fn sign(&self, claims: &serde_json::Value) -> String {
            let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &self.key).unwrap()
        }
    }

    fn jwks(signers: &[&Signer]) -> Vec<Key> {
        let set =
            serde_json::json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()});
        parse_jwks(set.to_string().as_bytes()).unwrap()
    }

    /// A verifier whose keys come from a JWKS (installed by hand here).
    fn jwks_verifier() -> Verifier {
        let mut config = Verifier::for_fuzzing(SECRET).config().clone();
        config.keys.clear();
        config.jwks = Some(JwksConfig {
            source: JwksSource::Url("http://127.0.0.1:9/jwks".to_owned()),
            refresh_interval: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
        });
        Verifier::new(&config)
    }

    #[test]
    fn claims_are_checked_and_forwarded() {
        let verifier = Verifier::for_fuzzing(SECRET);
        let mut c = claims();
        c["org"] = 42.into();

        let ok = verifier.verify(&hs256(&c)).unwrap();
        c["iss"] = "someone-else".into();
        let wrong_issuer = verifier.verify(&hs256(&c));
        let expired = verifier.verify(&hs256(&serde_json::json!({
            "sub": "a", "iss": "fuzz-issuer", "aud": "fuzz-api", "exp": unix_now() - 600,
        })));

        assert_eq!(ok.subject.as_deref(), Some("alice"));
        assert!(ok.headers.iter().any(|(n, v)| n == "x-org" && v == "42"));
        assert_eq!(wrong_issuer.unwrap_err(), Rejected::Invalid("wrong issuer"));
        assert_eq!(expired.unwrap_err(), Rejected::Invalid("expired"));
    }

    #[test]
    fn a_token_is_tried_only_against_keys_of_its_own_algorithm() {
        // Arrange: an HS256 verifier, and a token "signed" with alg none.
        let verifier = Verifier::for_fuzzing(SECRET);
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims().to_string());

        // Act
        let unsigned = verifier.verify(&format!("{header}.{body}."));

        // Assert
        assert!(matches!(unsigned, Err(Rejected::Invalid(_))));
    }

    #[test]
    fn a_rotated_key_set_verifies_new_tokens_and_stops_vouching_for_old_ones() {
        // Arrange: tokens of key k1 verify (and are cached).
        let verifier = jwks_verifier();
        let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
        assert!(verifier.install_jwks(jwks(&[&k1])));
        let old = k1.sign(&claims());
        assert!(verifier.verify(&old).is_ok());
        assert!(verifier.cached(&old).is_some());

        // Act: the issuer rotates to k2 and drops k1.
        let changed = verifier.install_jwks(jwks(&[&k2]));

        // Assert
        assert!(changed);
        assert!(
            verifier.cached(&old).is_none(),
            "the cache no longer vouches for k1"
        );
        assert_eq!(verifier.verify(&old).unwrap_err(), Rejected::UnknownKid);
        assert!(verifier.verify(&k2.sign(&claims())).is_ok());
    }

    #[test]
    fn an_unchanged_key_set_keeps_cached_tokens() {
        let verifier = jwks_verifier();
        let k1 = Signer::new("k1");
        verifier.install_jwks(jwks(&[&k1]));
        let token = k1.sign(&claims());
        verifier.verify(&token).unwrap();

        assert!(!verifier.install_jwks(jwks(&[&k1])), "the same set again");
        assert!(verifier.cached(&token).is_some());
    }

    #[test]
    fn an_unknown_kid_asks_for_a_refresh_only_where_a_jwks_is_configured() {
        let with_jwks = jwks_verifier();
        with_jwks.install_jwks(jwks(&[&Signer::new("k1")]));
        let stranger = Signer::new("k9").sign(&claims());

        assert_eq!(
            with_jwks.verify(&stranger).unwrap_err(),
            Rejected::UnknownKid
        );
        assert!(matches!(
            Verifier::for_fuzzing(SECRET).verify(&stranger),
            Err(Rejected::Invalid(_))
        ));
    }

    #[test]
    fn a_rebuilt_verifier_starts_with_the_keys_of_the_one_it_replaces() {
        let old = jwks_verifier();
        let k1 = Signer::new("k1");
        old.install_jwks(jwks(&[&k1]));
        let new = jwks_verifier();
        assert!(!new.has_jwks_keys());

        new.inherit_keys(&old);

        assert!(new.has_jwks_keys());
        assert!(new.verify(&k1.sign(&claims())).is_ok());
    }

    #[test]
    fn a_cached_verification_stops_counting_when_the_key_set_changes() {
        let verifier = Verifier::for_fuzzing(SECRET);
        let t = hs256(&claims());
        assert!(verifier.verify(&t).is_ok());
        assert!(verifier.cached(&t).is_some());

        verifier.key_generation.fetch_add(1, Ordering::Release);

        assert!(verifier.cached(&t).is_none());
    }

    #[test]
    fn a_verification_racing_a_key_change_is_cached_under_the_old_generation() {
        let verifier = Verifier::for_fuzzing(SECRET);
        let t = hs256(&claims());
        let before = verifier.key_generation.load(Ordering::Acquire);
        let verified = verifier.check(&t).unwrap();

        // The keys change between the check and the cache write.
        verifier.key_generation.fetch_add(1, Ordering::Release);
        verifier.cache.put(&t, &verified, before);

        assert!(verifier.cached(&t).is_none());
    }

    #[test]
    fn a_refetched_set_with_the_same_keys_in_another_order_is_unchanged() {
        let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));

        assert!(keys::same_keys(&jwks(&[&k1, &k2]), &jwks(&[&k2, &k1])));
        assert!(!keys::same_keys(&jwks(&[&k1, &k2]), &jwks(&[&k1])));
    }

    #[test]
    fn an_empty_or_unusable_key_set_is_an_error_not_an_empty_set() {
        let hmac_only = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#;
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(
            parse_jwks(hmac_only).is_err(),
            "HMAC keys are never taken from a JWKS"
        );
        assert!(parse_jwks(b"<html>").is_err());
    }
}
