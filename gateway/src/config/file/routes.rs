//! `routes:`.

use std::time::Duration;

use serde::Deserialize;

use super::edge::{
    ApiKeysFile, BasicAuthFile, CompressionFile, CorsFile, ForwardAuthFile, HeaderRulesFile,
    RedirectFile, RewriteFile, SecurityHeadersFile,
};
use super::limits::RateLimitFile;
use super::{optional_duration, ByteSize};

/// One entry of `routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(rename = "match")]
    pub(crate) matcher: MatchFile,
    #[serde(default)]
    pub(crate) pool: Option<String>,
    #[serde(default)]
    pub(crate) strip_prefix: bool,
    #[serde(default)]
    pub(crate) respond: Option<RespondFile>,
    #[serde(default)]
    pub(crate) redirect: Option<RedirectFile>,
    #[serde(default)]
    pub(crate) rewrite: Option<RewriteFile>,
    /// The `Host` of the upstream request; the client's by default.
    #[serde(default)]
    pub(crate) upstream_host: Option<String>,
    /// Overrides `limits.max_body_bytes` for this route.
    #[serde(default)]
    pub(crate) body_limit: Option<ByteSize>,
    #[serde(default)]
    pub(crate) auth: AuthFile,
    #[serde(default)]
    pub(crate) rate_limits: Vec<RateLimitFile>,
    /// Instead of `pool`: traffic shared between pools by weight.
    #[serde(default)]
    pub(crate) split: Option<Vec<SplitFile>>,
    /// With `split`: what keeps a client on one pool (`subject`, `client_ip`,
    /// `header:<name>`, `cookie:<name>`).
    #[serde(default)]
    pub(crate) sticky: Option<String>,
    /// With `split`: a request header naming the pool to use (for testers).
    #[serde(default)]
    pub(crate) override_header: Option<String>,
    /// A sampled copy of the route's requests, sent to another pool.
    #[serde(default)]
    pub(crate) mirror: Option<MirrorFile>,
    /// Overrides of the pool's timeouts, and the request's deadline.
    #[serde(default)]
    pub(crate) timeouts: Option<RouteTimeoutsFile>,
    /// `false` keeps this route on plain HTTP when `tls.redirect_http` is on.
    #[serde(default = "yes")]
    pub(crate) https_redirect: bool,
    // Edge policies; each one, when absent, comes from `route_defaults:`.
    #[serde(default)]
    pub(crate) ip_allow: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) ip_deny: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) security_headers: Option<SecurityHeadersFile>,
    #[serde(default)]
    pub(crate) request_headers: Option<HeaderRulesFile>,
    #[serde(default)]
    pub(crate) response_headers: Option<HeaderRulesFile>,
    #[serde(default)]
    pub(crate) cors: Option<CorsFile>,
    #[serde(default)]
    pub(crate) basic_auth: Option<BasicAuthFile>,
    #[serde(default)]
    pub(crate) compression: Option<CompressionFile>,
    #[serde(default)]
    pub(crate) api_keys: Option<ApiKeysFile>,
    #[serde(default)]
    pub(crate) forward_auth: Option<ForwardAuthFile>,
}

fn yes() -> bool {
    true
}

/// `routes[].mirror`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MirrorFile {
    pub(crate) pool: String,
    #[serde(default = "hundred")]
    pub(crate) percent: f64,
    #[serde(default = "default_mirror_in_flight")]
    pub(crate) max_in_flight: usize,
    #[serde(default = "default_mirror_body")]
    pub(crate) max_body: ByteSize,
}

fn hundred() -> f64 {
    100.0
}

fn default_mirror_in_flight() -> usize {
    64
}

fn default_mirror_body() -> ByteSize {
    ByteSize(64 * 1024)
}

/// One entry of `routes[].split`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitFile {
    pub(crate) pool: String,
    pub(crate) weight: u32,
}

/// `routes[].timeouts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteTimeoutsFile {
    #[serde(default, deserialize_with = "optional_duration")]
    pub(crate) request: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub(crate) upstream_response: Option<Duration>,
    #[serde(default)]
    pub(crate) deadline_header: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthFile {
    #[default]
    None,
    Optional,
    Required,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchFile {
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RespondFile {
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) body: String,
    #[serde(default = "default_content_type")]
    pub(crate) content_type: String,
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}
