//! `jwt:`: issuers, audiences, claims, key sources and their material.

use std::path::Path;
use std::time::Duration;

use http::HeaderName;

use super::limits::check_rate_limit;
use super::{is_reserved_header, require_at_least, require_at_most, require_positive, Errors};
use crate::config::file::{JwtFile, RateLimitFile, ScopeFile};
use crate::config::keys;
use crate::config::{JwksConfig, JwksSource, JwtConfig, StaticKey};

/// Clock skew a token may have: more would keep expired tokens alive.
pub(super) const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Shortest time between two JWKS fetches triggered by unknown key ids: each request with a
/// made-up `kid` would otherwise cost a fetch.
pub(super) const MIN_JWKS_COOLDOWN: Duration = Duration::from_millis(100);

pub(super) fn check_jwt(
    errs: &mut Errors<'_>,
    j: JwtFile,
    pools: &[&str],
    base_dir: &Path,
) -> Option<JwtConfig> {
    errs.scoped(|errs| {
        // The user gave neither a JWKS nor keys (judged before the fields are taken apart).
        let no_source = j.jwks.is_none() && j.keys.is_empty();
        if j.issuers.is_empty() {
            errs.push("jwt.issuers", "must list at least one accepted issuer");
        }
        if j.audiences.is_empty() {
            errs.push("jwt.audiences", "must list at least one accepted audience");
        }
        require_at_most(errs, "jwt.leeway", j.leeway, MAX_LEEWAY);
        let mut forward_claims = Vec::new();
        for (claim, header) in &j.forward_claims {
            let (Some(claim), Some(header)) = (claim.as_str(), header.as_str()) else {
                errs.push("jwt.forward_claims", "expected claim: Header-Name pairs");
                continue;
            };
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(name) if is_reserved_header(&name) => errs.push(
                    format!("jwt.forward_claims.{claim}"),
                    format!(
                        "{header:?} is a framing, routing or forwarding header the gateway owns; \
                         name another header (e.g. X-User-Id)"
                    ),
                ),
                Ok(name) => forward_claims.push((claim.to_owned(), name)),
                Err(_) => errs.push(
                    format!("jwt.forward_claims.{claim}"),
                    format!("invalid header name {header:?}"),
                ),
            }
        }
        let verification_limit = j.verification_limit.and_then(|l| {
            check_rate_limit(
                errs,
                "jwt.verification_limit",
                &RateLimitFile {
                    key: "client_ip".to_owned(),
                    rate: l.rate,
                    per: l.per,
                    burst: l.burst,
                    scope: ScopeFile::Local,
                    fail_open: true,
                },
            )
        });
        let jwks = j.jwks.and_then(|k| {
            require_positive(errs, "jwt.jwks.refresh_interval", k.refresh_interval);
            require_positive(errs, "jwt.jwks.timeout", k.timeout);
            require_at_least(
                errs,
                "jwt.jwks.min_refresh_interval",
                k.min_refresh_interval,
                MIN_JWKS_COOLDOWN,
                "each unknown key id may trigger a fetch",
            );
            let source = match (k.url, k.pool, k.path) {
                (Some(url), None, None) if url.starts_with("http://") => Some(JwksSource::Url(url)),
                (Some(url), None, None) => {
                    errs.push(
                        "jwt.jwks.url",
                        format!("expected an http:// URL, got {url:?}"),
                    );
                    None
                }
                (None, Some(pool), path) => match pools.iter().position(|p| *p == pool) {
                    Some(index) => Some(JwksSource::Pool {
                        pool: index,
                        path: path.unwrap_or_else(|| "/.well-known/jwks.json".to_owned()),
                    }),
                    None => {
                        errs.push(
                            "jwt.jwks.pool",
                            format!("unknown pool {pool:?} (known: {})", pools.join(", ")),
                        );
                        None
                    }
                },
                _ => {
                    errs.push("jwt.jwks", "set either url, or pool (and optionally path)");
                    None
                }
            };
            source.map(|source| JwksConfig {
                source,
                refresh_interval: k.refresh_interval,
                min_refresh_interval: k.min_refresh_interval,
                timeout: k.timeout,
            })
        });
        let mut keys = Vec::new();
        for (i, k) in j.keys.into_iter().enumerate() {
            let at = |key: &str| format!("jwt.keys[{i}].{key}");
            let Ok(alg) = k.alg.parse::<jsonwebtoken::Algorithm>() else {
                errs.push(
                    at("alg"),
                    format!(
                        "unknown algorithm {:?}, expected e.g. EdDSA, ES256, RS256, PS256, HS256",
                        k.alg
                    ),
                );
                continue;
            };
            let hmac = matches!(
                alg,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            );
            let read = match (k.pem_file, k.jwk_file, k.secret_env, k.secret_file) {
                (Some(pem), None, None, None) if !hmac => {
                    Some(("pem_file", keys::read_pem(&base_dir.join(pem))))
                }
                (None, Some(jwk), None, None) if !hmac => {
                    Some(("jwk_file", keys::read_jwk(&base_dir.join(jwk))))
                }
                (None, None, Some(env), None) if hmac => {
                    Some(("secret_env", keys::read_secret_env(&env)))
                }
                (None, None, None, Some(file)) if hmac => {
                    Some(("secret_file", keys::read_secret_file(&base_dir.join(file))))
                }
                _ if hmac => {
                    errs.push(
                        at("alg"),
                        "HMAC keys need exactly one of secret_env or secret_file",
                    );
                    None
                }
                _ => {
                    errs.push(
                        at("alg"),
                        "public keys need exactly one of pem_file or jwk_file (and no secret)",
                    );
                    None
                }
            };
            // The material is read once, here, and checked to make a key of its algorithm.
            let material = read.and_then(|(key, result)| {
                match result.and_then(|m| keys::decoding_key(alg, &m).map(|_| m)) {
                    Ok(material) => Some(material),
                    Err(message) => {
                        errs.push(at(key), message);
                        None
                    }
                }
            });
            if let Some(material) = material {
                keys.push(StaticKey {
                    alg,
                    kid: k.kid,
                    material,
                });
            }
        }
        if no_source {
            errs.push("jwt", "needs jwks or keys to verify tokens with");
        }
        Some(JwtConfig {
            issuers: j.issuers,
            audiences: j.audiences,
            leeway: j.leeway,
            required_claims: j.required_claims,
            forward_claims,
            jwks,
            keys,
            verification_limit,
        })
    })
}
