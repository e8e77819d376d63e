//! The verified-token cache.

use quick_cache::sync::Cache;

use super::Verified;

/// Recently verified tokens, so a client sending the same token again does not pay for a
/// signature check each time (an Ed25519 or ECDSA verification costs tens of microseconds;
/// the lookup, well under one). Keyed by the exact token bytes: the same bytes verify the
/// same way until `exp`, under the same keys.
///
/// Each entry expires with its token (`exp`) and counts only under the key-set generation
/// it was verified with, so a verification that raced a key removal cannot keep vouching
/// for its token. The map is a bounded concurrent cache (`quick_cache`, S3-FIFO eviction):
/// a flood of distinct tokens evicts the coldest entries, never the whole cache.
pub(super) struct VerifiedCache {
    entries: Cache<String, (u64, Verified)>,
}

impl VerifiedCache {
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            entries: Cache::new(max_entries.max(1)),
        }
    }

    /// The entry for `token` if it is unexpired and was verified under `generation`.
    pub(super) fn get(&self, token: &str, now: u64, generation: u64) -> Option<Verified> {
        let (g, verified) = self.entries.get(token)?;
        if g != generation || verified.expires_at <= now {
            self.entries.remove(token);
            return None;
        }
        Some(verified)
    }

    pub(super) fn put(&self, token: &str, verified: &Verified, generation: u64) {
        self.entries
            .insert(token.to_owned(), (generation, verified.clone()));
    }

    pub(super) fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(expires_at: u64) -> Verified {
        Verified {
            subject: Some("alice".into()),
            headers: Vec::new(),
            expires_at,
        }
    }

    #[test]
    fn an_entry_counts_until_its_token_expires_under_its_generation() {
        let cache = VerifiedCache::new(10);
        cache.put("t", &verified(100), 7);

        assert!(cache.get("t", 99, 7).is_some());
        assert!(
            cache.get("t", 99, 8).is_none(),
            "another key-set generation"
        );
        cache.put("t", &verified(100), 7);
        assert!(cache.get("t", 100, 7).is_none(), "expired");
    }

    #[test]
    fn a_flood_of_tokens_stays_within_the_bound() {
        let cache = VerifiedCache::new(100);
        for i in 0..10_000 {
            cache.put(&format!("token-{i}"), &verified(u64::MAX), 0);
        }
        assert!(
            cache.entries.len() <= 100,
            "{} entries",
            cache.entries.len()
        );
    }
}
