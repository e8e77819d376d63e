//! SQL for todos.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{Cursor, Todo};

/// Up to `limit` of a user's todos, newest first, after `cursor`.
pub(crate) async fn list(
    pool: &PgPool,
    user: Uuid,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<Vec<Todo>, sqlx::Error> {
    match cursor {
        None => {
            sqlx::query_as(
                "SELECT id, title, done, created_at, updated_at FROM todos WHERE user_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(user)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        Some(c) => {
            sqlx::query_as(
                "SELECT id, title, done, created_at, updated_at FROM todos WHERE user_id = $1 \
                 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
            )
            .bind(user)
            .bind(c.created_at)
            .bind(c.id)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
}

pub(crate) async fn get(pool: &PgPool, user: Uuid, id: Uuid) -> Result<Option<Todo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, title, done, created_at, updated_at FROM todos WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await
}

pub(crate) async fn update(
    pool: &PgPool,
    user: Uuid,
    id: Uuid,
    title: Option<&str>,
    done: Option<bool>,
) -> Result<Option<Todo>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE todos SET title = COALESCE($3, title), done = COALESCE($4, done), updated_at = now() \
         WHERE id = $1 AND user_id = $2 RETURNING id, title, done, created_at, updated_at",
    )
    .bind(id)
    .bind(user)
    .bind(title)
    .bind(done)
    .fetch_optional(pool)
    .await
}

pub(crate) async fn delete(pool: &PgPool, user: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM todos WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Insert the todo a job creates, at most once per job. Returns its id either way.
/// The todos of many jobs in one statement, `(job, owner, title)` each; a job that already
/// has its todo keeps it (the insert is idempotent per job).
pub(crate) async fn insert_for_jobs(
    conn: &mut PgConnection,
    jobs: &[(Uuid, Uuid, &str)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let owners: Vec<Uuid> = jobs.iter().map(|j| j.1).collect();
    let titles: Vec<&str> = jobs.iter().map(|j| j.2).collect();
    let job_ids: Vec<Uuid> = jobs.iter().map(|j| j.0).collect();
    sqlx::query(
        "INSERT INTO todos (id, user_id, title, job_id) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[]) \
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(ids)
    .bind(owners)
    .bind(titles)
    .bind(job_ids)
    .execute(conn)
    .await
    .map(|_| ())
}
