//! The verified-token cache.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Verified;

/// Recently verified tokens, so a client sending the same token again does not pay for a
/// signature check each time (an Ed25519 or ECDSA verification costs tens of microseconds;
/// the lookup, well under one). Keyed by the exact token bytes: the same bytes verify the
/// same way until `exp`, under the same keys. Each entry carries the key-set generation it
/// was verified under and counts only while that generation is current, so a verification
/// that raced a key removal cannot keep vouching for its token. Bounded in size.
pub(super) struct VerifiedCache {
    shards: Vec<Mutex<HashMap<String, (u64, Verified)>>>,
    max_per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

const CACHE_SHARDS: usize = 16;

impl VerifiedCache {
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::default()).collect(),
            max_per_shard: (max_entries / CACHE_SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<HashMap<String, (u64, Verified)>> {
        use std::hash::BuildHasher as _;
        let i = usize::try_from(self.hasher.hash_one(token) % CACHE_SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// The entry for `token` if it is unexpired and was verified under `generation`.
    pub(super) fn get(&self, token: &str, now: u64, generation: u64) -> Option<Verified> {
        let map = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        map.get(token)
            .filter(|(g, v)| *g == generation && v.expires_at > now)
            .map(|(_, v)| v.clone())
    }

    pub(super) fn put(&self, token: &str, verified: &Verified, now: u64, generation: u64) {
        let mut map = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max_per_shard {
            map.retain(|_, (_, v)| v.expires_at > now);
            if map.len() >= self.max_per_shard {
                map.clear();
            }
        }
        map.insert(token.to_owned(), (generation, verified.clone()));
    }

    pub(super) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}
