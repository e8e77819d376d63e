//! SQL for jobs.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JobView {
    pub(crate) status: String,
    pub(crate) todo_id: Option<Uuid>,
    pub(crate) error: Option<String>,
}

/// A job found by its idempotency key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct KeyedJob {
    pub(crate) id: Uuid,
    /// The fingerprint of the request that created it (`None` for jobs from before it was
    /// recorded).
    pub(crate) request_hash: Option<String>,
}

/// The job a user created with an idempotency key.
pub(crate) async fn find_by_key(
    pool: &PgPool,
    user: Uuid,
    key: &str,
) -> Result<Option<KeyedJob>, sqlx::Error> {
    sqlx::query_as("SELECT id, request_hash FROM jobs WHERE user_id = $1 AND idempotency_key = $2")
        .bind(user)
        .bind(key)
        .fetch_optional(pool)
        .await
}

/// Undo a job that could not be enqueued (only while nobody has started it).
pub(crate) async fn delete_queued(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM jobs WHERE id = $1 AND status = 'queued'")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Insert a queued job; `None` when a concurrent request with the same key won.
pub(crate) async fn insert(
    pool: &PgPool,
    id: Uuid,
    user: Uuid,
    key: Option<&str>,
    title: &str,
    request_hash: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, user_id, idempotency_key, title, status, request_hash) \
         VALUES ($1, $2, $3, $4, 'queued', $5) \
         ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(user)
    .bind(key)
    .bind(title)
    .bind(request_hash)
    .fetch_optional(pool)
    .await
}

/// Record that the job's stream entry exists. Only jobs with an idempotency key are recorded:
/// [`claim_orphan`] is reached through a replay of the key, so an unkeyed job's
/// `enqueued_at` stays NULL and means nothing.
pub(crate) async fn mark_enqueued(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET enqueued_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Claim a queued job that was committed at least `age` ago but never enqueued (the replica
/// that accepted it died in between), so that exactly one caller enqueues it.
pub(crate) async fn claim_orphan(
    pool: &PgPool,
    id: Uuid,
    age: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET enqueued_at = now() WHERE id = $1 AND status = 'queued' \
         AND enqueued_at IS NULL AND created_at < now() - make_interval(secs => $2) RETURNING id",
    )
    .bind(id)
    .bind(age.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(claimed.is_some())
}

/// Claim up to `limit` keyed jobs committed at least `age` ago and never enqueued, for the
/// housekeeping sweep: a client whose retry got the job's 202 from a replay in the moments
/// after the first replica died will not replay it again, so the sweep enqueues them.
/// Replicas sweep concurrently; `SKIP LOCKED` and the `enqueued_at` update give each job to
/// one of them.
pub(crate) async fn claim_orphans(
    pool: &PgPool,
    age: std::time::Duration,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE jobs SET enqueued_at = now() WHERE id IN (\
             SELECT id FROM jobs WHERE status = 'queued' AND enqueued_at IS NULL \
             AND idempotency_key IS NOT NULL AND created_at < now() - make_interval(secs => $1) \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Undo [`claim_orphan`] after the enqueue failed.
pub(crate) async fn unclaim(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET enqueued_at = NULL WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub(crate) async fn view(
    pool: &PgPool,
    user: Uuid,
    id: Uuid,
) -> Result<Option<JobView>, sqlx::Error> {
    sqlx::query_as("SELECT status, todo_id, error FROM jobs WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .fetch_optional(pool)
        .await
}

/// A job a worker is about to run.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) title: String,
    pub(crate) attempts: i32,
}

/// Count one more attempt of an unfinished job; `None` if it is finished or unknown.
pub(crate) async fn start_attempt(pool: &PgPool, id: Uuid) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = now() \
         WHERE id = $1 AND status IN ('queued', 'running') RETURNING id, user_id, title, attempts",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// [`start_attempt`] for many jobs in one statement: the unfinished ones among `ids` (each
/// counted once, however often it is listed).
pub(crate) async fn start_attempts(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = now() \
         WHERE id = ANY($1) AND status IN ('queued', 'running') \
         RETURNING id, user_id, title, attempts",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Point each of the jobs `ids` at the todo it created (inserted in the same transaction);
/// returns how many jobs were updated.
pub(crate) async fn record_todos(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET todo_id = todos.id, updated_at = now() FROM todos \
         WHERE todos.job_id = jobs.id AND jobs.id = ANY($1)",
    )
    .bind(ids)
    .execute(conn)
    .await
    .map(|done| done.rows_affected())
}

/// Mark the jobs `ids` done.
pub(crate) async fn finish_all(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'done', error = NULL, updated_at = now() WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(pool)
    .await
    .map(|_| ())
}

pub(crate) async fn fail(pool: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET status = 'failed', error = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ())
}
