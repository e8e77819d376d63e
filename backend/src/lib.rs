//! The todo backend: a hyper HTTP API over PostgreSQL (sqlx), with a Redis cache for todo
//! lists and a Redis-stream job queue that creates todos. Replicas are stateless.
//!
//! # Layout
//! - [`config`]: settings from the environment (`backend --help`).
//! - [`state`]: `AppState`, the plain data every handler and worker shares.
//! - [`startup`]: `build_state`, `Application::build` / `run_until_stopped`.
//! - [`http`]: request and reply helpers (body, identity, JSON).
//! - [`routes`]: the routing table (canonical paths only), the serving loop, the handlers.
//! - [`worker`]: the job worker, a loop around `handle_all` (a batch of jobs at a time).
//! - [`input`]: rules every text input shares (no control characters).
//! - [`auth`]: usernames and passwords, argon2id hashes, signed tokens and the JWKS.
//! - [`todos`]: the todo domain, its SQL and the first-page cache.
//! - [`jobs`]: the queue (a Redis stream and its consumers) and the job SQL.
//! - [`error`]: `ApiError`, the single error-to-status table.
//! - `fuzzing`: entry points for the fuzz targets and property tests (not an API).
//!
//! Module layers (which module may import which) are in ARCHITECTURE.md and checked by
//! the `tests` crate.

pub mod auth;
pub mod config;
mod db;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod input;
pub mod jobs;
pub mod metrics;
pub mod redis_handle;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod todos;
pub mod worker;
