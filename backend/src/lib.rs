//! The todo backend: a hyper HTTP API over PostgreSQL (sqlx), with a Redis cache for todo
//! lists and a Redis-stream job queue that creates todos. Replicas are stateless.
//!
//! # Layout
//! - [`config`]: settings from the environment (`backend --help`).
//! - [`startup`]: `build_state`, `Application::build` / `run_until_stopped`.
//! - [`http`]: request reading, identity, the routing table (canonical paths only), replies.
//! - [`input`]: rules every text input shares (no control characters).
//! - [`auth`]: usernames and passwords, argon2id hashes, signed tokens and the JWKS.
//! - [`todos`]: the todo domain, its SQL and the first-page cache.
//! - [`jobs`]: the queue (Redis stream), its SQL and the workers.
//! - [`error`]: `ApiError`, the single error-to-status table.
//! - `fuzzing`: entry points for the fuzz targets and property tests (not an API).

pub mod auth;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod input;
pub mod jobs;
pub mod metrics;
pub mod redis_handle;
pub mod startup;
pub mod telemetry;
pub mod todos;
