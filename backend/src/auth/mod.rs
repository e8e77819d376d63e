//! Accounts and access tokens: registration, login, token signing and verification, JWKS.

pub mod domain;
pub mod password;
pub(crate) mod repo;
pub(crate) mod routes;
pub mod tokens;
