//! `routes:`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::edge::{
    ApiKeysFile, BasicAuthFile, CompressionFile, CorsFile, ForwardAuthFile, HeaderRulesFile,
    RedirectFile, RewriteFile, SecurityHeadersFile,
};
use super::limits::RateLimitFile;
use super::{ByteSize, OptionalHuman};

/// One entry of `routes:`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    /// The route's label in logs, metrics and the status page; its path when left out.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Which requests the route takes: a path or path prefix, and optionally a host and
    /// methods.
    #[serde(rename = "match")]
    pub(crate) matcher: MatchFile,
    /// The pool requests are proxied to (or `split`, `respond`, `redirect`).
    #[serde(default)]
    pub(crate) pool: Option<String>,
    /// Remove the matched prefix before proxying (`/api/x` -> `/x`).
    #[serde(default)]
    pub(crate) strip_prefix: bool,
    /// A fixed answer instead of proxying.
    #[serde(default)]
    pub(crate) respond: Option<RespondFile>,
    /// A redirect instead of proxying.
    #[serde(default)]
    pub(crate) redirect: Option<RedirectFile>,
    /// The upstream path from a regular expression over the request path.
    #[serde(default)]
    pub(crate) rewrite: Option<RewriteFile>,
    /// The `Host` of the upstream request; the client's by default.
    #[serde(default)]
    pub(crate) upstream_host: Option<String>,
    /// Overrides `limits.max_body_bytes` for this route.
    #[serde(default)]
    pub(crate) body_limit: Option<ByteSize>,
    /// Whether a bearer token is needed: `required` (401 without a valid one), `optional`
    /// (anonymous allowed, a bad token is still 401) or `none`.
    #[serde(default)]
    pub(crate) auth: AuthFile,
    /// Limits that must all allow the request.
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
    /// Client addresses or networks (CIDR) allowed; others get 403. From `route_defaults`
    /// when left out.
    #[serde(default)]
    pub(crate) ip_allow: Option<Vec<String>>,
    /// Client addresses or networks (CIDR) refused with 403.
    #[serde(default)]
    pub(crate) ip_deny: Option<Vec<String>>,
    /// `default`, `off`, or a preset with some headers overridden.
    #[serde(default)]
    pub(crate) security_headers: Option<SecurityHeadersFile>,
    /// Headers removed, set and added on the upstream request.
    #[serde(default)]
    pub(crate) request_headers: Option<HeaderRulesFile>,
    /// Headers removed, set and added on the response.
    #[serde(default)]
    pub(crate) response_headers: Option<HeaderRulesFile>,
    /// Cross-origin requests from browsers: preflights answered by the gateway.
    #[serde(default)]
    pub(crate) cors: Option<CorsFile>,
    /// HTTP basic authentication against a users file.
    #[serde(default)]
    pub(crate) basic_auth: Option<BasicAuthFile>,
    /// Response compression: `off`, or its settings (`{}` for the defaults).
    #[serde(default)]
    pub(crate) compression: Option<CompressionFile>,
    /// API keys in a request header, matched by their SHA-256.
    #[serde(default)]
    pub(crate) api_keys: Option<ApiKeysFile>,
    /// An auth service that decides each request.
    #[serde(default)]
    pub(crate) forward_auth: Option<ForwardAuthFile>,
}

fn yes() -> bool {
    true
}

/// `routes[].mirror`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MirrorFile {
    /// The pool the copies go to (plain HTTP).
    pub(crate) pool: String,
    /// The share of the route's requests copied.
    #[serde(default = "hundred")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub(crate) percent: f64,
    /// Copies in flight at once; more are dropped.
    #[serde(default = "default_mirror_in_flight")]
    #[schemars(range(min = 1))]
    pub(crate) max_in_flight: usize,
    /// A request with a larger body is not copied.
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
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitFile {
    /// A pool that takes part of the route's requests.
    pub(crate) pool: String,
    /// Its share, in proportion to the other entries' weights (0 to 10000).
    #[schemars(range(max = 10000))]
    pub(crate) weight: u32,
}

/// `routes[].timeouts`.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteTimeoutsFile {
    /// The request's deadline from its arrival: attempts, retries and their backoff stop
    /// at it (504).
    #[serde(default, with = "OptionalHuman")]
    pub(crate) request: Option<Duration>,
    /// Longest wait for the upstream's bytes on this route; the pool's `timeouts.read` when
    /// left out.
    #[serde(default, with = "OptionalHuman")]
    pub(crate) upstream_response: Option<Duration>,
    /// With `request`: a header sent upstream with the milliseconds left, e.g.
    /// `X-Request-Deadline-Ms`.
    #[serde(default)]
    pub(crate) deadline_header: Option<String>,
}

/// `required`, `optional` or `none`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthFile {
    #[default]
    None,
    Optional,
    Required,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchFile {
    /// `/api` matches `/api` and `/api/...`, not `/apix`; written in canonical form.
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    /// An exact path, in canonical form (no trailing `/`, `//`, dot segments or escaped
    /// unreserved characters).
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// A host name, compared without port and case-insensitively; any host when left out.
    #[serde(default)]
    pub(crate) host: Option<String>,
    /// e.g. `[GET, HEAD]`; any method when left out.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub(crate) methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RespondFile {
    /// The status of the answer.
    #[schemars(range(min = 100, max = 599))]
    pub(crate) status: u16,
    /// The body of the answer.
    #[serde(default)]
    pub(crate) body: String,
    /// Its `Content-Type`.
    #[serde(default = "default_content_type")]
    pub(crate) content_type: String,
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}
