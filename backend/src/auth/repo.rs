//! SQL for accounts. Only this module and the other `repo` modules issue SQL.

use sqlx::PgPool;
use uuid::Uuid;

use super::domain::Username;

pub(crate) enum Created {
    Yes,
    UsernameTaken,
}

pub(crate) async fn create_user(
    pool: &PgPool,
    id: Uuid,
    username: &Username,
    password_hash: &str,
) -> Result<Created, sqlx::Error> {
    let result = sqlx::query("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(username.as_str())
        .bind(password_hash)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(Created::Yes),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Created::UsernameTaken),
        Err(e) => Err(e),
    }
}

/// Whether an account already has `username`.
pub(crate) async fn username_taken(
    pool: &PgPool,
    username: &Username,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)")
        .bind(username.as_str())
        .fetch_one(pool)
        .await
}

/// `(id, password_hash)` of a user.
pub(crate) async fn find_by_username(
    pool: &PgPool,
    username: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await
}
