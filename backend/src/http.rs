//! Request and reply helpers: the read request, the caller's identity, JSON bodies and
//! replies.
//!
//! Handlers take a [`Request`] (already read, body size-limited) and return
//! `Result<Reply, ApiError>`; `routes::serve` holds the routing table, turns errors into
//! problem+json, sets `X-Instance` and `X-Request-Id`, and records metrics.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

pub type Reply = http::Response<Full<Bytes>>;

/// A request with its body read.
pub struct Request<'a> {
    pub state: &'a AppState,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub request_id: String,
}

impl Request<'_> {
    /// The JSON body as `T`: 415 without a JSON content type, 400 for malformed JSON, unknown
    /// or missing fields.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let is_json = self
            .parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::MalformedBody(format!("invalid JSON body: {e}")))
    }

    /// The authenticated user: from the gateway's `X-User-Id` when identity from the gateway
    /// is trusted and the request proves it came from the gateway (the shared secret), else
    /// from the bearer token verified here.
    pub fn user(&self) -> Result<Uuid, ApiError> {
        let header = |name| {
            self.parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        if let Some(secret) = &self.state.gateway_secret {
            let from_gateway = self
                .parts
                .headers
                .get(self.state.settings.gateway_identity_secret_header.as_str())
                .is_some_and(|v| constant_time_eq(v.as_bytes(), secret));
            if from_gateway {
                return header("x-user-id")
                    .and_then(|v| Uuid::parse_str(v).ok())
                    .ok_or(ApiError::Unauthorized);
            }
        }
        let token = header(header::AUTHORIZATION.as_str())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(ApiError::Unauthorized)?;
        self.state
            .tokens
            .verify(token)
            .ok_or(ApiError::Unauthorized)
    }

    pub fn query(&self, key: &str) -> Option<String> {
        self.parts.uri.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| v.to_owned())
        })
    }
}

/// Compare secrets without an early exit that would tell, by timing, how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A typed value as a JSON reply; a value that cannot be serialized is a bug (500), never a
/// `200 null`.
pub fn json_body<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<Reply, ApiError> {
    Ok(text(status, "application/json", json_bytes(value)?))
}

/// A typed value as the bytes of a JSON reply (for a reply that is also kept elsewhere).
pub fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        ApiError::Unexpected(anyhow::Error::new(e).context("Failed to serialize a reply"))
    })
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    text(status, "application/json", value.to_string())
}

pub fn empty(status: StatusCode) -> Reply {
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut resp = http::Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
