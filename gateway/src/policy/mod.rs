//! Request policies applied at the edge: token verification and rate limits.

pub(crate) mod jwt;
pub(crate) mod rate_limit;
