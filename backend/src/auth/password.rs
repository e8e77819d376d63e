//! Argon2id password hashes (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane).

use anyhow::Context as _;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::domain::Password;

/// Hash on a blocking thread: it takes tens of milliseconds by design.
pub async fn hash(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("Failed to hash a password: {e}"))
    })
    .await
    .context("Failed to join the hashing task")?
}

/// Check `password` against `stored`. With no stored hash (unknown user) a dummy hash is
/// checked anyway, so the answer takes as long whether the user exists or not.
pub async fn verify(password: Password, stored: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let dummy = dummy_hash();
        let known = stored.is_some();
        let text = stored.unwrap_or(dummy);
        let parsed = PasswordHash::new(&text)
            .map_err(|e| anyhow::anyhow!("Failed to parse a stored hash: {e}"))?;
        let matches = Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
    .context("Failed to join the verification task")?
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"not a real password", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}
