//! Edge policies that need no I/O: templates, CORS decisions, redirects and rewrites, and
//! basic-auth verification (password hashes checked on a bounded blocking pool, verified
//! credentials remembered).

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};

use crate::config::edge::{
    ApiKeys, BasicAuth, Cors, OriginPattern, Part, PasswordHash, Redirect, Rewrite, Template, Var,
};

/// What a template may refer to, for one request.
pub(crate) struct Vars<'a> {
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) request_id: &'a str,
    pub(crate) route: &'a str,
    pub(crate) host: Option<&'a str>,
    /// The canonical request path.
    pub(crate) path: &'a str,
    /// The route's match pattern, whose captures over `path` `$1` and `${name}` name.
    pub(crate) pattern: Option<&'a regex::Regex>,
}

/// The template's text for this request; a capture that did not take part is empty.
pub(crate) fn render(t: &Template, vars: &Vars<'_>) -> String {
    if let Some(text) = t.as_text() {
        return text.to_owned();
    }
    let captures = if t.uses_captures() {
        vars.pattern.and_then(|re| re.captures(vars.path))
    } else {
        None
    };
    let mut out = String::new();
    for part in &t.parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Var(Var::ClientIp) => {
                if let Some(ip) = vars.client_ip {
                    out.push_str(&ip.to_string());
                }
            }
            Part::Var(Var::RequestId) => out.push_str(vars.request_id),
            Part::Var(Var::Route) => out.push_str(vars.route),
            Part::Var(Var::Host) => out.push_str(vars.host.unwrap_or_default()),
            Part::Var(Var::Path) => out.push_str(vars.path),
            Part::Group(n) => {
                if let Some(m) = captures.as_ref().and_then(|c| c.get(*n)) {
                    out.push_str(m.as_str());
                }
            }
            Part::Named(name) => {
                if let Some(m) = captures.as_ref().and_then(|c| c.name(name)) {
                    out.push_str(m.as_str());
                }
            }
        }
    }
    out
}

/// A rendered template as a header value; `None` if the request's data made it invalid
/// (a header rule then does nothing rather than fail the request).
pub(crate) fn render_value(t: &Template, vars: &Vars<'_>) -> Option<HeaderValue> {
    HeaderValue::try_from(render(t, vars)).ok()
}

/// The upstream path for a `rewrite:` route; `None` when the pattern does not match (the
/// path then goes upstream unchanged).
pub(crate) fn rewrite_path(rewrite: &Rewrite, vars: &Vars<'_>) -> Option<String> {
    if !rewrite.pattern.is_match(vars.path) {
        return None;
    }
    let path = render(&rewrite.to, vars);
    Some(if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    })
}

/// The `Location` of a `redirect:` route; `None` when its pattern does not match the path.
pub(crate) fn redirect_location(
    redirect: &Redirect,
    vars: &Vars<'_>,
    query: Option<&str>,
) -> Option<String> {
    if !redirect.pattern.is_match(vars.path) {
        return None;
    }
    let mut location = render(&redirect.to, vars);
    if let (true, Some(q)) = (redirect.keep_query, query.filter(|q| !q.is_empty())) {
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(q);
    }
    Some(location)
}

/// The value of `Access-Control-Allow-Origin` for `origin`, or `None` when it is not
/// allowed (the response then carries no CORS headers and the browser blocks it).
pub(crate) fn allowed_origin(cors: &Cors, origin: &HeaderValue) -> Option<HeaderValue> {
    let text = origin.to_str().ok()?;
    let lower = text.to_ascii_lowercase();
    let allowed = cors.origins.iter().any(|p| match p {
        OriginPattern::Any => true,
        OriginPattern::Exact(o) => *o == lower,
        OriginPattern::Subdomains { scheme, suffix } => lower
            .strip_prefix(scheme.as_str())
            .and_then(|r| r.strip_prefix("://"))
            .is_some_and(|host| {
                host.ends_with(suffix.as_str())
                    && host.len() > suffix.len()
                    && !host.contains(['/', '@'])
            }),
    });
    if !allowed {
        return None;
    }
    // `*` only where any origin is allowed without credentials; otherwise the origin itself
    // (which is why responses carry `Vary: Origin`).
    let any = cors.origins.contains(&OriginPattern::Any) && !cors.allow_credentials;
    Some(if any {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    })
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. Returns
/// the method the browser asks about.
pub(crate) fn preflight_method(req: &pingora::http::RequestHeader) -> Option<Method> {
    if req.method != Method::OPTIONS || !req.headers.contains_key(http::header::ORIGIN) {
        return None;
    }
    let asked = req
        .headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
    Method::from_bytes(asked.as_bytes()).ok()
}

/// The headers of the gateway's answer to a preflight from an allowed origin.
pub(crate) fn preflight_headers(
    cors: &Cors,
    allow_origin: HeaderValue,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![
        (http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin),
        (
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            cors.allow_methods.clone(),
        ),
        (
            http::header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(cors.max_age.as_secs()),
        ),
    ];
    if let Some(h) = &cors.allow_headers {
        out.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
    }
    if cors.allow_credentials {
        out.push((
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    out
}

/// The headers an actual (non-preflight) response to an allowed origin carries.
pub(crate) fn response_headers(
    cors: &Cors,
    allow_origin: HeaderValue,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)];
    if let Some(h) = &cors.expose_headers {
        out.push((http::header::ACCESS_CONTROL_EXPOSE_HEADERS, h.clone()));
    }
    if cors.allow_credentials {
        out.push((
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    out
}

/// The name of the key `presented` is, if it is one of `keys`. Every stored digest is
/// compared, each in constant time, so the time taken says nothing about which key (or how
/// much of one) matched.
pub(crate) fn match_api_key<'a>(keys: &'a ApiKeys, presented: &[u8]) -> Option<&'a str> {
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(presented).into();
    let mut found = None;
    for (name, stored) in &keys.keys {
        let diff = stored
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            found = Some(name.as_str());
        }
    }
    found
}

/// Why basic auth refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BasicRefusal {
    /// No `Authorization: Basic` header, or one that does not decode.
    Missing,
    /// Unknown user or wrong password.
    Invalid,
    /// Too many password checks are running; try again shortly.
    Busy,
}

/// Checks `Authorization: Basic` credentials against one `basic_auth` user list. Password
/// hashes are slow on purpose, so checks run on the blocking pool, at most `permits` at a
/// time (beyond that a request is refused with 503 rather than queued), and credentials that
/// verified are remembered by a SHA-256 of the header value, so a browser that sends them
/// on every request costs one hash check, not one per request. A reload builds a new
/// verifier, so a changed users file takes effect at once.
pub(crate) struct BasicVerifier {
    auth: Arc<BasicAuth>,
    verified: quick_cache::sync::Cache<[u8; 32], Arc<str>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl BasicVerifier {
    pub(crate) fn new(auth: BasicAuth, permits: Arc<tokio::sync::Semaphore>) -> Self {
        Self {
            auth: Arc::new(auth),
            verified: quick_cache::sync::Cache::new(1024),
            permits,
        }
    }

    pub(crate) fn realm(&self) -> &str {
        &self.auth.realm
    }

    pub(crate) fn forward_user(&self) -> Option<&HeaderName> {
        self.auth.forward_user.as_ref()
    }

    /// The user the request's `Authorization` header proves, or why not.
    pub(crate) async fn verify(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Arc<str>, BasicRefusal> {
        use sha2::Digest as _;
        let value = authorization.ok_or(BasicRefusal::Missing)?;
        let key: [u8; 32] = sha2::Sha256::digest(value.as_bytes()).into();
        if let Some(user) = self.verified.get(&key) {
            return Ok(user);
        }
        let (user, password) = decode_basic(value).ok_or(BasicRefusal::Missing)?;
        let Some(hash) = self.auth.users.get(&user).cloned() else {
            return Err(BasicRefusal::Invalid);
        };
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| BasicRefusal::Busy)?;
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check_password(&hash, &password)
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Err(BasicRefusal::Invalid);
        }
        let user: Arc<str> = user.into();
        self.verified.insert(key, user.clone());
        Ok(user)
    }
}

/// `Basic base64(user:password)` -> (user, password).
fn decode_basic(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn check_password(hash: &PasswordHash, password: &str) -> bool {
    match hash {
        PasswordHash::Argon2(phc) => {
            use argon2::PasswordVerifier as _;
            argon2::PasswordHash::new(phc).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        }
        PasswordHash::Bcrypt(text) => bcrypt::verify(password, text).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cors(origins: &[OriginPattern], credentials: bool) -> Cors {
        Cors {
            origins: origins.to_vec(),
            allow_methods: HeaderValue::from_static("GET, POST"),
            methods: vec![Method::GET, Method::POST],
            allow_headers: None,
            expose_headers: None,
            allow_credentials: credentials,
            max_age: Duration::from_secs(600),
        }
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain_and_echo_with_credentials() {
        let c = cors(
            &[
                OriginPattern::Exact("https://app.example.com".into()),
                OriginPattern::Subdomains {
                    scheme: "https".into(),
                    suffix: ".example.org".into(),
                },
            ],
            true,
        );
        let allowed = |o: &'static str| allowed_origin(&c, &HeaderValue::from_static(o));

        assert_eq!(
            allowed("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert!(allowed("https://a.b.example.org").is_some());
        assert!(
            allowed("https://example.org").is_none(),
            "the apex is not a subdomain"
        );
        assert!(allowed("http://a.example.org").is_none(), "scheme matters");
        assert!(allowed("https://evil-example.org").is_none());
        assert!(allowed("https://app.example.com.evil.net").is_none());
        assert!(allowed("null").is_none());
    }

    #[test]
    fn any_origin_without_credentials_is_a_star() {
        let c = cors(&[OriginPattern::Any], false);
        assert_eq!(
            allowed_origin(&c, &HeaderValue::from_static("https://x.test")).unwrap(),
            "*"
        );
    }

    #[test]
    fn api_keys_match_by_digest() {
        use sha2::Digest as _;
        let digest = |k: &str| -> [u8; 32] { sha2::Sha256::digest(k.as_bytes()).into() };
        let keys = ApiKeys {
            header: HeaderName::from_static("x-api-key"),
            keys: vec![
                ("ci".into(), digest("k-ci")),
                ("ops".into(), digest("k-ops")),
            ],
            forward_name: HeaderName::from_static("x-api-key-name"),
        };
        assert_eq!(match_api_key(&keys, b"k-ops"), Some("ops"));
        assert_eq!(match_api_key(&keys, b"k-ci"), Some("ci"));
        assert_eq!(match_api_key(&keys, b"k-op"), None);
        assert_eq!(match_api_key(&keys, b""), None);
    }

    #[test]
    fn basic_credentials_decode() {
        // "alice:s3cr:et" -> the password may hold a colon.
        let v = HeaderValue::from_static("Basic YWxpY2U6czNjcjpldA==");
        assert_eq!(
            decode_basic(&v),
            Some(("alice".to_owned(), "s3cr:et".to_owned()))
        );
        assert_eq!(decode_basic(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(decode_basic(&HeaderValue::from_static("Basic %%%")), None);
    }
}
