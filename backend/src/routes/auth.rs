//! `POST /auth/register`, `POST /auth/login`, `GET /.well-known/jwks.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::domain::{Password, Username};
use crate::auth::repo::{self, Created};
use crate::error::ApiError;
use crate::http::{json_body, Reply, Request};
use crate::input::reject_control_chars;

/// A username and password, to register or to log in.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    /// 3-32 characters of `a-z`, `0-9`, `_`, `.` or `-`.
    #[schemars(regex(pattern = r"^[a-z0-9_.-]{3,32}$"))]
    pub(crate) username: String,
    /// 8-256 bytes, no control characters.
    #[schemars(
        length(min = 8, max = 256),
        regex(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub(crate) password: String,
}

/// The account a registration created.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Registered {
    pub(crate) id: Uuid,
    pub(crate) username: String,
}

/// A bearer token for `Authorization: Bearer <access_token>`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Token {
    /// A JWT signed by this API (EdDSA or ES256; its keys are at `/.well-known/jwks.json`).
    pub(crate) access_token: String,
    /// Always `Bearer`.
    #[schemars(extend("const" = "Bearer"))]
    pub(crate) token_type: &'static str,
    /// Seconds until the token expires.
    pub(crate) expires_in: u64,
}

/// Register an account. The name is checked before the password is hashed, so a flood of
/// registrations for a taken name costs one indexed read each, not an argon2 hash; the
/// unique constraint still decides races between two registrations of a free name.
pub(crate) async fn register(req: Request<'_>) -> Result<Reply, ApiError> {
    let body: Credentials = req.json()?;
    let username = Username::parse(body.username)?;
    let password = Password::parse(body.password)?;
    if repo::username_taken(&req.state.db, &username).await? {
        return Err(taken());
    }
    let hash = req.state.hashing.hash(password).await?;
    let id = Uuid::now_v7();
    match repo::create_user(&req.state.db, id, &username, &hash).await? {
        Created::Yes => json_body(
            http::StatusCode::CREATED,
            &Registered {
                id,
                username: username.as_str().to_owned(),
            },
        ),
        Created::UsernameTaken => Err(taken()),
    }
}

fn taken() -> ApiError {
    ApiError::Conflict("that username is taken".to_owned())
}

pub(crate) async fn login(req: Request<'_>) -> Result<Reply, ApiError> {
    let body: Credentials = req.json()?;
    // Control characters are a client bug, named as such (and PostgreSQL cannot even look
    // up a name with a NUL byte); other malformed credentials cannot match any account and
    // get the same answer as a wrong password.
    reject_control_chars("username", &body.username)?;
    reject_control_chars("password", &body.password)?;
    let Ok(password) = Password::parse(body.password) else {
        return Err(ApiError::BadCredentials);
    };
    let found = repo::find_by_username(&req.state.db, &body.username).await?;
    let (user_id, hash) = match found {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let valid = req.state.hashing.verify(password, hash).await?;
    let Some(user_id) = user_id.filter(|_| valid) else {
        return Err(ApiError::BadCredentials);
    };
    let token = req.state.tokens.issue(user_id)?;
    json_body(
        http::StatusCode::OK,
        &Token {
            access_token: token,
            token_type: "Bearer",
            expires_in: req.state.tokens.ttl().as_secs(),
        },
    )
}

pub(crate) fn jwks(req: &Request<'_>) -> Result<Reply, ApiError> {
    json_body(http::StatusCode::OK, &req.state.tokens.jwks())
}
