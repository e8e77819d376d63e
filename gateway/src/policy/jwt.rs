//! Bearer-token verification against keys from a JWKS endpoint and/or the config.
//!
//! Every key is pinned to one algorithm: a token is only tried against keys whose algorithm
//! equals the token's `alg`, so `alg: none` (not an algorithm jsonwebtoken knows) and
//! algorithm confusion (an HS256 token "signed" with a public key as the secret) find no key.
//! HMAC keys are accepted only from the config, never from a JWKS document.
//!
//! JWKS keys are fetched at start-up, on `refresh_interval`, and when a token names an unknown
//! `kid` (one fetch at a time, at most one per `min_refresh_interval`). A failed fetch keeps
//! the last good keys.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::{JwksSource, JwtConfig, KeySource};
use crate::metrics;
use crate::upstream::Pool;

/// A public key (or configured secret) pinned to one algorithm.
#[derive(Clone)]
pub(crate) struct Key {
    alg: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
    /// What the key was made from (the JWK's JSON, or the config entry), to tell whether a
    /// refreshed set differs from the current one.
    origin: String,
}

/// What a verified token contributes to the request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Verified {
    pub(crate) subject: Option<String>,
    /// Claims copied into upstream headers (`jwt.forward_claims`).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The token's `exp`, in seconds since the epoch.
    expires_at: u64,
}

/// Recently verified tokens, so a client sending the same token again does not pay for a
/// signature check each time (an Ed25519 or ECDSA verification costs tens of microseconds;
/// the lookup, well under one). Keyed by the exact token bytes: the same bytes verify the
/// same way until `exp`, under the same keys. Each entry carries the key-set generation it
/// was verified under and counts only while that generation is current, so a verification
/// that raced a key removal cannot keep vouching for its token. Bounded in size.
struct VerifiedCache {
    shards: Vec<std::sync::Mutex<std::collections::HashMap<String, (u64, Verified)>>>,
    max_per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

const CACHE_SHARDS: usize = 16;

impl VerifiedCache {
    fn new(max_entries: usize) -> Self {
        Self {
            shards: (0..CACHE_SHARDS)
                .map(|_| std::sync::Mutex::default())
                .collect(),
            max_per_shard: (max_entries / CACHE_SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(
        &self,
        token: &str,
    ) -> &std::sync::Mutex<std::collections::HashMap<String, (u64, Verified)>> {
        use std::hash::BuildHasher as _;
        let i = usize::try_from(self.hasher.hash_one(token) % CACHE_SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// The entry for `token` if it is unexpired and was verified under `generation`.
    fn get(&self, token: &str, now: u64, generation: u64) -> Option<Verified> {
        let map = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        map.get(token)
            .filter(|(g, v)| *g == generation && v.expires_at > now)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, token: &str, verified: &Verified, now: u64, generation: u64) {
        let mut map = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max_per_shard {
            map.retain(|_, (_, v)| v.expires_at > now);
            if map.len() >= self.max_per_shard {
                map.clear();
            }
        }
        map.insert(token.to_owned(), (generation, verified.clone()));
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parse a PEM public key for `alg`; also used by config validation.
pub(crate) fn decoding_key_from_pem(
    alg: Algorithm,
    pem: &[u8],
) -> jsonwebtoken::errors::Result<DecodingKey> {
    match alg {
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into())
        }
    }
}

/// Read a configured public key file (PEM or one JWK in JSON) for `alg`.
pub(crate) fn load_public_key(alg: Algorithm, source: &KeySource) -> Result<DecodingKey, String> {
    match source {
        KeySource::PemFile(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            decoding_key_from_pem(alg, &pem)
                .map_err(|e| format!("{} is not a {alg:?} public key in PEM: {e}", path.display()))
        }
        KeySource::JwkFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a JWK: {e}", path.display()))?;
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                return Err(format!(
                    "{} holds a symmetric key; use secret_file for HMAC",
                    path.display()
                ));
            }
            DecodingKey::from_jwk(&jwk)
                .map_err(|e| format!("{} is not a usable JWK: {e}", path.display()))
        }
        KeySource::SecretEnv(_) | KeySource::SecretFile(_) => Err("not a public key".to_owned()),
    }
}

pub(crate) struct Verifier {
    config: JwtConfig,
    static_keys: Vec<Key>,
    /// The last good key set from the JWKS endpoint.
    jwks_keys: ArcSwap<Vec<Key>>,
    /// Serializes JWKS fetches (single flight) and remembers when the last one started.
    fetch_gate: tokio::sync::Mutex<Option<Instant>>,
    client: reqwest::Client,
    /// For `JwksSource::Pool`: the pool to fetch from. A reload that replaces the pool (its
    /// settings changed) points a kept verifier at the successor.
    jwks_pool: arc_swap::ArcSwapOption<Pool>,
    /// Bumped after every change of the key set; cached verifications of older generations
    /// no longer count.
    key_generation: std::sync::atomic::AtomicU64,
    /// Set when a reload replaces this verifier, to end its refresh timer.
    retired: tokio::sync::watch::Sender<bool>,
    /// Tokens verified recently (see `VerifiedCache`).
    cache: VerifiedCache,
}

impl Verifier {
    /// Load the configured keys (HMAC secrets are read from the environment or files now).
    pub(crate) fn new(config: &JwtConfig, jwks_pool: Option<Arc<Pool>>) -> Result<Self, String> {
        let mut static_keys = Vec::new();
        for k in &config.keys {
            let key = match &k.source {
                KeySource::PemFile(_) | KeySource::JwkFile(_) => load_public_key(k.alg, &k.source)?,
                KeySource::SecretEnv(name) => {
                    let secret = std::env::var(name)
                        .map_err(|_| format!("environment variable {name} is not set"))?;
                    DecodingKey::from_secret(secret.as_bytes())
                }
                KeySource::SecretFile(path) => {
                    let secret = std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    DecodingKey::from_secret(secret.trim_ascii())
                }
            };
            static_keys.push(Key {
                alg: k.alg,
                kid: k.kid.clone(),
                key,
                origin: format!("config:{:?}", k.source),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(
                config
                    .jwks
                    .as_ref()
                    .map_or(std::time::Duration::from_secs(2), |j| j.timeout),
            )
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(Self {
            config: config.clone(),
            static_keys,
            jwks_keys: ArcSwap::from_pointee(Vec::new()),
            fetch_gate: tokio::sync::Mutex::new(None),
            client,
            jwks_pool: arc_swap::ArcSwapOption::new(jwks_pool),
            key_generation: std::sync::atomic::AtomicU64::new(0),
            retired: tokio::sync::watch::channel(false).0,
            cache: VerifiedCache::new(100_000),
        })
    }

    pub(crate) fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// A verifier with one static HS256 key (`secret`) and fixed claims rules, for the fuzz
    /// targets and property tests: they sign arbitrary claims with the secret and feed
    /// arbitrary tokens through the real checks.
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
            keys: Vec::new(),
            verification_limit: None,
        };
        let mut verifier = Self::new(&config, None).unwrap_or_else(|e| unreachable!("{e}"));
        verifier.static_keys.push(Key {
            alg: Algorithm::HS256,
            kid: None,
            key: DecodingKey::from_secret(secret),
            origin: "fuzzing".to_owned(),
        });
        verifier
    }

    /// Fetch JWKS documents from `pool` from now on (a reload replaced the pool).
    pub(crate) fn set_jwks_pool(&self, pool: Option<Arc<Pool>>) {
        self.jwks_pool.store(pool);
    }

    /// Start with the keys `previous` last fetched, when both fetch from the same place:
    /// a verifier rebuilt by a reload must not refuse every token until its first fetch.
    pub(crate) fn inherit_keys(&self, previous: &Verifier) {
        let keys = previous.jwks_keys.load_full();
        if !keys.is_empty() {
            self.jwks_keys.store(keys);
            self.key_generation
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
    }

    /// False while a configured JWKS has not been fetched once: every token would fail
    /// until then, so `/readyz` waits for it.
    pub(crate) fn has_jwks_keys(&self) -> bool {
        self.config.jwks.is_none() || !self.jwks_keys.load().is_empty()
    }

    /// End the refresh timer (a reload replaced this verifier).
    pub(crate) fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// Verify `token`. The error is a short reason for logs, never shown to clients.
    /// A verification of `token` under the current keys, if one is cached: free to ask,
    /// which is why per-client verification limits apply only past this point.
    pub(crate) fn cached(&self, token: &str) -> Option<Verified> {
        let generation = self
            .key_generation
            .load(std::sync::atomic::Ordering::Acquire);
        self.cache.get(token, unix_now(), generation)
    }

    /// Check the signature and claims of `token` and cache the result.
    pub(crate) async fn verify_uncached(&self, token: &str) -> Result<Verified, &'static str> {
        // Read before the keys: if they change meanwhile, the entry is of an old generation.
        let generation = self
            .key_generation
            .load(std::sync::atomic::Ordering::Acquire);
        let verified = self.check(token).await?;
        self.cache.put(token, &verified, unix_now(), generation);
        Ok(verified)
    }

    async fn check(&self, token: &str) -> Result<Verified, &'static str> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token or unsupported alg")?;
        if let Some(verified) = self.try_keys(token, header.alg, header.kid.as_deref())? {
            return Ok(verified);
        }
        let unknown_kid = header
            .kid
            .as_deref()
            .is_some_and(|kid| !self.knows_kid(kid));
        if unknown_kid && self.config.jwks.is_some() {
            self.refresh(true).await;
            if let Some(verified) = self.try_keys(token, header.alg, header.kid.as_deref())? {
                return Ok(verified);
            }
        }
        Err("no key verifies this token")
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

    /// Fetch the JWKS now. With `on_demand`, skip if a fetch started within the cooldown.
    /// Concurrent callers wait for the fetch in progress instead of starting their own.
    pub(crate) async fn refresh(&self, on_demand: bool) -> bool {
        let Some(jwks) = &self.config.jwks else {
            return false;
        };
        let mut last = self.fetch_gate.lock().await;
        if on_demand && last.is_some_and(|t| t.elapsed() < jwks.min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch(&jwks.source).await {
            Ok(keys) => {
                let changed = !same_keys(&self.jwks_keys.load(), &keys);
                tracing::info!(keys = keys.len(), changed, on_demand, "JWKS refreshed");
                if changed {
                    self.jwks_keys.store(Arc::new(keys));
                    // A key that left the set must stop vouching for tokens at once: entries
                    // of older generations no longer count, and are dropped to free memory.
                    // An unchanged set keeps the cache (tokens verified before stay free).
                    self.key_generation
                        .fetch_add(1, std::sync::atomic::Ordering::Release);
                    self.cache.clear();
                }
                metrics::JWKS_REFRESHES.with_label_values(&["ok"]).inc();
                true
            }
            Err(error) => {
                tracing::warn!(
                    error,
                    on_demand,
                    "JWKS refresh failed; keeping the last good keys"
                );
                metrics::JWKS_REFRESHES.with_label_values(&["error"]).inc();
                false
            }
        }
    }

    async fn fetch(&self, source: &JwksSource) -> Result<Vec<Key>, String> {
        let url = match source {
            JwksSource::Url(url) => url.clone(),
            JwksSource::Pool { path, .. } => {
                let pool = self.jwks_pool.load_full().ok_or("JWKS pool is missing")?;
                let addr = pool
                    .select(b"", &[])
                    .ok_or("JWKS pool has no healthy endpoint")?;
                format!("http://{addr}{path}")
            }
        };
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: status {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("GET {url}: larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body).map_err(|e| format!("GET {url}: {e}"))
    }

    /// Fetch at start (retrying each second until it works), then every `refresh_interval`.
    pub(crate) async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(jwks) = self.config.jwks.clone() else {
            return;
        };
        let mut retired = self.retired.subscribe();
        loop {
            let ok = self.refresh(false).await;
            let wait = if ok || !self.jwks_keys.load().is_empty() {
                jwks.refresh_interval
            } else {
                std::time::Duration::from_secs(1)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
                _ = retired.changed() => return,
            }
        }
    }
}

/// Whether two key sets hold the same keys (in any order).
fn same_keys(a: &[Key], b: &[Key]) -> bool {
    fn origins(keys: &[Key]) -> Vec<&str> {
        let mut o: Vec<&str> = keys.iter().map(|k| k.origin.as_str()).collect();
        o.sort_unstable();
        o
    }
    origins(a) == origins(b)
}

/// A JWKS document larger than this is refused (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"unit-test-secret";

    fn token(claims: &serde_json::Value) -> String {
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

    #[tokio::test]
    async fn a_cached_verification_stops_counting_when_the_key_set_changes() {
        // Arrange: a token verified (and cached) under the current keys.
        let verifier = Verifier::for_fuzzing(SECRET);
        let t = token(&claims());
        assert!(verifier.verify_uncached(&t).await.is_ok());
        assert!(verifier.cached(&t).is_some());

        // Act: the key set changes (a refresh or an inherited set bumps the generation).
        verifier
            .key_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);

        // Assert: the cached verdict no longer counts; the token must be checked again.
        assert!(verifier.cached(&t).is_none());
    }

    #[tokio::test]
    async fn a_verification_racing_a_key_change_is_cached_under_the_old_generation() {
        let verifier = Verifier::for_fuzzing(SECRET);
        let t = token(&claims());
        let before = verifier
            .key_generation
            .load(std::sync::atomic::Ordering::Acquire);
        let verified = verifier.check(&t).await.unwrap();

        // The keys change between the check and the cache write.
        verifier
            .key_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        verifier.cache.put(&t, &verified, unix_now(), before);

        assert!(verifier.cached(&t).is_none());
    }

    #[tokio::test]
    async fn claims_are_checked_and_forwarded() {
        let verifier = Verifier::for_fuzzing(SECRET);
        let mut c = claims();
        c["org"] = 42.into();

        let ok = verifier.verify_uncached(&token(&c)).await.unwrap();
        c["iss"] = "someone-else".into();
        let wrong_issuer = verifier.verify_uncached(&token(&c)).await;

        assert_eq!(ok.subject.as_deref(), Some("alice"));
        assert!(ok.headers.iter().any(|(n, v)| n == "x-org" && v == "42"));
        assert_eq!(wrong_issuer.unwrap_err(), "wrong issuer");
    }

    #[test]
    fn a_refetched_set_with_the_same_keys_in_another_order_is_unchanged() {
        let a = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"},{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k2"}]}"#;
        let b = br#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k2"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#;
        let only_k1 = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#;
        let (a, b, k1) = (
            parse_jwks(a).unwrap(),
            parse_jwks(b).unwrap(),
            parse_jwks(only_k1).unwrap(),
        );

        assert!(same_keys(&a, &b), "an unchanged set keeps the token cache");
        assert!(!same_keys(&a, &k1), "a removed key is a change");
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
        let ed25519 = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#;
        assert_eq!(parse_jwks(ed25519).map(|k| k.len()), Ok(1));
    }
}
