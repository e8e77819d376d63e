//! One error type for every handler, mapped to a status in one place, answered as
//! `application/problem+json`. Server errors say nothing about their cause to the client;
//! the cause chain is logged.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    MalformedBody(String),
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but conflicting with what the server already holds for it (e.g. an
    /// `Idempotency-Key` reused for a different request).
    #[error("{0}")]
    Unprocessable(String),
    /// A bounded resource of this replica is saturated (e.g. password hashing); retrying soon
    /// or on another replica helps. Expected under floods, so logged at debug level only.
    #[error("{0}")]
    Busy(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unavailable(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Log what the client is not told: the cause of a 5xx. Called once, by the serving
    /// loop, so converting an error into a response stays free of side effects.
    pub fn log(&self, request_id: &str) {
        match self {
            Self::Unexpected(e) => {
                tracing::error!(request_id, error.cause_chain = ?e, error.message = %e, "request failed");
            }
            Self::Busy(what) => tracing::debug!(request_id, resource = what, "replica busy"),
            Self::Unavailable(what) => {
                tracing::warn!(request_id, dependency = what, "dependency unavailable");
            }
            _ => {}
        }
    }

    /// The problem+json response; 5xx details stay generic.
    pub fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let status = self.status();
        let detail = match &self {
            Self::Unexpected(_) => "The server failed to handle the request.".to_owned(),
            Self::Busy(what) => format!("{what}; retry shortly."),
            Self::Unavailable(what) => format!("{what} is unavailable; retry shortly."),
            other => other.to_string(),
        };
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            request_id: request_id.to_owned(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

/// An error answer (RFC 9457 `application/problem+json`), from the API or from the gateway
/// in front of it, which answers in the same shape.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what happened.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    pub status: u16,
    /// What was wrong, for a person; generic for 5xx.
    pub detail: String,
    /// The request's `X-Request-Id`, to find it in the logs.
    pub request_id: String,
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        db_error(e)
    }
}

/// A database failure: unreachable means 503; a data exception (SQLSTATE class 22: a value
/// PostgreSQL cannot store or compare, such as a NUL byte in text or a date out of range) can
/// only come from a client's value that validation let through, so it is a 400; anything else
/// is unexpected. A 500 must mean a bug: the gateway counts 5xx toward ejecting a replica.
pub fn db_error(e: sqlx::Error) -> ApiError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ApiError::Unavailable("the database")
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
            tracing::info!(sqlstate = ?db.code(), error = %db, "database refused a client value");
            ApiError::Validation(
                "a value in the request cannot be stored (invalid text or out of range)".to_owned(),
            )
        }
        other => ApiError::Unexpected(anyhow::Error::new(other).context("database query failed")),
    }
}
