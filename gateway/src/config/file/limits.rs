//! `rate_limiting:` and each route's `rate_limits:`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Human;

/// `rate_limiting:`: settings shared by every route's `rate_limits`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RateLimitingFile {
    /// `redis://host:port[/db]` for `scope: cluster` limits.
    pub(crate) redis_url: Option<String>,
    /// Longest wait for Redis per decision before `fail_open` applies.
    #[serde(with = "Human")]
    pub(crate) redis_timeout: Duration,
    /// The prefix of every Redis key.
    pub(crate) key_prefix: String,
    /// Send `RateLimit-*` headers on allowed responses too (always on 429).
    pub(crate) headers_on_success: bool,
    /// Keys remembered per local limit; full buckets are forgotten first.
    pub(crate) max_local_keys: usize,
    /// IPv6 clients are counted per network of this many bits (a subscriber usually holds a
    /// whole /64 and can rotate through it).
    #[schemars(range(min = 1, max = 128))]
    pub(crate) ipv6_prefix: u8,
}

impl Default for RateLimitingFile {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_timeout: Duration::from_millis(100),
            key_prefix: "gateway:rl:".to_owned(),
            headers_on_success: true,
            max_local_keys: 100_000,
            ipv6_prefix: 64,
        }
    }
}

/// One entry of a route's `rate_limits:`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitFile {
    /// `client_ip`, `subject` (the token's `sub`), `api_key` (the name of the key
    /// `api_keys` matched), `header:<name>` or `route` (one bucket for the route).
    #[serde(default = "default_limit_key")]
    pub(crate) key: String,
    /// Requests allowed per `per`, sustained.
    #[schemars(range(min = 1))]
    pub(crate) rate: u64,
    /// The period of `rate` (at most 1d).
    #[serde(with = "Human")]
    pub(crate) per: Duration,
    /// Requests allowed back to back; defaults to `rate`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub(crate) burst: Option<u64>,
    /// `local` (this process) or `cluster` (shared by every gateway through Redis).
    #[serde(default)]
    pub(crate) scope: ScopeFile,
    /// With `scope: cluster`, what to do when Redis cannot answer: allow (with a local
    /// fallback limit) or refuse with 503.
    #[serde(default = "yes")]
    pub(crate) fail_open: bool,
}

fn default_limit_key() -> String {
    "client_ip".to_owned()
}

fn yes() -> bool {
    true
}

/// `local` or `cluster`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScopeFile {
    #[default]
    Local,
    Cluster,
}
