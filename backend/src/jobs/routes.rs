//! `POST /todos` (accepts a job) and `GET /jobs/{id}`.

use serde::Deserialize;
use uuid::Uuid;

use super::repo;
use crate::error::{db_error, ApiError};
use crate::http::{json, Reply, Request};
use crate::todos::domain::TodoTitle;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodo {
    title: String,
}

fn accepted(job_id: Uuid) -> Reply {
    let url = format!("/jobs/{job_id}");
    let mut reply = json(
        http::StatusCode::ACCEPTED,
        &serde_json::json!({ "job_id": job_id, "status_url": url }),
    );
    if let Ok(v) = http::HeaderValue::from_str(&url) {
        reply.headers_mut().insert(http::header::LOCATION, v);
    }
    reply
}

/// Record the job, then enqueue it. The row is committed before the stream entry exists, so
/// a worker never sees an entry whose job it cannot read. If the queue refuses, the row is
/// removed again and the client gets 503: nothing is accepted that was not enqueued. A retry
/// with the same `Idempotency-Key` answers with the first job, enqueueing it again if it is
/// still queued (a crash between commit and enqueue; running a job twice is harmless).
pub(crate) async fn create_todo(req: Request<'_>) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let body: NewTodo = req.json()?;
    let title = TodoTitle::parse(&body.title)?;
    let key = match req.parts.headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| (1..=255).contains(&k.len()))
                .ok_or_else(|| {
                    ApiError::Validation(
                        "Idempotency-Key must be 1-255 visible characters".to_owned(),
                    )
                })?
                .to_owned(),
        ),
    };
    let state = req.state;
    let enqueue = |job_id: Uuid| async move {
        state.queue.enqueue(job_id).await.map_err(|e| {
            tracing::warn!(request_id = req.request_id, error = %e, "cannot enqueue a job");
            ApiError::Unavailable("the job queue")
        })
    };
    if let Some(key) = &key {
        if let Some((existing, status)) = repo::find_by_key(&state.db, user, key)
            .await
            .map_err(db_error)?
        {
            if status == "queued" {
                enqueue(existing).await?;
            }
            return Ok(accepted(existing));
        }
    }
    let job_id = Uuid::now_v7();
    let Some(job_id) = repo::insert(&state.db, job_id, user, key.as_deref(), title.as_str())
        .await
        .map_err(db_error)?
    else {
        // A concurrent retry with the same key inserted first: answer with its job.
        let key = key.as_deref().unwrap_or_default();
        let existing = repo::find_by_key(&state.db, user, key)
            .await
            .map_err(db_error)?;
        return existing
            .map(|(id, _)| accepted(id))
            .ok_or(ApiError::Conflict("retry the request".to_owned()));
    };
    if let Err(e) = enqueue(job_id).await {
        if let Err(undo) = repo::delete_queued(&state.db, job_id).await {
            tracing::warn!(%job_id, error = %undo, "could not remove a job that was not enqueued; it will never run");
        }
        return Err(e);
    }
    state.metrics.jobs.with_label_values(&["enqueued"]).inc();
    Ok(accepted(job_id))
}

pub(crate) async fn get(req: &Request<'_>, id: &str) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    let job = repo::view(&req.state.db, user, id)
        .await
        .map_err(db_error)?
        .ok_or(ApiError::NotFound)?;
    let mut body = serde_json::json!({ "status": job.status });
    if let Some(todo) = job.todo_id.filter(|_| job.status == "done") {
        body["todo_id"] = todo.to_string().into();
    }
    if let Some(error) = job.error {
        body["error"] = error.into();
    }
    Ok(json(http::StatusCode::OK, &body))
}
