//! The one query that belongs to no domain: whether PostgreSQL answers (readiness).

use sqlx::PgPool;

/// `SELECT 1`.
pub(crate) async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
