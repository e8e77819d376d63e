//! `POST /todos` (accepts a job) and `GET /jobs/{id}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::{json_body, Reply, Request};
use crate::jobs::repo;
use crate::todos::domain::TodoTitle;

/// A todo to create.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTodo {
    /// 1-255 characters after trimming, no control characters.
    #[schemars(length(min = 1), regex(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$"))]
    pub(crate) title: String,
}

/// A job that will create the todo; poll `status_url` (also in `Location`).
#[derive(Serialize, JsonSchema)]
pub(crate) struct Accepted {
    pub(crate) job_id: Uuid,
    /// `/jobs/{job_id}`.
    pub(crate) status_url: String,
}

/// Where a job is: `queued`, `running`, `done` (with the todo it made) or `failed`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct JobStatus {
    #[schemars(extend("enum" = ["queued", "running", "done", "failed"]))]
    pub(crate) status: String,
    /// The todo the job created, once `done`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) todo_id: Option<Uuid>,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

fn accepted(job_id: Uuid) -> Result<Reply, ApiError> {
    let status_url = format!("/jobs/{job_id}");
    let location = http::HeaderValue::from_str(&status_url).ok();
    let mut reply = json_body(http::StatusCode::ACCEPTED, &Accepted { job_id, status_url })?;
    if let Some(v) = location {
        reply.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(reply)
}

/// Record the job, then enqueue it. The row is committed before the stream entry exists, so
/// a worker never sees an entry whose job it cannot read. If the queue refuses, the row is
/// removed again and the client gets 503: nothing is accepted that was not enqueued.
///
/// With an `Idempotency-Key` (IETF httpapi Idempotency-Key draft): a replay of the same
/// request answers with the first job and enqueues nothing; the same key with a different
/// request is 422. The one exception is a job whose enqueue never happened because the
/// replica died between commit and enqueue: a replay after the visibility timeout enqueues it.
pub(crate) async fn create_todo(req: Request<'_>) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let body: NewTodo = req.json()?;
    let title = TodoTitle::parse(&body.title)?;
    let fingerprint = fingerprint(&body);
    let key = match req.parts.headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| (1..=255).contains(&k.len()) && !k.contains('\t'))
                .ok_or_else(|| {
                    ApiError::Validation(
                        "Idempotency-Key must be 1-255 visible characters".to_owned(),
                    )
                })?
                .to_owned(),
        ),
    };
    let state = req.state;
    if let Some(key) = &key {
        if let Some(existing) = repo::find_by_key(&state.db, user, key).await? {
            return replay(&req, existing, &fingerprint).await;
        }
    }
    let job_id = Uuid::now_v7();
    let inserted = repo::insert(
        &state.db,
        job_id,
        user,
        key.as_deref(),
        title.as_str(),
        &fingerprint,
    )
    .await?;
    let Some(job_id) = inserted else {
        // A concurrent request with the same key inserted first.
        let key = key.as_deref().unwrap_or_default();
        return match repo::find_by_key(&state.db, user, key).await? {
            Some(existing) => replay(&req, existing, &fingerprint).await,
            None => Err(ApiError::Conflict("retry the request".to_owned())),
        };
    };
    if let Err(e) = enqueue(&req, job_id).await {
        if let Err(undo) = repo::delete_queued(&state.db, job_id).await {
            tracing::warn!(%job_id, error = %undo, "could not remove a job that was not enqueued; a replay of its request will enqueue it");
        }
        return Err(e);
    }
    // Only a replay of the same key can enqueue an orphan, so only a keyed job needs its
    // enqueue recorded; an unkeyed one skips the round trip (and its commit).
    if key.is_some() {
        if let Err(e) = repo::mark_enqueued(&state.db, job_id).await {
            // The entry exists, so the job runs; at worst a late replay enqueues it once more,
            // which is harmless (a todo is unique per job).
            tracing::warn!(%job_id, error = %e, "could not record that a job was enqueued");
        }
    }
    state.metrics.jobs.with_label_values(&["enqueued"]).inc();
    accepted(job_id)
}

/// The request's fingerprint for idempotency: a SHA-256 over what the job would do.
fn fingerprint(body: &NewTodo) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"POST /todos\n")
        .chain_update(body.title.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn enqueue(req: &Request<'_>, job_id: Uuid) -> Result<(), ApiError> {
    req.state.queue.enqueue(job_id).await.map_err(|e| {
        tracing::warn!(request_id = req.request_id, error = %e, "cannot enqueue a job");
        ApiError::Unavailable("the job queue")
    })
}

/// Answer a retried request with the job its key already names.
async fn replay(
    req: &Request<'_>,
    existing: repo::KeyedJob,
    fingerprint: &str,
) -> Result<Reply, ApiError> {
    if existing
        .request_hash
        .as_deref()
        .is_some_and(|h| h != fingerprint)
    {
        return Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request".to_owned(),
        ));
    }
    let state = req.state;
    let orphan =
        repo::claim_orphan(&state.db, existing.id, state.settings.visibility_timeout()).await?;
    if orphan {
        tracing::info!(job_id = %existing.id, "enqueueing a job its first request never enqueued");
        if let Err(e) = enqueue(req, existing.id).await {
            if let Err(undo) = repo::unclaim(&state.db, existing.id).await {
                tracing::warn!(job_id = %existing.id, error = %undo, "could not release an orphaned job");
            }
            return Err(e);
        }
        state.metrics.jobs.with_label_values(&["enqueued"]).inc();
    }
    accepted(existing.id)
}

pub(crate) async fn get(req: &Request<'_>, id: &str) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    let job = repo::view(&req.state.db, user, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let done = job.status == "done";
    json_body(
        http::StatusCode::OK,
        &JobStatus {
            status: job.status,
            todo_id: job.todo_id.filter(|_| done),
            error: job.error,
        },
    )
}
