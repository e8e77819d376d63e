//! Edge policies on a real gateway: client addresses, redirects, rewrites, header rules,
//! security headers, basic auth and CORS (as a plain HTTP client sees it; `cors_browser`
//! checks CORS in a real browser).

use serde_json::{json, Value};

use super::metric_value;
use crate::config::{GatewayConfig, Pool, Route};
use crate::gateway;
use crate::upstream::Upstream;

/// The upstream's echo of what the gateway forwarded.
async fn echo(resp: reqwest::Response) -> Value {
    resp.json().await.expect("an echo body")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn ip_rules_refuse_with_403_problem_json_route_rules_replacing_the_defaults() {
    // Arrange: the gateway trusts the test (127.0.0.1) as a proxy, so X-Forwarded-For
    // chooses the client address each request is judged by.
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .trusted_proxy("127.0.0.1")
            .pool("a", Pool::upstreams(&[&up]))
            .route_defaults(json!({ "ip_deny": ["192.0.2.0/24", "2001:db8:bad::/48"] }))
            .route(Route::prefix("/open").name("open").pool("a"))
            .route(
                Route::prefix("/internal")
                    .name("internal")
                    .pool("a")
                    .policy("ip_allow", json!(["10.0.0.0/8", "fd00::/8"])),
            )
            .route(
                Route::prefix("/anyone")
                    .name("anyone")
                    .pool("a")
                    .policy("ip_deny", json!([])),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let status_from = |path: &'static str, client_ip: &'static str| {
        let client = client.clone();
        let url = gw.url(path);
        async move {
            client
                .get(url)
                .header("x-forwarded-for", client_ip)
                .send()
                .await
                .expect("response")
        }
    };

    // Act
    let open_ok = status_from("/open", "198.51.100.1").await;
    let open_denied = status_from("/open", "192.0.2.7").await;
    let open_denied_v6 = status_from("/open", "2001:db8:bad::1").await;
    let internal_outside = status_from("/internal", "198.51.100.1").await;
    let internal_inside = status_from("/internal", "10.1.2.3").await;
    let internal_mapped = status_from("/internal", "::ffff:10.1.2.3").await;
    let anyone = status_from("/anyone", "192.0.2.7").await;

    // Assert
    assert_eq!(open_ok.status(), 200);
    assert_eq!(open_denied.status(), 403, "the default deny list");
    assert_eq!(open_denied_v6.status(), 403, "IPv6 ranges");
    assert_eq!(
        open_denied.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = open_denied.json().await.unwrap();
    assert_eq!(problem["status"], 403);
    assert_eq!(internal_outside.status(), 403, "outside the allow list");
    assert_eq!(internal_inside.status(), 200);
    assert_eq!(
        internal_mapped.status(),
        200,
        "an IPv4-mapped address is its IPv4 address"
    );
    assert_eq!(
        anyone.status(),
        200,
        "a route's own ip_deny replaces the default"
    );
    assert_eq!(
        up.requests(),
        4,
        "refused requests never reach the upstream"
    );
    let refused = r#"gateway_policy_rejections_total{reason="ip_access",route="open"}"#;
    assert_eq!(metric_value(&gw, refused).await, Some(2.0));
}

#[tokio::test]
async fn redirect_routes_answer_with_their_location_and_keep_the_query() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(Route::prefix("/").name("all").pool("a"))
            .route(Route::prefix("/old").name("old").policy(
                "redirect",
                json!({ "match": "^/old/(?P<rest>.*)$", "to": "https://example.com/new/${rest}", "status": 301 }),
            ))
            .route(Route::path("/docs").name("docs").policy(
                "redirect",
                json!({ "to": "/documentation$1", "keep_query": false }),
            )),
    )
    .await;
    gw.wait_ready().await;
    let client = no_redirects();

    // Act
    let old = client.get(gw.url("/old/a/b?x=1&y=2")).send().await.unwrap();
    let docs = client.get(gw.url("/docs?drop=me")).send().await.unwrap();
    let unmatched = client.get(gw.url("/old")).send().await.unwrap();

    // Assert
    assert_eq!(old.status(), 301);
    assert_eq!(
        old.headers()["location"],
        "https://example.com/new/a/b?x=1&y=2"
    );
    assert_eq!(docs.status(), 302, "temporary unless told otherwise");
    assert_eq!(docs.headers()["location"], "/documentation/docs");
    assert_eq!(
        unmatched.status(),
        404,
        "the route's pattern does not match /old itself"
    );
    assert_eq!(up.requests(), 0);
    let counted = r#"gateway_edge_actions_total{action="redirect",route="old"}"#;
    assert_eq!(metric_value(&gw, counted).await, Some(1.0));
}

#[tokio::test]
async fn rewrite_and_header_rules_shape_the_upstream_request_and_the_response() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(
            Route::prefix("/api/v1")
                .name("v1")
                .pool("a")
                .policy(
                    "rewrite",
                    json!({ "match": "^/api/v1/(?P<res>[a-z]+)/(\\d+)$", "to": "/${res}?id=$2" }),
                )
                .policy("upstream_host", json!("api.internal"))
                .policy(
                    "request_headers",
                    json!({
                        "set": { "X-Route": "${route}", "X-Resource": "${res}" },
                        "add": { "X-Client": "ip=${client_ip} id=${request_id}" },
                        "remove": ["X-Debug"]
                    }),
                )
                .policy(
                    "response_headers",
                    json!({ "set": { "Cache-Control": "no-store" }, "remove": ["X-Internal"] }),
                ),
        ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let resp = client
        .get(gw.url("/api/v1/users/42?page=2"))
        .header("x-request-id", "rid-7")
        .header("x-debug", "1")
        .header("x-route", "spoofed")
        .header("x-reply-x-internal", "secret")
        .header("x-reply-cache-control", "max-age=60")
        .send()
        .await
        .unwrap();
    let unmatched = client.get(gw.url("/api/v1/other")).send().await.unwrap();

    // Assert
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store", "set replaces");
    assert!(resp.headers().get("x-internal").is_none(), "removed");
    let seen = echo(resp).await;
    assert_eq!(
        seen["target"], "/users?id=42&page=2",
        "rewritten with captures, the query kept"
    );
    assert_eq!(seen["headers"]["host"], "api.internal");
    assert_eq!(
        seen["headers"]["x-route"], "v1",
        "set replaces the client's"
    );
    assert_eq!(seen["headers"]["x-resource"], "users");
    assert_eq!(seen["headers"]["x-client"], "ip=127.0.0.1 id=rid-7");
    assert!(seen["headers"].get("x-debug").is_none());
    let other = echo(unmatched).await;
    assert_eq!(
        other["target"], "/api/v1/other",
        "a path the pattern does not match goes as it is"
    );
    let counted = r#"gateway_edge_actions_total{action="rewrite",route="v1"}"#;
    assert_eq!(metric_value(&gw, counted).await, Some(1.0));
}

#[tokio::test]
async fn security_headers_fill_in_what_the_upstream_left_out_and_hide_its_banner() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route_defaults(json!({ "security_headers": "default" }))
            .route(Route::prefix("/").name("all").pool("a"))
            .route(
                Route::prefix("/embed")
                    .name("embed")
                    .pool("a")
                    .policy(
                        "security_headers",
                        json!({ "frame_options": "off", "content_security_policy": "frame-ancestors https://partner.example" }),
                    ),
            )
            .route(
                Route::prefix("/raw")
                    .name("raw")
                    .pool("a")
                    .policy("security_headers", json!("off")),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let get = |path: &'static str, frame: Option<&'static str>| {
        let mut req = client
            .get(gw.url(path))
            .header("x-reply-server", "upstream/1.0")
            .header("x-reply-x-powered-by", "Express");
        if let Some(f) = frame {
            req = req.header("x-reply-x-frame-options", f);
        }
        req.send()
    };

    // Act
    let plain = get("/", None).await.unwrap();
    let framed = get("/", Some("SAMEORIGIN")).await.unwrap();
    let embed = get("/embed", None).await.unwrap();
    let raw = get("/raw", None).await.unwrap();
    let missing = client.get(gw.url("/nowhere-else")).send().await.unwrap();

    // Assert
    let h = plain.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(
        h.get("strict-transport-security").is_none(),
        "never over plain HTTP"
    );
    assert!(h.get("x-powered-by").is_none());
    assert!(
        h.get_all("server").iter().all(|v| v != "upstream/1.0"),
        "the upstream's banner is hidden: {:?}",
        h.get_all("server")
    );
    assert_eq!(
        framed.headers()["x-frame-options"],
        "SAMEORIGIN",
        "the upstream's own value wins"
    );
    assert!(embed.headers().get("x-frame-options").is_none());
    assert_eq!(
        embed.headers()["content-security-policy"],
        "frame-ancestors https://partner.example"
    );
    assert_eq!(embed.headers()["x-content-type-options"], "nosniff");
    assert!(raw.headers().get("x-content-type-options").is_none());
    assert_eq!(raw.headers()["x-powered-by"], "Express");
    assert_eq!(missing.status(), 200, "the catch-all route");
}

/// A bcrypt hash (cost 4) of `b0b-pass` and an argon2id hash of `alice-pass`.
const USERS: &str = "# users of the ops route\n\
alice:$argon2id$v=19$m=8192,t=1,p=1$4AH1ij1ssj9Vw7ex2SWvhA$SQIL5BZrbi+5gcu9t/f9NKxYVZtSg2ok3gqROA0e78M\n\
bob:$2b$04$chTPKLoIDCPxa4jkLou7perNNhYaNe8D74qF9mX.WekIhKbwkMF7u\n";

#[tokio::test]
async fn basic_auth_admits_listed_users_and_forwards_the_user_not_the_password() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.htpasswd");
    std::fs::write(&users, USERS).unwrap();
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(Route::prefix("/").name("public").pool("a"))
            .route(Route::prefix("/ops").name("ops").pool("a").policy(
                "basic_auth",
                json!({ "users_file": users, "realm": "ops", "forward_user": "X-Auth-User" }),
            )),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let ops = |user: Option<(&'static str, &'static str)>| {
        let mut req = client.get(gw.url("/ops/status"));
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        req.send()
    };

    // Act
    let none = ops(None).await.unwrap();
    let wrong = ops(Some(("alice", "nope"))).await.unwrap();
    let unknown = ops(Some(("mallory", "alice-pass"))).await.unwrap();
    let alice = ops(Some(("alice", "alice-pass"))).await.unwrap();
    let alice_again = ops(Some(("alice", "alice-pass"))).await.unwrap();
    let bob = ops(Some(("bob", "b0b-pass"))).await.unwrap();
    let spoofed = client
        .get(gw.url("/public"))
        .header("x-auth-user", "root")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Basic realm=\"ops\", charset=\"UTF-8\""
    );
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    assert_eq!(
        (wrong.status().as_u16(), unknown.status().as_u16()),
        (401, 401)
    );
    assert_eq!(alice.status(), 200);
    let seen = echo(alice).await;
    assert_eq!(seen["headers"]["x-auth-user"], "alice");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the password stays at the gateway"
    );
    assert_eq!(alice_again.status(), 200);
    assert_eq!(echo(bob).await["headers"]["x-auth-user"], "bob", "bcrypt");
    assert!(
        echo(spoofed).await["headers"].get("x-auth-user").is_none(),
        "a client's copy of the user header is stripped on every route"
    );
    let refused = r#"gateway_policy_rejections_total{reason="basic_auth",route="ops"}"#;
    assert_eq!(metric_value(&gw, refused).await, Some(3.0));
}

#[tokio::test]
async fn cors_preflights_are_answered_at_the_gateway_and_responses_name_the_origin() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(
                Route::prefix("/api")
                    .name("api")
                    .pool("a")
                    .methods(&["GET", "POST"])
                    .policy(
                        "cors",
                        json!({
                            "allow_origins": ["https://app.example.com", "https://*.example.org"],
                            "allow_methods": ["GET", "POST"],
                            "allow_headers": ["Content-Type", "Authorization"],
                            "expose_headers": ["X-Request-Id"],
                            "allow_credentials": true,
                            "max_age": "10m"
                        }),
                    ),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, gw.url("/api/items"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };

    // Act
    let allowed = preflight("https://app.example.com").await.unwrap();
    let sub = preflight("https://eu.shop.example.org").await.unwrap();
    let other = preflight("https://evil.example.net").await.unwrap();
    let actual = client
        .post(gw.url("/api/items"))
        .header("origin", "https://app.example.com")
        .header("x-reply-access-control-allow-origin", "*")
        .send()
        .await
        .unwrap();
    let foreign = client
        .get(gw.url("/api/items"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(allowed.status(), 204);
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET, POST");
    assert_eq!(
        h["access-control-allow-headers"],
        "Content-Type, Authorization"
    );
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h["vary"].to_str().unwrap().contains("Origin"));
    assert_eq!(
        sub.headers()["access-control-allow-origin"],
        "https://eu.shop.example.org"
    );
    assert_eq!(other.status(), 204);
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "an origin not allowed gets no CORS headers"
    );
    assert_eq!(up.requests(), 2, "preflights are never forwarded");
    assert_eq!(actual.status(), 200);
    let h = actual.headers();
    assert_eq!(
        h.get_all("access-control-allow-origin")
            .iter()
            .collect::<Vec<_>>(),
        ["https://app.example.com"],
        "the gateway's answer replaces the upstream's"
    );
    assert_eq!(h["access-control-expose-headers"], "X-Request-Id");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["vary"].to_str().unwrap().contains("Origin"));
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let counted = r#"gateway_edge_actions_total{action="cors_preflight",route="api"}"#;
    assert_eq!(metric_value(&gw, counted).await, Some(3.0));
}

/// Decode a body the gateway encoded with `coding`.
fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
        }
        "zstd" => out = zstd::decode_all(body).expect("zstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

#[tokio::test]
async fn compression_follows_accept_encoding_and_leaves_what_it_must_alone() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route_defaults(json!({ "compression": { "min_size": "2KiB" } }))
            .route(Route::prefix("/").name("all").pool("a"))
            .route(
                Route::prefix("/plain")
                    .name("plain")
                    .pool("a")
                    .strip_prefix()
                    .policy("compression", json!("off")),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let big = crate::upstream::big_body(1 << 20);
    let get = |path: &str, accept: &str, extra: &[(&'static str, &'static str)]| {
        let mut req = client
            .get(gw.url(path))
            .header("accept-encoding", accept.to_owned());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send()
    };

    // Act / Assert: each client gets the coding it prefers most among the gateway's.
    for (accept, coding) in [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, br;q=0.9", "gzip"),
        ("br", "br"),
        ("zstd;q=0, *;q=0.5", "br"),
    ] {
        let resp = get("/big/1048576", accept, &[("x-reply-etag", "\"v1\"")])
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let h = resp.headers().clone();
        assert_eq!(h["content-encoding"], coding, "for {accept}");
        assert!(
            h.get("content-length").is_none(),
            "the length is not the upstream's"
        );
        assert_eq!(
            h["transfer-encoding"], "chunked",
            "chunked, so the connection stays open"
        );
        assert_eq!(h["vary"], "Accept-Encoding");
        assert_eq!(h["etag"], "W/\"v1\"", "a strong validator is weakened");
        let body = resp.bytes().await.unwrap();
        assert!(
            body.len() < big.len() / 10,
            "{coding}: {} bytes",
            body.len()
        );
        assert_eq!(
            decode(coding, &body),
            big,
            "{coding} decodes to the original"
        );
    }

    let identity = get("/big/1048576", "identity", &[]).await.unwrap();
    let refused = get("/big/1048576", "gzip;q=0", &[]).await.unwrap();
    let small = get("/big/1000", "gzip", &[]).await.unwrap();
    let image = get(
        "/big/4096",
        "gzip",
        &[("x-reply-content-type", "image/png")],
    )
    .await
    .unwrap();
    let encoded = get("/big/4096", "gzip", &[("x-reply-content-encoding", "br")])
        .await
        .unwrap();
    let no_transform = get(
        "/big/4096",
        "gzip",
        &[("x-reply-cache-control", "no-transform")],
    )
    .await
    .unwrap();
    let head = client
        .head(gw.url("/big/4096"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    let off = get("/plain/big/4096", "gzip", &[]).await.unwrap();

    for (what, resp, vary) in [
        ("identity", &identity, true),
        ("gzip;q=0", &refused, true),
        ("under min_size", &small, false),
        ("image/png", &image, false),
        ("already encoded", &encoded, false),
        ("no-transform", &no_transform, false),
        ("HEAD", &head, false),
        ("compression: off", &off, false),
    ] {
        let h = resp.headers();
        assert!(
            h.get("content-encoding")
                .is_none_or(|v| v == "br" && what == "already encoded"),
            "{what}: {h:?}"
        );
        assert_eq!(h.get("vary").is_some(), vary, "{what}: {h:?}");
        assert!(h.get("content-length").is_some(), "{what} keeps its length");
    }
    assert_eq!(identity.bytes().await.unwrap(), big);
    let counted = r#"gateway_edge_actions_total{action="compress",route="all"}"#;
    assert_eq!(metric_value(&gw, counted).await, Some(4.0));
}

#[tokio::test]
async fn api_keys_admit_known_keys_forward_their_name_and_key_rate_limits() {
    // Arrange: keys are stored as the SHA-256 of their text.
    use sha2::Digest as _;
    let hex = |key: &str| -> String {
        sha2::Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("api-keys");
    std::fs::write(
        &keys,
        format!(
            "# name:sha256\nci:{}\nops:{}\n",
            hex("k-ci-7f3a"),
            hex("k-ops-91bc")
        ),
    )
    .unwrap();
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(
                Route::prefix("/")
                    .name("api")
                    .pool("a")
                    .rate_limit(
                        crate::config::RateLimit::new(1, "1m")
                            .key("api_key")
                            .burst(2),
                    )
                    .policy("api_keys", json!({ "keys_file": keys })),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let with_key = |key: Option<&'static str>| {
        let mut req = client
            .get(gw.url("/items"))
            .header("x-api-key-name", "admin");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };

    // Act
    let none = with_key(None).await.unwrap();
    let wrong = with_key(Some("k-ci-7f3b")).await.unwrap();
    let ci: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(with_key(Some("k-ci-7f3a")).await.unwrap().status().as_u16());
        }
        out
    };
    let ops = with_key(Some("k-ops-91bc")).await.unwrap();

    // Assert
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "ApiKey realm=\"gateway\", header=\"x-api-key\""
    );
    assert_eq!(wrong.status(), 401);
    assert_eq!(ci, [200, 200, 429], "the burst of 2 counts per key name");
    assert_eq!(ops.status(), 200, "another key has its own bucket");
    let seen = echo(ops).await;
    assert_eq!(
        seen["headers"]["x-api-key-name"], "ops",
        "the client's own value is replaced"
    );
    assert!(
        seen["headers"].get("x-api-key").is_none(),
        "the key stays at the gateway"
    );
    let refused = r#"gateway_policy_rejections_total{reason="api_key",route="api"}"#;
    assert_eq!(metric_value(&gw, refused).await, Some(2.0));
}

/// A small auth service: `Bearer good` is alice (200 with her name), `Bearer slow` never
/// answers, `Bearer broken` gets a 500, no token a 302 to a login page, anything else a
/// 401 with a challenge. It counts its calls and echoes the request facts it was told in
/// `x-seen-uri` and `x-seen-method`.
async fn auth_service() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let addr = crate::serve::spawn(move |req: hyper::Request<hyper::body::Incoming>| {
        counter.fetch_add(1, SeqCst);
        let h = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (auth, uri, method) = (
            h("authorization"),
            h("x-forwarded-uri"),
            h("x-forwarded-method"),
        );
        async move {
            let resp = hyper::Response::builder()
                .header("x-seen-uri", uri)
                .header("x-seen-method", method);
            let resp = match auth.as_str() {
                "Bearer good" => resp
                    .status(200)
                    .header("x-auth-user", "alice")
                    .header("x-auth-groups", "admins")
                    .body(String::new()),
                // A service that hangs: it never answers.
                "Bearer slow" => std::future::pending().await,
                "Bearer broken" => resp.status(500).body(String::new()),
                "" => resp
                    .status(302)
                    .header("location", "https://login.example/start?rd=/app")
                    .header("set-cookie", "csrf=1; HttpOnly")
                    .body(String::new()),
                _ => resp
                    .status(401)
                    .header("www-authenticate", "Bearer realm=\"sso\"")
                    .header("content-type", "text/plain")
                    .body("token rejected by sso".to_owned()),
            };
            resp.expect("a valid response")
                .map(|b| http_body_util::Full::new(bytes::Bytes::from(b)))
        }
    })
    .await;
    (addr, calls)
}

#[tokio::test]
async fn forward_auth_lets_the_service_decide_copies_its_headers_and_fails_closed() {
    use std::sync::atomic::Ordering::SeqCst;
    // Arrange
    let (auth, calls) = auth_service().await;
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(Route::prefix("/").name("public").pool("a"))
            .route(Route::prefix("/app").name("app").pool("a").policy(
                "forward_auth",
                json!({
                    "url": format!("http://{auth}/check"),
                    "timeout": "500ms",
                    "copy_headers": ["X-Auth-User", "X-Auth-Groups", "X-Seen-Uri", "X-Seen-Method"]
                }),
            ))
            .route(Route::prefix("/cached").name("cached").pool("a").policy(
                "forward_auth",
                json!({ "url": format!("http://{auth}/check"), "cache_ttl": "1m", "copy_headers": ["X-Auth-User"] }),
            )),
    )
    .await;
    gw.wait_ready().await;
    let client = no_redirects();
    let app = |token: Option<&'static str>| {
        let mut req = client.get(gw.url("/app/page?x=1"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.header("x-auth-user", "mallory").send()
    };

    // Act
    let allowed = app(Some("good")).await.unwrap();
    let login = app(None).await.unwrap();
    let rejected = app(Some("bad")).await.unwrap();
    let slow = app(Some("slow")).await.unwrap();
    let spoofed = client
        .get(gw.url("/public"))
        .header("x-auth-user", "mallory")
        .send()
        .await
        .unwrap();
    let before_breaker = calls.load(SeqCst);
    let mut broken = Vec::new();
    for _ in 0..7 {
        broken.push(app(Some("broken")).await.unwrap().status().as_u16());
    }
    let calls_while_broken = calls.load(SeqCst) - before_breaker;
    let before_cached = calls.load(SeqCst);
    let mut cached = Vec::new();
    for token in ["good", "good", "good", "other"] {
        let resp = client
            .get(gw.url("/cached"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        cached.push(resp.status().as_u16());
    }
    let cached_calls = calls.load(SeqCst) - before_cached;

    // Assert
    assert_eq!(allowed.status(), 200);
    let seen = echo(allowed).await;
    assert_eq!(
        seen["headers"]["x-auth-user"], "alice",
        "copied, the client's replaced"
    );
    assert_eq!(seen["headers"]["x-auth-groups"], "admins");
    assert_eq!(
        (
            &seen["headers"]["x-seen-uri"],
            &seen["headers"]["x-seen-method"]
        ),
        (&json!("/app/page?x=1"), &json!("GET")),
        "the service is told what the client asked for"
    );
    assert_eq!(
        login.status(),
        302,
        "the service's own answer goes to the client"
    );
    assert_eq!(
        login.headers()["location"],
        "https://login.example/start?rd=/app"
    );
    assert_eq!(login.headers()["set-cookie"], "csrf=1; HttpOnly");
    assert!(login.headers().get("x-request-id").is_some());
    assert_eq!(rejected.status(), 401);
    assert_eq!(
        rejected.headers()["www-authenticate"],
        "Bearer realm=\"sso\""
    );
    assert_eq!(rejected.text().await.unwrap(), "token rejected by sso");
    assert_eq!(
        slow.status(),
        503,
        "a service slower than the timeout fails closed"
    );
    assert_eq!(slow.headers()["content-type"], "application/problem+json");
    assert!(
        echo(spoofed).await["headers"].get("x-auth-user").is_none(),
        "a copied header is the gateway's on every route"
    );
    assert_eq!(broken, [503; 7]);
    assert_eq!(
        calls_while_broken, 4,
        "the breaker opens after five failures in a row (the slow call was the first)"
    );
    assert_eq!(cached, [200, 200, 200, 401]);
    assert_eq!(
        cached_calls, 2,
        "with cache_ttl a 2xx is reused for the same credentials; a refusal is not cached"
    );
    assert_eq!(up.requests(), 5, "the allowed requests and the public one");
    let refused = r#"gateway_policy_rejections_total{reason="forward_auth",route="app"}"#;
    assert_eq!(metric_value(&gw, refused).await, Some(10.0));
}

#[tokio::test]
async fn edge_policies_follow_config_edits_and_sighup_rereads_the_users_file() {
    // Arrange: the test's own address is denied, and /ops admits alice.
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.htpasswd");
    std::fs::write(&users, USERS).unwrap();
    let up = Upstream::spawn("a").await;
    let config = |deny: &[&str]| {
        GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(
                Route::prefix("/")
                    .name("all")
                    .pool("a")
                    .policy("ip_deny", json!(deny)),
            )
            .route(
                Route::prefix("/ops")
                    .name("ops")
                    .pool("a")
                    .policy("basic_auth", json!({ "users_file": users })),
            )
    };
    let gw = gateway::start(&config(&["127.0.0.1"])).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let status = |path: &'static str, user: &'static str, password: &'static str| {
        let req = client.get(gw.url(path)).basic_auth(user, Some(password));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/", "-", "-").await, 403);
    assert_eq!(status("/ops", "alice", "alice-pass").await, 200);

    // Act: allow the address (an edit of gateway.yaml), then drop alice from the users file
    // (gateway.yaml unchanged) and send SIGHUP.
    gw.rewrite_config(&config(&["192.0.2.0/24"]));
    crate::assert_eventually!(
        status("/", "-", "-").await == 200,
        "the edited ip_deny never applied"
    );
    std::fs::write(&users, USERS.replace("alice:", "#alice:")).unwrap();
    gw.hangup();

    // Assert
    crate::assert_eventually!(
        status("/ops", "alice", "alice-pass").await == 401,
        "SIGHUP did not re-read the users file"
    );
    assert_eq!(status("/ops", "bob", "b0b-pass").await, 200);
}
