//! Cache-aside for the first page of a user's todos, in Redis.
//!
//! The cache key carries a per-user version number that every write bumps *after* its
//! database change is committed. A reader that raced a write and fills the cache with an
//! old list fills it under the old version, which no later reader asks for: the naive
//! get-miss-query-set sequence cannot re-fill a stale list after an invalidation.
//! Writers that report completion (PATCH, DELETE, a job marked done) do so only after the
//! bump, so a client never sees a list older than its own completed write.
//!
//! Redis errors never fail a read: the page is served from PostgreSQL and the error shows
//! in logs and in `cache_operations_total{result="error"}`.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;

use redis::AsyncCommands as _;
use uuid::Uuid;

use crate::redis_handle::RedisHandle;

/// The end of a page key, after `<prefix>todos:<user>:v<version>`.
const PAGE_SUFFIX: &str = ":first";

/// Reads the version and the page stored under it in one round trip (the page key depends
/// on the version). KEYS[1]: the version key; ARGV: the page key around the version.
/// Returns `{version or nil, page or nil}`.
static READ_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local version = redis.call('GET', KEYS[1])
return {version or false, redis.call('GET', ARGV[1] .. (version or '0') .. ARGV[2]) or false}
",
    )
});

pub(crate) struct TodoCache {
    pub(crate) redis: RedisHandle,
    pub(crate) prefix: String,
    pub(crate) ttl: Duration,
}

/// A version read, to be used for the fill that follows a miss.
pub(crate) type Version = u64;

impl TodoCache {
    /// A TTL of zero turns list caching off (every read goes to PostgreSQL); writes still
    /// bump versions, so turning it back on never serves a page from before.
    pub(crate) fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn version_key(&self, user: Uuid) -> String {
        format!("{}todos:{user}:version", self.prefix)
    }

    /// A page key up to its version: `<prefix>todos:<user>:v`.
    fn page_prefix(&self, user: Uuid) -> String {
        format!("{}todos:{user}:v", self.prefix)
    }

    fn page_key(&self, user: Uuid, version: Version) -> String {
        format!("{}{version}{PAGE_SUFFIX}", self.page_prefix(user))
    }

    /// The cached page (its JSON, as the reply's body) and the version it was looked up
    /// under, in one round trip.
    pub(crate) async fn get(
        &self,
        user: Uuid,
    ) -> Result<(Option<Bytes>, Version), redis::RedisError> {
        let vkey = self.version_key(user);
        let page_prefix = self.page_prefix(user);
        let (version, cached): (Option<u64>, Option<Vec<u8>>) = self
            .redis
            .run(|mut c| async move {
                READ_SCRIPT
                    .key(vkey)
                    .arg(page_prefix)
                    .arg(PAGE_SUFFIX)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok((cached.map(Bytes::from), version.unwrap_or(0)))
    }

    /// Cache `page`, already serialized as the reply's JSON.
    pub(crate) async fn put(
        &self,
        user: Uuid,
        version: Version,
        page: Bytes,
    ) -> Result<(), redis::RedisError> {
        let key = self.page_key(user, version);
        let ttl = self.ttl.as_secs().max(1);
        self.redis
            .run(|mut c| async move { c.set_ex(key, page.as_ref(), ttl).await })
            .await
    }

    /// Invalidate every cached page of each of `users` (call after the write is committed),
    /// in one round trip.
    pub(crate) async fn bump_all(&self, users: &[Uuid]) -> Result<(), redis::RedisError> {
        let mut pipe = redis::pipe();
        for user in users {
            pipe.incr(self.version_key(*user), 1).ignore();
        }
        self.redis
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await
    }
}
