//! `POST /auth/register`, `POST /auth/login`, `GET /.well-known/jwks.json`.

use serde::Deserialize;
use uuid::Uuid;

use super::domain::{Password, Username};
use super::password;
use super::repo::{self, Created};
use crate::error::{db_error, ApiError};
use crate::http::{json, Reply, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

pub(crate) async fn register(req: Request<'_>) -> Result<Reply, ApiError> {
    let body: Credentials = req.json()?;
    let username = Username::parse(body.username)?;
    let password = Password::parse(body.password)?;
    let hash = password::hash(password).await?;
    let id = Uuid::now_v7();
    match repo::create_user(&req.state.db, id, &username, &hash)
        .await
        .map_err(db_error)?
    {
        Created::Yes => Ok(json(
            http::StatusCode::CREATED,
            &serde_json::json!({ "id": id, "username": username.as_str() }),
        )),
        Created::UsernameTaken => Err(ApiError::Conflict("that username is taken".to_owned())),
    }
}

pub(crate) async fn login(req: Request<'_>) -> Result<Reply, ApiError> {
    let body: Credentials = req.json()?;
    // Malformed credentials cannot match any account: same answer as a wrong password.
    let Ok(password) = Password::parse(body.password) else {
        return Err(ApiError::BadCredentials);
    };
    let found = repo::find_by_username(&req.state.db, &body.username)
        .await
        .map_err(db_error)?;
    let (user_id, hash) = match found {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let valid = password::verify(password, hash).await?;
    let Some(user_id) = user_id.filter(|_| valid) else {
        return Err(ApiError::BadCredentials);
    };
    let token = req.state.tokens.issue(user_id)?;
    Ok(json(
        http::StatusCode::OK,
        &serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": req.state.tokens.ttl().as_secs(),
        }),
    ))
}

pub(crate) fn jwks(req: &Request<'_>) -> Reply {
    json(http::StatusCode::OK, &req.state.tokens.jwks())
}
