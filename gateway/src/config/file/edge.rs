//! Edge policies: what a route (or `route_defaults:`) says about client addresses, headers,
//! rewrites, redirects, CORS and basic auth.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `route_defaults:`: policies every route starts from. A route that sets one of these keys
/// replaces the default's value for that key (lists are not merged).
#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteDefaultsFile {
    /// Client addresses or networks (CIDR) allowed; others get 403.
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

/// `forward_auth:`: an auth service decides each request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardAuthFile {
    /// An `http://` URL the gateway sends a GET to for each request.
    pub(crate) url: String,
    /// Longest wait for the auth service (1ms to 30s).
    #[serde(default = "default_auth_timeout", with = "super::Human")]
    pub(crate) timeout: Duration,
    /// Request headers passed on to the auth service.
    #[serde(default = "default_auth_forward")]
    pub(crate) forward_headers: Vec<String>,
    /// Headers of the auth service's 2xx answer copied onto the upstream request.
    #[serde(default)]
    pub(crate) copy_headers: Vec<String>,
    /// How long a 2xx answer is reused for the same credentials; 0 asks every time.
    #[serde(default, with = "super::Human")]
    pub(crate) cache_ttl: Duration,
}

fn default_auth_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_auth_forward() -> Vec<String> {
    ["Authorization", "Cookie"].map(String::from).to_vec()
}

/// `api_keys:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeysFile {
    /// The request header that carries the key.
    #[serde(default = "default_key_header")]
    pub(crate) header: String,
    /// `name:sha256-hex` lines: each key's name and the SHA-256 of the key.
    pub(crate) keys_file: String,
    /// The header that carries the matched key's name upstream.
    #[serde(default = "default_key_name_header")]
    pub(crate) forward_name: String,
}

fn default_key_header() -> String {
    "X-API-Key".into()
}

fn default_key_name_header() -> String {
    "X-API-Key-Name".into()
}

/// `compression:` is `off` or its settings (`{}` for the defaults).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(inline)]
pub(crate) enum CompressionFile {
    Off(OffFile),
    On(CompressionSpec),
}

/// `off`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OffFile {
    Off,
}

/// Compression settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompressionSpec {
    /// `zstd`, `br`, `gzip`: in the gateway's order of preference, among those the client
    /// accepts equally.
    #[serde(default = "default_algorithms")]
    pub(crate) algorithms: Vec<String>,
    /// Responses that declare a smaller length are sent as they are.
    #[serde(default = "default_min_size")]
    pub(crate) min_size: super::ByteSize,
    /// Media types to compress; `type/*` matches a whole type.
    #[serde(default = "default_content_types")]
    pub(crate) content_types: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    ["zstd", "br", "gzip"].map(String::from).to_vec()
}

fn default_min_size() -> super::ByteSize {
    super::ByteSize(1024)
}

fn default_content_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/problem+json",
        "application/ld+json",
        "application/manifest+json",
        "application/javascript",
        "application/xml",
        "application/wasm",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}

/// `security_headers:` is `default`, `off`, or a mapping that starts from a preset and
/// overrides some of its headers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(inline)]
pub(crate) enum SecurityHeadersFile {
    Preset(PresetFile),
    Custom(SecurityHeadersSpec),
}

/// `default` (the recommended headers) or `off` (none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PresetFile {
    Default,
    Off,
}

/// Each header's value, or `off` to leave it out.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecurityHeadersSpec {
    /// The headers this starts from.
    #[serde(default = "default_preset")]
    pub(crate) preset: PresetFile,
    /// `Strict-Transport-Security`, or `off`.
    #[serde(default)]
    pub(crate) strict_transport_security: Option<String>,
    /// `X-Content-Type-Options`, or `off`.
    #[serde(default)]
    pub(crate) content_type_options: Option<String>,
    /// `X-Frame-Options`, or `off`.
    #[serde(default)]
    pub(crate) frame_options: Option<String>,
    /// `Referrer-Policy`, or `off`.
    #[serde(default)]
    pub(crate) referrer_policy: Option<String>,
    /// `Content-Security-Policy`, or `off`.
    #[serde(default)]
    pub(crate) content_security_policy: Option<String>,
    /// `Permissions-Policy`, or `off`.
    #[serde(default)]
    pub(crate) permissions_policy: Option<String>,
    /// Upstream response headers that never reach the client.
    #[serde(default)]
    pub(crate) hide: Option<Vec<String>>,
}

fn default_preset() -> PresetFile {
    PresetFile::Default
}

/// `request_headers:` / `response_headers:`. Applied in this order: `remove`, `set`, `add`.
#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderRulesFile {
    /// Replace every value of the header with this one.
    #[serde(default)]
    pub(crate) set: BTreeMap<String, String>,
    /// Add a value, keeping those already present.
    #[serde(default)]
    pub(crate) add: BTreeMap<String, String>,
    /// Remove every value of these headers.
    #[serde(default)]
    pub(crate) remove: Vec<String>,
}

/// `rewrite:`: the upstream path from a regular expression over the request path.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RewriteFile {
    /// A regular expression over the (canonical) request path.
    #[serde(rename = "match")]
    pub(crate) pattern: String,
    /// The upstream path, starting with `/`; `$1`, `${name}` are the captures.
    pub(crate) to: String,
}

/// `redirect:`: the route answers with a redirect instead of proxying.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedirectFile {
    /// The target: a path or an absolute URL; `$1`, `${name}` are the captures of `match`.
    pub(crate) to: String,
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    #[schemars(extend("enum" = [301, 302, 303, 307, 308]))]
    pub(crate) status: u16,
    /// A regular expression over the request path whose captures `to` may use; without it,
    /// `$1` is the whole path.
    #[serde(default, rename = "match")]
    pub(crate) pattern: Option<String>,
    /// Append the request's query to the target.
    #[serde(default = "yes")]
    pub(crate) keep_query: bool,
}

/// Temporary by default: browsers cache a permanent redirect for good, so a mistaken one
/// outlives its fix.
fn default_redirect_status() -> u16 {
    302
}

fn yes() -> bool {
    true
}

/// `cors:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorsFile {
    /// Origins allowed (`https://app.example.com`, `https://*.example.com`, or `*`).
    #[schemars(length(min = 1))]
    pub(crate) allow_origins: Vec<String>,
    /// Methods a preflight may ask for.
    #[serde(default = "default_cors_methods")]
    pub(crate) allow_methods: Vec<String>,
    /// Request headers a preflight may ask for.
    #[serde(default)]
    pub(crate) allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    pub(crate) expose_headers: Vec<String>,
    /// Allow cookies and credentials (never with origin `*`).
    #[serde(default)]
    pub(crate) allow_credentials: bool,
    /// How long a browser may reuse a preflight's answer.
    #[serde(default = "default_max_age", with = "super::Human")]
    pub(crate) max_age: Duration,
}

fn default_max_age() -> Duration {
    Duration::from_secs(600)
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// `basic_auth:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasicAuthFile {
    /// `user:hash` lines; argon2 (`$argon2id$...`) or bcrypt (`$2b$...`) hashes.
    pub(crate) users_file: String,
    /// The realm named in `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub(crate) realm: String,
    /// A request header that carries the authenticated user to the upstream.
    #[serde(default)]
    pub(crate) forward_user: Option<String>,
}

fn default_realm() -> String {
    "gateway".into()
}
