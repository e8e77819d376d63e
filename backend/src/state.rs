//! `AppState`: what every handler and worker shares, as plain data. Built once by
//! `startup::build_state`; nothing here does wiring.

use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::password::Hashing;
use crate::auth::tokens::TokenKeys;
use crate::config::Settings;
use crate::jobs::queue::Queue;
use crate::metrics::Metrics;
use crate::redis_handle::RedisHandle;
use crate::todos::cache::TodoCache;

/// Everything a request or a worker needs; shared by all of them.
pub struct AppState {
    pub settings: Settings,
    /// PostgreSQL; the only way to the database.
    pub db: PgPool,
    /// The shared Redis connection (cache, enqueue, acks).
    pub redis: RedisHandle,
    /// Signs and verifies access tokens; published as the JWKS.
    pub tokens: TokenKeys,
    /// Bounds concurrent argon2 work (a flood must not take every core).
    pub hashing: Hashing,
    /// With `TRUST_GATEWAY_IDENTITY`: the secret the gateway proves itself with.
    pub gateway_secret: Option<Vec<u8>>,
    pub(crate) cache: TodoCache,
    pub queue: Queue,
    /// This replica's name, sent as `X-Instance` and used in consumer names.
    pub instance: String,
    pub metrics: Metrics,
}

impl AppState {
    /// Invalidate a user's cached lists after a committed write. A Redis failure is logged
    /// and counted; the write itself stands.
    pub async fn invalidate_todos(&self, user: Uuid) {
        self.invalidate_todos_of(std::slice::from_ref(&user)).await;
    }

    /// [`Self::invalidate_todos`] for many users, in one round trip.
    pub async fn invalidate_todos_of(&self, users: &[Uuid]) {
        if let Err(e) = self.cache.bump_all(users).await {
            self.metrics.cache.with_label_values(&["error"]).inc();
            tracing::warn!(?users, error = %e, "cache invalidation failed");
        }
    }
}
