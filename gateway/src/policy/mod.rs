//! Request policies applied at the edge: token verification, rate limits, and the edge
//! policies of `config::edge` (templates, CORS, redirects, rewrites, basic auth, compression, forward auth).

pub(crate) mod compression;
pub(crate) mod edge;
pub(crate) mod forward_auth;
pub(crate) mod jwt;
pub(crate) mod rate_limit;
