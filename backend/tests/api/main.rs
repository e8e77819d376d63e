//! The backend's API tests, against real PostgreSQL and Redis servers the harness starts.

mod auth;
mod hardening;
mod health;
mod helpers;
mod jobs;
mod resilience;
mod todos;
