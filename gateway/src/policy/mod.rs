//! Request policies applied at the edge: token verification (and, to come, rate limits).

pub(crate) mod jwt;
