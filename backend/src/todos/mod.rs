//! Todos: the domain type, its SQL, the first-page cache, and the HTTP handlers.
//! Creating a todo goes through the job queue (see `jobs`).

pub(crate) mod cache;
pub mod domain;
pub(crate) mod repo;
pub(crate) mod routes;
