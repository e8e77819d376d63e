//! `gateway explain` against the real thing: one gateway runs a config with a route per
//! policy; each row of the table is explained (the binary, on that config file) and then
//! sent to the running gateway, and both must agree on what happens: proxied (the upstream
//! answered) or the gateway's own status. The explanation must also name what decided it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::{Auth, GatewayConfig, Jwt, Pool, RateLimit, Respond, Route, StaticKey};
use crate::gateway::{self, gateway_bin};
use crate::upstream::Upstream;

/// One request: what to send, and what the explanation must say.
struct Row {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    /// `None`: proxied; `Some(status)`: the gateway answers with it.
    answered: Option<u16>,
    /// Text the explanation must contain.
    says: &'static [&'static str],
}

fn row(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    answered: Option<u16>,
    says: &'static [&'static str],
) -> Row {
    Row {
        what,
        method,
        path,
        headers: Vec::new(),
        answered,
        says,
    }
}

impl Row {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

const SECRET: &str = "an-explain-test-hmac-secret-of-some-length";

fn token(exp_from_now: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = now.saturating_add_signed(exp_from_now);
    let claims = json!({ "sub": "ada", "iss": "explain", "aud": "api", "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn explain_agrees_with_the_running_gateway_on_every_policy() {
    // Arrange: a route per policy, all to one real upstream.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hmac"), SECRET).unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("ci:{}\n", sha256_hex("k-ci-1"))).unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        "bob:$2b$04$chTPKLoIDCPxa4jkLou7perNNhYaNe8D74qF9mX.WekIhKbwkMF7u\n",
    )
    .unwrap();
    let up = Upstream::spawn("up").await;
    let config = GatewayConfig::new()
        .jwt(Jwt::new(&["explain"], &["api"]).key(StaticKey::secret_file("HS256", dir.path().join("hmac"))))
        .pool("app", Pool::upstreams(&[&up]))
        .route(Route::prefix("/open").name("open").pool("app"))
        .route(Route::prefix("/only-get").name("only-get").pool("app").methods(&["GET"]))
        .route(Route::prefix("/inside").name("inside").pool("app").policy("ip_allow", json!(["10.0.0.0/8"])))
        .route(Route::prefix("/refused").name("refused").pool("app").policy("ip_deny", json!(["127.0.0.0/8"])))
        .route(
            Route::prefix("/cors").name("cors").pool("app").policy(
                "cors",
                json!({ "allow_origins": ["https://app.example.com"], "allow_methods": ["GET", "PUT"] }),
            ),
        )
        .route(Route::prefix("/basic").name("basic").pool("app").policy("basic_auth", json!({ "users_file": users })))
        .route(Route::prefix("/keys").name("keys").pool("app").policy("api_keys", json!({ "keys_file": keys })))
        .route(Route::prefix("/jwt").name("jwt").pool("app").auth(Auth::Required))
        .route(Route::prefix("/small").name("small").pool("app").body_limit("16"))
        .route(
            Route::prefix("/limited")
                .name("limited")
                .pool("app")
                .rate_limit(RateLimit::header("X-Tenant", 100, "1m")),
        )
        .route(
            Route::prefix("/rewrite")
                .name("rewrite")
                .pool("app")
                .policy("rewrite", json!({ "match": "^/rewrite/(.*)$", "to": "/v2/$1" })),
        )
        .route(Route::prefix("/strip").name("strip").pool("app").strip_prefix())
        .route(
            Route::prefix("/internal")
                .name("internal")
                .pool("app")
                .policy("upstream_host", json!("internal.example")),
        )
        .route(
            Route::prefix("/headers").name("headers").pool("app").policy(
                "request_headers",
                json!({ "set": { "X-Route": "${route}" }, "remove": ["X-Debug"] }),
            ),
        )
        .route(
            Route::prefix("/old")
                .name("old")
                .policy("redirect", json!({ "to": "https://example.com/new$1", "match": "^/old(.*)$", "status": 301 })),
        )
        .route(Route::path("/teapot").name("teapot").respond(Respond::status(418).body("short and stout")))
        .pool("canary", Pool::upstreams(&[&up]))
        .route(
            Route::prefix("/fwd")
                .name("fwd")
                .pool("app")
                .policy("forward_auth", json!({ "url": format!("http://{}/check", up.addr) })),
        )
        .route(Route::prefix("/split").name("split").policy(
            "split",
            json!([{ "pool": "app", "weight": 90 }, { "pool": "canary", "weight": 10 }]),
        ).policy("override_header", json!("X-Pool")))
        .route(
            Route::prefix("/dressed")
                .name("dressed")
                .pool("app")
                .policy("security_headers", json!("default"))
                .policy("compression", json!({}))
                .policy("response_headers", json!({ "set": { "X-Served-By": "gateway" } })),
        );
    let gw = gateway::start(&config).await;
    gw.wait_ready().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let rows = vec![
        row(
            "a plain route",
            "GET",
            "/open/a",
            None,
            &["route      open", "to pool app"],
        ),
        row(
            "no route",
            "GET",
            "/nowhere",
            Some(404),
            &["none matches /nowhere"],
        ),
        row(
            "a method the route does not take",
            "POST",
            "/only-get",
            Some(404),
            &["near miss: only-get", "method is not GET"],
        ),
        row(
            "a path without a canonical form",
            "GET",
            "/open/a%2Fb",
            Some(400),
            &["refused"],
        ),
        row(
            "a path in another spelling",
            "GET",
            "/open//a/",
            None,
            &["/open/a (the canonical spelling"],
        ),
        row(
            "ip_allow without the client",
            "GET",
            "/inside",
            Some(403),
            &["127.0.0.1 is refused"],
        ),
        row(
            "ip_deny of the client",
            "GET",
            "/refused",
            Some(403),
            &["ip_allow/ip_deny"],
        ),
        row(
            "a CORS preflight",
            "OPTIONS",
            "/cors/x",
            Some(204),
            &["the CORS preflight", "access-control-allow-methods"],
        )
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "PUT"),
        row(
            "a cross-origin GET",
            "GET",
            "/cors/x",
            None,
            &[
                "Origin https://app.example.com is allowed",
                "access-control-allow-origin: https://app.example.com",
            ],
        )
        .header("Origin", "https://app.example.com"),
        row(
            "basic auth without credentials",
            "GET",
            "/basic",
            Some(401),
            &["no Basic credentials"],
        ),
        row(
            "basic auth with credentials",
            "GET",
            "/basic",
            None,
            &["checked at request time"],
        )
        .header("Authorization", "Basic Ym9iOmIwYi1wYXNz"),
        row(
            "an API key route without a key",
            "GET",
            "/keys",
            Some(401),
            &["holds no key"],
        ),
        row(
            "an unknown API key",
            "GET",
            "/keys",
            Some(401),
            &["an unknown key"],
        )
        .header("X-API-Key", "k-nope"),
        row(
            "a listed API key",
            "GET",
            "/keys",
            None,
            &["holds the key of \"ci\"", "set x-api-key-name: ci"],
        )
        .header("X-API-Key", "k-ci-1"),
        row(
            "auth required without a token",
            "GET",
            "/jwt",
            Some(401),
            &["no bearer token"],
        ),
        row(
            "an expired token",
            "GET",
            "/jwt",
            Some(401),
            &["has expired"],
        )
        .header("Authorization", format!("Bearer {}", token(-3600))),
        row(
            "a valid token",
            "GET",
            "/jwt",
            None,
            &["a token for sub \"ada\""],
        )
        .header("Authorization", format!("Bearer {}", token(600))),
        row(
            "a body over the route's limit",
            "POST",
            "/small",
            Some(413),
            &["Content-Length 100 is over it"],
        )
        .header("Content-Length", "100"),
        row(
            "a rate limit keyed by a header",
            "GET",
            "/limited",
            None,
            &["counts against x-tenant acme"],
        )
        .header("X-Tenant", "acme"),
        row(
            "a rewrite",
            "GET",
            "/rewrite/a/b",
            None,
            &["the upstream path is /v2/a/b"],
        ),
        row(
            "strip_prefix",
            "GET",
            "/strip/x",
            None,
            &["the upstream path is /x"],
        ),
        row(
            "upstream_host",
            "GET",
            "/internal",
            None,
            &["upstream_host: Host internal.example"],
        ),
        row(
            "request header rules",
            "GET",
            "/headers",
            None,
            &["set x-route: headers", "remove x-debug"],
        ),
        row(
            "a client's identity header",
            "GET",
            "/open",
            None,
            &["remove x-user-id (only the gateway sets it)"],
        )
        .header("X-User-Id", "mallory"),
        row(
            "a redirect route",
            "GET",
            "/old/page",
            Some(301),
            &["Location https://example.com/new/page"],
        ),
        row(
            "a fixed answer",
            "GET",
            "/teapot",
            Some(418),
            &["the route's fixed answer"],
        ),
        row(
            "forward auth",
            "GET",
            "/fwd",
            None,
            &["forward_auth: asks GET http://"],
        ),
        row(
            "a split the tester picks",
            "GET",
            "/split",
            None,
            &["x-pool names canary", "to pool canary"],
        )
        .header("X-Pool", "canary"),
        row(
            "security and response headers, compression",
            "GET",
            "/dressed",
            None,
            &[
                "x-content-type-options: nosniff",
                "set x-served-by: gateway",
                "compression: zstd, br, gzip",
            ],
        )
        .header("Accept-Encoding", "gzip"),
    ];

    // Act and assert, row by row.
    let mut failures = Vec::new();
    for row in &rows {
        let url = gw.url(row.path);
        let mut explain = std::process::Command::new(gateway_bin());
        explain
            .args(["explain", "--config"])
            .arg(&gw.config_path)
            .args([row.method, &url]);
        for (name, value) in &row.headers {
            explain.arg("-H").arg(format!("{name}: {value}"));
        }
        let out = explain.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected_exit = if row.answered.is_some() { 1 } else { 0 };
        if out.status.code() != Some(expected_exit) {
            failures.push(format!(
                "{}: explain exited {:?}\n{text}{}",
                row.what,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        for says in row.says {
            if !text.contains(says) {
                failures.push(format!(
                    "{}: the explanation does not say {says:?}\n{text}",
                    row.what
                ));
            }
        }
        if let Some(status) = row.answered {
            let line = format!("answer     {status} ");
            if !text.contains(&line) {
                failures.push(format!(
                    "{}: explain does not answer {status}\n{text}",
                    row.what
                ));
            }
        }

        // The real gateway, with the same request.
        let mut request = client.request(row.method.parse().unwrap(), &url);
        for (name, value) in &row.headers {
            request = request.header(*name, value);
        }
        if row.headers.iter().any(|(n, _)| *n == "Content-Length") {
            request = request.body(vec![b'x'; 100]);
        }
        let response = request
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let from_upstream = response.headers().contains_key("x-upstream");
        let real = (!from_upstream).then(|| response.status().as_u16());
        if real != row.answered {
            failures.push(format!(
                "{}: explain says {:?}, the gateway did {real:?} (None: proxied)\n{text}",
                row.what, row.answered
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // With --admin, the pool's live endpoints come from the running gateway.
    let out = std::process::Command::new(gateway_bin())
        .args(["explain", "--config"])
        .arg(&gw.config_path)
        .args(["GET", &gw.url("/open"), "--admin", &gw.admin_url("")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let live = format!(
        "live       {} healthy=true check=off breaker=closed",
        up.addr
    );
    assert!(text.contains(&live), "no {live:?} in:\n{text}");
}

#[test]
fn explain_refuses_what_is_not_a_request_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, "pools:\n  a: { endpoints: [\"127.0.0.1:9\"] }\nroutes:\n  - match: { path_prefix: / }\n    pool: a\n").unwrap();
    for args in [
        vec!["NOT A METHOD", "http://x/"],
        vec!["GET", "ftp://x/"],
        vec!["GET", "http://x/", "-H", "no colon"],
    ] {
        let out = std::process::Command::new(gateway_bin())
            .args(["explain", "--config"])
            .arg(&config)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("gateway explain:"));
    }
}
