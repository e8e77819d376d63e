//! Start-up failures. Request-time errors are Pingora errors; see `proxy::errors`.

use crate::config::ConfigErrors;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot set up DNS resolution")]
    Resolver(#[source] std::io::Error),
}
