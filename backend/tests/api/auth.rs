use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, test_settings, Options};

#[tokio::test]
async fn register_then_login_returns_a_bearer_token() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let reg = app.api.register("alice", "correct horse").await;
    let login = app.api.login("alice", "correct horse").await;

    // Assert
    assert_eq!(reg.status(), 201);
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
}

#[tokio::test]
async fn a_taken_username_is_409_and_bad_credentials_are_400() {
    let app = spawn_app().await;
    app.api.register("bob", "correct horse").await;

    let dup = app.api.register("bob", "another password").await;
    let cases = [
        ("ab", "correct horse"),
        ("Bob", "correct horse"),
        ("carol", "short"),
        ("carol", &"x".repeat(257)),
    ];

    assert_eq!(dup.status(), 409);
    for (username, password) in cases {
        let resp = app.api.register(username, password).await;
        assert_eq!(resp.status(), 400, "{username}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.api.register("dave", "correct horse").await;

    let wrong = app.api.login("dave", "wrong password").await;
    let unknown = app.api.login("nobody", "correct horse").await;

    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let (a, b): (Value, Value) = (wrong.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(a["detail"], b["detail"]);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn expired_tampered_and_wrong_audience_tokens_are_401() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("erin").await.unwrap();
    let key = EncodingKey::from_ed_pem(app.signing_pem().as_bytes()).unwrap();
    let jwks: Value = app
        .api
        .get_anonymous("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = jwks["keys"][0]["kid"].as_str().map(str::to_owned);
    let mint = |claims: Value| jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let base = json!({"sub": user.id, "iss": "todo-backend", "aud": "todo-api", "iat": now(), "exp": now() + 300});
    let mut expired = base.clone();
    expired["exp"] = (now() - 600).into();
    let mut wrong_aud = base.clone();
    wrong_aud["aud"] = "someone-else".into();
    let mut tampered = mint(base.clone());
    tampered.insert(tampered.len() - 5, 'x');
    let cases = [
        ("expired", mint(expired)),
        ("wrong audience", mint(wrong_aud)),
        ("tampered", tampered),
    ];

    // Act + Assert
    assert_eq!(
        app.api.get("/todos", &user).await.status(),
        200,
        "the valid token works"
    );
    assert_eq!(
        app.api
            .http()
            .get(app.api.url("/todos"))
            .bearer_auth(mint(base))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a token minted with the service key works"
    );
    for (name, token) in cases {
        let resp = app
            .api
            .http()
            .get(app.api.url("/todos"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{name}");
    }
    assert_eq!(
        app.api.get_anonymous("/todos").await.status(),
        401,
        "no token"
    );
}

#[tokio::test]
async fn with_trusted_gateway_identity_x_user_id_counts_only_with_the_gateway_secret() {
    // Arrange
    let secret = "a-long-shared-secret-of-the-gateway";
    let app = spawn_app_with(Options {
        trust_gateway_identity: true,
        gateway_secret: Some(format!("{secret}\n")),
        ..Options::default()
    })
    .await;
    let reg: Value = app
        .api
        .register("frank", "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let id = reg["id"].as_str().unwrap();
    let token: Value = app
        .api
        .login("frank", "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let get = |headers: &[(&str, &str)]| {
        let mut req = app.api.http().get(app.api.url("/todos"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
    };

    // Act
    let from_gateway = get(&[("x-user-id", id), ("x-gateway-secret", secret)])
        .await
        .unwrap();
    let spoofed = get(&[("x-user-id", id)]).await.unwrap();
    let wrong_secret = get(&[("x-user-id", id), ("x-gateway-secret", "guess")])
        .await
        .unwrap();
    let bearer = get(&[(
        "authorization",
        &format!("Bearer {}", token["access_token"].as_str().unwrap()),
    )])
    .await
    .unwrap();

    // Assert
    assert_eq!(from_gateway.status(), 200);
    assert_eq!(spoofed.status(), 401, "a client cannot claim an identity");
    assert_eq!(wrong_secret.status(), 401);
    assert_eq!(bearer.status(), 200, "direct clients still use their token");
}

#[tokio::test]
async fn trusting_gateway_identity_without_a_secret_refuses_to_start() {
    let (settings, _keys) = test_settings(Options {
        trust_gateway_identity: true,
        ..Options::default()
    })
    .await;

    let started = backend::startup::Application::build(settings).await;

    assert!(
        matches!(
            started,
            Err(backend::startup::StartupError::IdentitySecretMissing)
        ),
        "the backend must not start without a secret"
    );
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key() {
    let app = spawn_app().await;

    let jwks: Value = app
        .api
        .get_anonymous("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();

    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("EdDSA"))
    );
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(key.get("d").is_none(), "no private part");
}
