use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::config::{
    Auth, ForwardSecret, GatewayConfig, Jwt, Pool, Route, StaticKey, VerificationLimit,
};
use crate::gateway::{self, TestGateway};
use crate::jwks::{claims, jwt_section, now, JwksServer, SigningKey};
use crate::upstream::Upstream;

/// `/api` requires a token, `/open` takes one optionally, `/public` has no auth.
async fn auth_gateway(up: &Upstream, jwks: &JwksServer) -> TestGateway {
    let gw = gateway::start(
        &GatewayConfig::new()
            .jwt(jwt_section(&jwks.url()))
            .pool("p", Pool::upstreams(&[up]))
            .route(
                Route::prefix("/api")
                    .name("api")
                    .pool("p")
                    .auth(Auth::Required),
            )
            .route(
                Route::prefix("/open")
                    .name("open")
                    .pool("p")
                    .auth(Auth::Optional),
            )
            .route(Route::prefix("/public").name("public").pool("p")),
    )
    .await;
    gw.wait_ready().await;
    gw
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    /// What the upstream saw as X-User-Id, when the request got there.
    user_header: Option<String>,
    body: String,
}

async fn call(gw: &TestGateway, path: &str, token: Option<&str>, spoof: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new().get(gw.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = spoof {
        req = req.header("x-user-id", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    let user_header = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["headers"]["x-user-id"].as_str().map(str::to_owned));
    Answer {
        status,
        challenge,
        user_header,
        body,
    }
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    claims[key] = value;
    claims
}

#[tokio::test]
async fn a_valid_token_passes_and_its_subject_replaces_any_spoofed_identity() {
    // Arrange
    let (up, key) = (Upstream::spawn("a").await, SigningKey::generate("k1"));
    let jwks = JwksServer::spawn(&[&key]).await;
    let gw = auth_gateway(&up, &jwks).await;

    // Act
    let answer = call(
        &gw,
        "/api/me",
        Some(&key.sign(&claims("alice"))),
        Some("mallory"),
    )
    .await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.user_header.as_deref(), Some("alice"));
}

#[tokio::test]
async fn bad_tokens_get_401_invalid_token_and_never_reach_the_upstream() {
    // Arrange
    let (up, key, stranger) = (
        Upstream::spawn("a").await,
        SigningKey::generate("k1"),
        SigningKey::generate("k1"),
    );
    let jwks = JwksServer::spawn(&[&key]).await;
    let gw = auth_gateway(&up, &jwks).await;
    let good = claims("alice");
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    // Algorithm confusion: HS256 "signed" with the published public key as the secret.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let confused_raw =
        jsonwebtoken::encode(&hs_header, &good, &EncodingKey::from_secret(&key.public)).unwrap();
    let x = URL_SAFE_NO_PAD.encode(key.public);
    let confused_x =
        jsonwebtoken::encode(&hs_header, &good, &EncodingKey::from_secret(x.as_bytes())).unwrap();
    let cases = [
        (
            "expired",
            key.sign(&with(good.clone(), "exp", (now() - 120).into())),
        ),
        (
            "future nbf",
            key.sign(&with(good.clone(), "nbf", (now() + 300).into())),
        ),
        (
            "wrong iss",
            key.sign(&with(good.clone(), "iss", "someone-else".into())),
        ),
        (
            "wrong aud",
            key.sign(&with(good.clone(), "aud", "other-api".into())),
        ),
        (
            "no sub",
            key.sign(
                &serde_json::json!({"iss": "test-issuer", "aud": "test-api", "exp": now() + 60}),
            ),
        ),
        ("bad signature", stranger.sign(&good)),
        ("alg none", alg_none),
        ("hs256 with raw public key", confused_raw),
        ("hs256 with jwk x", confused_x),
        ("garbage", "not-a-token".to_owned()),
        ("three garbage parts", "a.b.c".to_owned()),
    ];

    for (name, token) in cases {
        // Act
        let answer = call(&gw, "/api/x", Some(&token), None).await;

        // Assert
        assert_eq!(answer.status, 401, "{name}: {}", answer.body);
        assert_eq!(
            answer.challenge.as_deref(),
            Some("Bearer realm=\"gateway\", error=\"invalid_token\""),
            "{name}"
        );
        assert!(
            answer.body.contains("\"status\":401"),
            "{name}: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("k1") && !answer.body.contains("kid"),
            "{name} leaks key details"
        );
    }
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn missing_tokens_are_refused_where_required_and_anonymous_where_optional() {
    // Arrange
    let (up, key) = (Upstream::spawn("a").await, SigningKey::generate("k1"));
    let jwks = JwksServer::spawn(&[&key]).await;
    let gw = auth_gateway(&up, &jwks).await;

    // Act
    let required = call(&gw, "/api/x", None, None).await;
    let optional = call(&gw, "/open/x", None, Some("mallory")).await;
    let optional_bad = call(&gw, "/open/x", Some("junk"), None).await;
    let public = call(&gw, "/public/x", None, Some("mallory")).await;

    // Assert
    assert_eq!(required.status, 401);
    assert_eq!(
        required.challenge.as_deref(),
        Some("Bearer realm=\"gateway\"")
    );
    assert_eq!((optional.status, optional.user_header), (200, None));
    assert_eq!(
        optional_bad.status, 401,
        "a bad token counts even where auth is optional"
    );
    assert_eq!(
        (public.status, public.user_header),
        (200, None),
        "spoofed identity stripped"
    );
}

#[tokio::test]
async fn an_unknown_kid_triggers_a_refresh_and_a_dead_jwks_keeps_the_last_keys() {
    // Arrange
    let (up, k1, k2) = (
        Upstream::spawn("a").await,
        SigningKey::generate("k1"),
        SigningKey::generate("k2"),
    );
    let mut jwks = JwksServer::spawn(&[&k1]).await;
    let gw = auth_gateway(&up, &jwks).await;
    assert_eq!(
        call(&gw, "/api/x", Some(&k1.sign(&claims("a"))), None)
            .await
            .status,
        200
    );

    // Act 1: k2 is published after start-up; a token naming it fetches the set again once
    // the 200 ms cooldown since the start-up fetch has passed (earlier ones get 401).
    jwks.set_keys(&[&k1, &k2]);
    let k2_token = k2.sign(&claims("b"));
    let mut rotated = call(&gw, "/api/x", Some(&k2_token), None).await;
    crate::assert_eventually!(
        {
            rotated = call(&gw, "/api/x", Some(&k2_token), None).await;
            rotated.status == 200
        },
        "a token of the newly published key was never accepted: {}",
        rotated.body
    );

    // Act 2: the JWKS endpoint dies; known keys keep working.
    jwks.stop();
    let after_outage = call(&gw, "/api/x", Some(&k1.sign(&claims("c"))), None).await;

    // Assert
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.user_header.as_deref(), Some("b"));
    assert_eq!(after_outage.status, 200, "{}", after_outage.body);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("gateway_jwks_refreshes_total{result=\"ok\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn before_any_jwks_loads_a_token_gets_503_and_the_first_request_after_it_loads_passes() {
    // Arrange: the JWKS endpoint publishes no usable key yet (its backend is still starting,
    // as in a fresh deployment), and on-demand fetches are otherwise at most one per hour.
    use crate::config::Jwks;
    let (up, key) = (Upstream::spawn("a").await, SigningKey::generate("k1"));
    let jwks = JwksServer::spawn(&[]).await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .jwt(
                Jwt::new(&["test-issuer"], &["test-api"]).jwks(
                    Jwks::url(&jwks.url())
                        .refresh_interval("1h")
                        .min_refresh_interval("1h"),
                ),
            )
            .pool("p", Pool::upstreams(&[&up]))
            .route(Route::prefix("/api").pool("p").auth(Auth::Required)),
    )
    .await;
    let token = key.sign(&claims("a"));

    // Act 1: a well-formed token the gateway cannot check yet.
    let early = reqwest::Client::new()
        .get(gw.url("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (early_status, retry_after) = (early.status(), early.headers().get("retry-after").cloned());
    let early_body = early.text().await.unwrap();

    // Act 2: the key is published; the very next request fetches it, though the start-up
    // loop fetched moments ago and min_refresh_interval is an hour.
    jwks.set_keys(&[&key]);
    let after = call(&gw, "/api/x", Some(&token), None).await;

    // Assert: 503 with Retry-After (the client's token is not at fault, so no 401), then 200.
    assert_eq!(early_status, 503, "{early_body}");
    assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert!(early_body.contains("not loaded yet"), "{early_body}");
    assert_eq!(after.status, 200, "{}", after.body);
}

#[test]
fn an_hmac_key_can_be_configured_but_not_through_jwks() {
    // Arrange: a JWKS answer carrying a symmetric key must not be trusted. This is checked
    // end to end above (HS256 tokens fail); here, the config side: HS256 needs a secret.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        GatewayConfig::new()
            .jwt(Jwt::new(&["i"], &["a"]).key(StaticKey::pem_file("HS256", "x.pem")))
            .pool("p", Pool::endpoints(["127.0.0.1:1"]))
            .route(Route::prefix("/").pool("p").auth(Auth::Required))
            .to_yaml(),
    )
    .unwrap();

    // Act
    let out = std::process::Command::new(gateway::gateway_bin())
        .arg("check")
        .arg(&config)
        .output()
        .unwrap();

    // Assert
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("jwt.keys[0].alg: HMAC keys need exactly one of secret_env or secret_file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn static_jwk_files_and_hmac_secrets_verify_tokens_pinned_to_their_algorithm() {
    // Arrange: an Ed25519 JWK file and an HMAC secret file, no JWKS endpoint.
    let up = Upstream::spawn("a").await;
    let key = SigningKey::generate("s1");
    let dir = tempfile::tempdir().unwrap();
    let jwk_path = dir.path().join("s1.json");
    std::fs::write(&jwk_path, key.jwk().to_string()).unwrap();
    let secret_path = dir.path().join("hmac.secret");
    std::fs::write(&secret_path, "a-long-random-test-secret-value\n").unwrap();
    let gw = gateway::start(
        &GatewayConfig::new()
            .jwt(
                Jwt::new(&["test-issuer"], &["test-api"])
                    .forward_claim("sub", "X-User-Id")
                    .key(StaticKey::jwk_file("EdDSA", &jwk_path).kid("s1"))
                    .key(StaticKey::secret_file("HS256", &secret_path).kid("h1")),
            )
            .pool("p", Pool::upstreams(&[&up]))
            .route(Route::prefix("/").pool("p").auth(Auth::Required)),
    )
    .await;
    gw.wait_ready().await;
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("h1".into());
    let hmac_token = jsonwebtoken::encode(
        &hs,
        &claims("hmac-user"),
        &EncodingKey::from_secret(b"a-long-random-test-secret-value"),
    )
    .unwrap();
    // The HMAC key must not accept an EdDSA-kid token re-signed with its secret under EdDSA's kid.
    let mut hs_wrong_kid = Header::new(Algorithm::HS256);
    hs_wrong_kid.kid = Some("s1".into());
    let wrong_kid = jsonwebtoken::encode(
        &hs_wrong_kid,
        &claims("x"),
        &EncodingKey::from_secret(b"a-long-random-test-secret-value"),
    )
    .unwrap();

    // Act
    let ed = call(&gw, "/x", Some(&key.sign(&claims("ed-user"))), None).await;
    let hmac = call(&gw, "/x", Some(&hmac_token), None).await;
    let mismatched = call(&gw, "/x", Some(&wrong_kid), None).await;

    // Assert
    assert_eq!(
        (ed.status, ed.user_header.as_deref()),
        (200, Some("ed-user"))
    );
    assert_eq!(
        (hmac.status, hmac.user_header.as_deref()),
        (200, Some("hmac-user"))
    );
    assert_eq!(
        mismatched.status, 401,
        "a kid names one key and its algorithm"
    );
}

#[tokio::test]
async fn a_key_file_rotated_in_place_takes_effect_on_sighup() {
    // Arrange: a static Ed25519 key in a JWK file.
    let up = Upstream::spawn("a").await;
    let (old_key, new_key) = (SigningKey::generate("s1"), SigningKey::generate("s1"));
    let dir = tempfile::tempdir().unwrap();
    let jwk_path = dir.path().join("s1.json");
    std::fs::write(&jwk_path, old_key.jwk().to_string()).unwrap();
    let gw = gateway::start(
        &GatewayConfig::new()
            .jwt(
                Jwt::new(&["test-issuer"], &["test-api"])
                    .key(StaticKey::jwk_file("EdDSA", &jwk_path).kid("s1")),
            )
            .pool("p", Pool::upstreams(&[&up]))
            .route(Route::prefix("/").pool("p").auth(Auth::Required)),
    )
    .await;
    gw.wait_ready().await;
    assert_eq!(
        call(&gw, "/x", Some(&old_key.sign(&claims("u"))), None)
            .await
            .status,
        200
    );

    // Act: the key file is rewritten in place (the config file itself is unchanged).
    std::fs::write(&jwk_path, new_key.jwk().to_string()).unwrap();
    gw.hangup();
    crate::assert_eventually!(
        gw.metrics()
            .await
            .contains("gateway_config_reloads_total{result=\"ok\"} 1"),
        "SIGHUP did not reload"
    );

    // Assert: the new key verifies, the old one no longer does.
    let new = call(&gw, "/x", Some(&new_key.sign(&claims("u"))), None).await;
    let old = call(&gw, "/x", Some(&old_key.sign(&claims("u"))), None).await;
    assert_eq!((new.status, old.status), (200, 401));
}

#[tokio::test]
async fn a_flood_of_made_up_tokens_is_limited_per_client_while_verified_ones_stay_free() {
    use crate::jwks::{claims, jwt_section, JwksServer, SigningKey};
    // Arrange: three signature checks per client, then one a minute.
    let key = SigningKey::generate("k1");
    let jwks = JwksServer::spawn(&[&key]).await;
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .jwt(
                jwt_section(&jwks.url())
                    .verification_limit(VerificationLimit::new(1, "1m").burst(3)),
            )
            .pool("p", Pool::upstreams(&[&up]))
            .route(
                Route::prefix("/api")
                    .name("api")
                    .pool("p")
                    .auth(Auth::Required),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let call = |token: String| client.get(gw.url("/api")).bearer_auth(token).send();
    let valid = key.sign(&claims("alice"));

    // Act: the valid token is checked once (one of the three); then ten forgeries.
    let first = call(valid.clone()).await.unwrap().status().as_u16();
    let mut forged = Vec::new();
    for i in 0..10 {
        let fake = key.sign(&claims(&format!("mallory{i}"))) + "x";
        forged.push(call(fake).await.unwrap().status().as_u16());
    }
    let again = call(valid).await.unwrap().status().as_u16();

    // Assert
    assert_eq!(first, 200);
    assert_eq!(&forged[..2], &[401, 401], "{forged:?}");
    assert!(forged[2..].iter().all(|s| *s == 429), "{forged:?}");
    assert_eq!(again, 200, "a token verified before costs no check");
}

#[tokio::test]
async fn the_forward_secret_goes_upstream_with_verified_identities_only() {
    use crate::jwks::{claims, jwt_section, JwksServer, SigningKey};
    // Arrange
    let key = SigningKey::generate("k1");
    let jwks = JwksServer::spawn(&[&key]).await;
    let up = Upstream::spawn("a").await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("gateway-secret");
    std::fs::write(&secret_file, "s3cret-shared-with-the-backend\n").unwrap();
    let gw = gateway::start(
        &GatewayConfig::new()
            .jwt(jwt_section(&jwks.url()))
            .pool(
                "p",
                Pool::upstreams(&[&up]).forward_secret(ForwardSecret::secret_file(&secret_file)),
            )
            .route(
                Route::prefix("/")
                    .name("open")
                    .pool("p")
                    .auth(Auth::Optional),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let seen = |resp: reqwest::Response| async {
        let body: serde_json::Value = resp.json().await.unwrap();
        body["headers"]["x-gateway-secret"]
            .as_str()
            .map(str::to_owned)
    };

    // Act
    let verified = client
        .get(gw.url("/x"))
        .bearer_auth(key.sign(&claims("alice")))
        .send()
        .await
        .unwrap();
    let anonymous_spoof = client
        .get(gw.url("/x"))
        .header("x-gateway-secret", "s3cret-shared-with-the-backend")
        .header("x-user-id", "admin")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(
        seen(verified).await.as_deref(),
        Some("s3cret-shared-with-the-backend")
    );
    assert_eq!(
        seen(anonymous_spoof).await,
        None,
        "a client's copy is removed"
    );
}
