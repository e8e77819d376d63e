//! Accounts and access tokens: usernames, passwords and their hashing, token signing and
//! verification, the JWKS (handlers: `routes::auth`).

pub mod domain;
pub mod password;
pub(crate) mod repo;
pub mod tokens;
