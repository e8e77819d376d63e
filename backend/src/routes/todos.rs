//! `GET /todos`, `GET|PATCH|DELETE /todos/{id}`. Another user's todo is 404, like a missing
//! one, so existence is never revealed.

use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::{empty, json_body, json_bytes, text, Reply, Request};
use crate::todos::domain::{Cursor, Page, TodoTitle};
use crate::todos::repo;

pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 200;

fn todo_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

fn page_reply(page: &Page) -> Result<Reply, ApiError> {
    json_body(http::StatusCode::OK, page)
}

pub(crate) async fn list(req: Request<'_>) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let limit = match req.query("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::Validation(format!("limit must be 1-{MAX_LIMIT}")))?,
    };
    let cursor = req
        .query("cursor")
        .map(|c| Cursor::decode(&c))
        .transpose()?;
    let state = req.state;
    // Only the default first page is cached: it is what clients load most.
    let cacheable = state.cache.enabled() && cursor.is_none() && limit == DEFAULT_LIMIT;
    let mut version = None;
    if cacheable {
        match state.cache.get(user).await {
            Ok((Some(page), _)) => {
                state.metrics.cache.with_label_values(&["hit"]).inc();
                return Ok(text(http::StatusCode::OK, "application/json", page));
            }
            Ok((None, v)) => {
                state.metrics.cache.with_label_values(&["miss"]).inc();
                version = Some(v);
            }
            Err(e) => {
                state.metrics.cache.with_label_values(&["error"]).inc();
                tracing::warn!(request_id = req.request_id, error = %e, "cache read failed; serving from PostgreSQL");
            }
        }
    }
    let mut items = repo::list(&state.db, user, limit + 1, cursor).await?;
    let next_cursor = if items.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        items.truncate(usize::try_from(limit).unwrap_or(0));
        items.last().map(|t| {
            Cursor {
                created_at: t.created_at,
                id: t.id,
            }
            .encode()
        })
    } else {
        None
    };
    let page = Page { items, next_cursor };
    let Some(v) = version else {
        return page_reply(&page);
    };
    // Serialized once: the same bytes are cached and sent.
    let body = json_bytes(&page)?;
    if let Err(e) = state.cache.put(user, v, body.clone()).await {
        state.metrics.cache.with_label_values(&["error"]).inc();
        tracing::warn!(request_id = req.request_id, error = %e, "cache fill failed");
    }
    Ok(text(http::StatusCode::OK, "application/json", body))
}

pub(crate) async fn get(req: &Request<'_>, id: &str) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let id = todo_id(id)?;
    let todo = repo::get(&req.state.db, user, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    json_body(http::StatusCode::OK, &todo)
}

/// What to change of a todo: its title, whether it is done, or both.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub(crate) struct Patch {
    /// 1-255 characters after trimming, no control characters.
    #[schemars(length(min = 1), regex(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$"))]
    pub(crate) title: Option<String>,
    pub(crate) done: Option<bool>,
}

pub(crate) async fn update(req: &Request<'_>, id: &str) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let id = todo_id(id)?;
    let patch: Patch = req.json()?;
    if patch.title.is_none() && patch.done.is_none() {
        return Err(ApiError::Validation("send title, done, or both".to_owned()));
    }
    let title = patch.title.as_deref().map(TodoTitle::parse).transpose()?;
    let todo = repo::update(
        &req.state.db,
        user,
        id,
        title.as_ref().map(TodoTitle::as_str),
        patch.done,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    req.state.invalidate_todos(user).await;
    json_body(http::StatusCode::OK, &todo)
}

pub(crate) async fn delete(req: &Request<'_>, id: &str) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let id = todo_id(id)?;
    if !repo::delete(&req.state.db, user, id).await? {
        return Err(ApiError::NotFound);
    }
    req.state.invalidate_todos(user).await;
    Ok(empty(http::StatusCode::NO_CONTENT))
}
