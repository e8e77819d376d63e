//! Todos: the domain type, its SQL and the first-page cache (handlers: `routes::todos`).
//! Creating a todo goes through the job queue (see `jobs`).

pub(crate) mod cache;
pub mod domain;
pub(crate) mod repo;
