//! `forward_auth`: an auth service (oauth2-proxy, Authelia, an in-house one) decides each
//! request from a GET the gateway sends it. A 2xx lets the request through with the named
//! headers of the answer; any other answer goes back to the client as it is (a redirect to a
//! login page, a 401 with its challenge). A timeout bounds each call, a breaker stops calling
//! a failing service for a while (the route then answers 503 at once), and with `cache_ttl`
//! a 2xx is reused for the same credentials.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::config::edge::ForwardAuth;

/// Consecutive failures (timeouts, connection errors, 5xx) that open the breaker.
const TRIP_AFTER: u32 = 5;
/// How long an open breaker answers without calling the service; then one call may try.
const OPEN_FOR: Duration = Duration::from_secs(10);
/// The largest answer body passed on to a refused client.
const MAX_DENIAL_BODY: usize = 64 * 1024;

/// What the auth service decided.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Let the request through with these headers on the upstream request.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Answer the client with the service's response.
    Deny {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    /// The service could not decide (timeout, error, breaker open): fail closed.
    Unavailable,
}

/// The request facts the auth service is told, as Traefik's and nginx's auth_request
/// conventions name them.
pub(crate) struct Asking<'a> {
    pub(crate) method: &'a str,
    pub(crate) proto: &'a str,
    pub(crate) host: Option<&'a str>,
    pub(crate) uri: &'a str,
    pub(crate) client_ip: Option<std::net::IpAddr>,
    pub(crate) request_id: &'a str,
    pub(crate) headers: &'a HeaderMap,
}

/// Headers copied from an allowing answer onto the upstream request.
type Copied = Vec<(HeaderName, HeaderValue)>;

/// One route's auth-service client, rebuilt on reload.
pub(crate) struct ForwardAuthClient {
    config: ForwardAuth,
    client: reqwest::Client,
    breaker: Mutex<Breaker>,
    /// Allowing answers by credentials digest, with when they were given.
    allowed: quick_cache::sync::Cache<[u8; 32], (Instant, Copied)>,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl ForwardAuthClient {
    pub(crate) fn new(config: ForwardAuth) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            config,
            client,
            breaker: Mutex::new(Breaker::default()),
            allowed: quick_cache::sync::Cache::new(4096),
        }
    }

    /// Ask the service about one request.
    pub(crate) async fn decide(&self, asking: &Asking<'_>) -> Decision {
        let key = self.cache_key(asking.headers);
        if let Some((at, headers)) = key.and_then(|k| self.allowed.get(&k)) {
            if at.elapsed() < self.config.cache_ttl {
                return Decision::Allow(headers);
            }
        }
        if !self.may_call() {
            return Decision::Unavailable;
        }
        let mut req = self
            .client
            .get(&self.config.url)
            .header("x-forwarded-method", asking.method)
            .header("x-forwarded-proto", asking.proto)
            .header("x-forwarded-uri", asking.uri)
            .header("x-request-id", asking.request_id);
        if let Some(host) = asking.host {
            req = req.header("x-forwarded-host", host);
        }
        if let Some(ip) = asking.client_ip {
            req = req.header("x-forwarded-for", ip.to_string());
        }
        for name in &self.config.forward_headers {
            for value in asking.headers.get_all(name) {
                req = req.header(name.clone(), value.clone());
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(url = %self.config.url, error = %e, "forward_auth: the auth service did not answer");
                self.failed();
                return Decision::Unavailable;
            }
        };
        let status = resp.status();
        if status.is_server_error() {
            self.failed();
            return Decision::Unavailable;
        }
        self.succeeded();
        if status.is_success() {
            let headers: Vec<(HeaderName, HeaderValue)> = self
                .config
                .copy_headers
                .iter()
                .filter_map(|n| Some((n.clone(), resp.headers().get(n)?.clone())))
                .collect();
            if let (Some(k), false) = (key, self.config.cache_ttl.is_zero()) {
                self.allowed.insert(k, (Instant::now(), headers.clone()));
            }
            return Decision::Allow(headers);
        }
        let headers = denial_headers(resp.headers());
        let Some(body) = read_bounded(resp).await else {
            return Decision::Unavailable;
        };
        Decision::Deny {
            status,
            headers,
            body,
        }
    }

    /// The cache key of a request's credentials: the forwarded headers it carries, hashed.
    /// `None` (never cached) when it carries none of them.
    fn cache_key(&self, headers: &HeaderMap) -> Option<[u8; 32]> {
        use sha2::Digest as _;
        if self.config.cache_ttl.is_zero() {
            return None;
        }
        let mut digest = sha2::Sha256::new();
        let mut any = false;
        for name in &self.config.forward_headers {
            for value in headers.get_all(name) {
                any = true;
                digest.update(name.as_str().as_bytes());
                digest.update([0]);
                digest.update(value.as_bytes());
                digest.update([0]);
            }
        }
        any.then(|| digest.finalize().into())
    }

    fn may_call(&self) -> bool {
        let mut b = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match b.open_until {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half open: this call tries; another failure opens it again at once.
                b.open_until = None;
                b.failures = TRIP_AFTER - 1;
                true
            }
            None => true,
        }
    }

    fn failed(&self) {
        let mut b = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.failures += 1;
        if b.failures >= TRIP_AFTER {
            tracing::warn!(url = %self.config.url, "forward_auth: the auth service keeps failing; answering 503 without asking it for {OPEN_FOR:?}");
            b.open_until = Some(Instant::now() + OPEN_FOR);
        }
    }

    fn succeeded(&self) {
        let mut b = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.failures = 0;
    }
}

/// The headers of a denial the client needs: where to log in, how to authenticate, what the
/// body is, cookies the login flow sets.
fn denial_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    [
        http::header::LOCATION,
        http::header::WWW_AUTHENTICATE,
        http::header::SET_COOKIE,
        http::header::CONTENT_TYPE,
        http::header::CACHE_CONTROL,
    ]
    .into_iter()
    .flat_map(|name| {
        headers
            .get_all(&name)
            .iter()
            .map(move |v| (name.clone(), v.clone()))
            .collect::<Vec<_>>()
    })
    .collect()
}

async fn read_bounded(mut resp: reqwest::Response) -> Option<Bytes> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if body.len() + chunk.len() > MAX_DENIAL_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body.into())
}
