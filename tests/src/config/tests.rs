use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;

use super::*;
use crate::gateway::gateway_bin;
use crate::jwks::SigningKey;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("valid YAML")
}

#[test]
fn only_what_was_set_is_written() {
    // Act
    let empty = GatewayConfig::new().to_yaml();
    let bare = GatewayConfig::new()
        .pool("p", Pool::endpoints(["127.0.0.1:1"]))
        .route(Route::prefix("/").pool("p"))
        .to_yaml();

    // Assert: the gateway's defaults apply to everything else.
    assert_eq!(yaml(&empty), yaml("{}"));
    assert_eq!(
        yaml(&bare),
        yaml("{ pools: { p: { endpoints: ['127.0.0.1:1'] } }, routes: [{ match: { path_prefix: / }, pool: p }] }")
    );
}

#[test]
fn a_representative_config_has_the_file_models_keys_and_spellings() {
    // Arrange
    let config = GatewayConfig::new()
        .server(
            Server::new()
                .threads(2)
                .shutdown_grace(Duration::from_millis(1500)),
        )
        .limits(Limits::new().max_body_bytes("1MiB").header_timeout("2s"))
        .trusted_proxy("10.0.0.0/8")
        .dns(Dns::nameservers(["127.0.0.1:53"]))
        .jwt(
            Jwt::new(&["iss"], &["aud"])
                .forward_claim("sub", "X-User-Id")
                .jwks(Jwks::url("http://127.0.0.1:1/jwks").min_refresh_interval("200ms"))
                .key(StaticKey::secret_env("HS256", "SECRET").kid("h1")),
        )
        .rate_limiting(RateLimiting::new().redis_url("redis://127.0.0.1:1"))
        .pool(
            "a",
            Pool::endpoints(["127.0.0.1:1"])
                .balance(Balance::ConsistentHash)
                .hash_key("header:x-user")
                .health_check(HealthCheck::http("/healthz").interval(Duration::from_secs(2)))
                .circuit_breaker(CircuitBreaker::new().consecutive_failures(0))
                .retries(Retries::new().attempts(0)),
        )
        .route(
            Route::prefix("/api")
                .name("api")
                .pool("a")
                .strip_prefix()
                .body_limit(4096_u64)
                .auth(Auth::Required)
                .rate_limit(
                    RateLimit::client_ip(10, "1s")
                        .burst(5)
                        .scope(Scope::Cluster),
                ),
        )
        .route(
            Route::path("/teapot")
                .methods(&["GET"])
                .respond(Respond::status(418).body("short and stout")),
        );

    // Act
    let written = config.to_yaml();

    // Assert
    let expected = r#"
server: { threads: 2, shutdown_grace: 1500ms }
limits: { max_body_bytes: 1MiB, header_timeout: 2s }
trusted_proxies: [10.0.0.0/8]
dns: { nameservers: ["127.0.0.1:53"] }
jwt:
  issuers: [iss]
  audiences: [aud]
  forward_claims: { sub: X-User-Id }
  jwks: { url: "http://127.0.0.1:1/jwks", min_refresh_interval: 200ms }
  keys: [{ alg: HS256, kid: h1, secret_env: SECRET }]
rate_limiting: { redis_url: "redis://127.0.0.1:1" }
pools:
  a:
    endpoints: ["127.0.0.1:1"]
    balance: consistent_hash
    hash_key: "header:x-user"
    health_check: { kind: http, path: /healthz, interval: 2s }
    circuit_breaker: { consecutive_failures: 0 }
    retries: { attempts: 0 }
routes:
- name: api
  match: { path_prefix: /api }
  pool: a
  strip_prefix: true
  body_limit: 4096
  auth: required
  rate_limits: [{ key: client_ip, rate: 10, per: 1s, burst: 5, scope: cluster }]
- match: { path: /teapot, methods: [GET] }
  respond: { status: 418, body: short and stout }
"#;
    assert_eq!(yaml(&written), yaml(expected), "{written}");
}

#[test]
fn durations_are_written_with_the_largest_exact_unit() {
    assert_eq!(Dur::from(Duration::from_secs(90)), Dur::from("90s"));
    assert_eq!(Dur::from(Duration::from_millis(250)), Dur::from("250ms"));
    assert_eq!(Dur::from(Duration::from_micros(5)), Dur::from("5000ns"));
}

/// Every builder method at once, with files and variables the keys name.
fn everything(dir: &Path, upstream: SocketAddr) -> GatewayConfig {
    GatewayConfig::new()
        .server(
            Server::new()
                .threads(2)
                .shutdown_grace("5s")
                .upstream_keepalive_pool_size(64)
                .downstream_read_buffer("16KiB"),
        )
        .listeners(Listeners {
            https: Some("127.0.0.1:3".parse().unwrap()),
            ..Listeners::new(
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            )
        })
        .tls(
            Tls::new()
                .certificate(CertificateFiles {
                    cert_file: dir.join("site.crt"),
                    key_file: dir.join("site.key"),
                })
                .default_certificate(CertificateFiles {
                    cert_file: dir.join("site.crt"),
                    key_file: dir.join("site.key"),
                })
                .min_version("1.3")
                .redirect_http(true)
                .hsts(Hsts::new().max_age("180d").include_subdomains(true)),
        )
        .limits(
            Limits::new()
                .max_uri_bytes(4096)
                .max_header_bytes(16_384)
                .max_body_bytes(1_048_576_u64)
                .header_timeout("5s")
                .idle_timeout(Duration::from_secs(30))
                .max_connections(100)
                .max_connections_per_client(10),
        )
        .trusted_proxy("127.0.0.1")
        .trusted_proxy("10.0.0.0/8")
        .dns(Dns::nameservers(["127.0.0.1:53"]))
        .jwt(
            Jwt::new(&["iss"], &["aud"])
                .leeway("10s")
                .required_claims(&["sub", "jti"])
                .forward_claim("sub", "X-User-Id")
                .jwks(
                    Jwks::pool("auth", "/jwks")
                        .refresh_interval("5m")
                        .min_refresh_interval("10s")
                        .timeout("1s"),
                )
                .key(StaticKey::jwk_file("EdDSA", dir.join("key.json")).kid("e1"))
                .key(StaticKey::secret_file("HS256", dir.join("hmac")).kid("h1"))
                .key(StaticKey::secret_env("HS256", "BUILDER_TEST_SECRET").kid("h2"))
                .verification_limit(VerificationLimit::new(10, "1s").burst(20)),
        )
        .rate_limiting(
            RateLimiting::new()
                .redis_url("redis://127.0.0.1:6379")
                .redis_timeout("100ms")
                .key_prefix("test:rl:")
                .headers_on_success(false)
                .max_local_keys(1000)
                .ipv6_prefix(56),
        )
        .pool(
            "api",
            Pool::endpoints([upstream])
                .resolve_interval("1s")
                .dns_grace("10s")
                .balance(Balance::ConsistentHash)
                .hash_key("header:x-user")
                .timeouts(
                    Timeouts::new()
                        .connect("1s")
                        .read("10s")
                        .write("10s")
                        .idle("30s"),
                )
                .health_check(
                    HealthCheck::http("/healthz")
                        .host("api.test")
                        .expect_status(&[200, 204])
                        .interval("2s")
                        .timeout("1s")
                        .healthy_threshold(2)
                        .unhealthy_threshold(3),
                )
                .circuit_breaker(CircuitBreaker::new().consecutive_failures(3).open_for("5s"))
                .retries(Retries::new().attempts(1).idempotent_on_reset(false))
                .forward_secret(ForwardSecret::secret_file(dir.join("forward")).header("X-Secret")),
        )
        .pool(
            "auth",
            Pool::endpoints(["localhost:8081"])
                .balance(Balance::Random)
                .health_check(HealthCheck::tcp())
                .forward_secret(ForwardSecret::secret_env("BUILDER_TEST_SECRET"))
                .tls(
                    PoolTls::new()
                        .sni("auth.internal")
                        .verify(true)
                        .ca_file(dir.join("site.crt")),
                ),
        )
        .route(
            Route::prefix("/api")
                .name("api")
                .host("api.test")
                .methods(&["GET", "POST"])
                .pool("api")
                .strip_prefix()
                .body_limit("1MiB")
                .auth(Auth::Required)
                .rate_limit(
                    RateLimit::subject(10, "1s")
                        .burst(20)
                        .scope(Scope::Cluster)
                        .fail_open(false),
                )
                .rate_limit(RateLimit::header("x-api-key", 5, "1s"))
                .rate_limit(RateLimit::route(100, "1s").scope(Scope::Local))
                .rate_limit(RateLimit::client_ip(1, "1m"))
                .rate_limit(RateLimit::new(1, Duration::from_secs(60))),
        )
        .route(
            Route::prefix("/open")
                .pool("auth")
                .auth(Auth::Optional)
                .https_redirect(false),
        )
        .route(Route::prefix("/public").pool("auth").auth(Auth::None))
        .route(
            Route::matching(Match {
                path: Some("/teapot".into()),
                ..Match::default()
            })
            .respond(
                Respond::status(418)
                    .body("{}")
                    .content_type("application/json"),
            ),
        )
}

#[test]
fn a_config_using_every_builder_method_passes_gateway_check_and_the_schema() {
    // Arrange: the files the keys name. The gateway rejects unknown keys, so any spelling
    // drift between the builder and its file model fails here.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("key.json"),
        SigningKey::generate("e1").jwk().to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("hmac"), "a-long-random-test-secret-value").unwrap();
    std::fs::write(dir.path().join("forward"), "a-forwarded-secret").unwrap();
    crate::certs::self_signed(
        dir.path(),
        "site",
        &["site.test"],
        crate::certs::KeyKind::EcdsaP256,
    );
    let config = dir.path().join("gateway.yaml");
    let upstream: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    std::fs::write(&config, everything(dir.path(), upstream).to_yaml()).unwrap();

    // Act
    let out = Command::new(gateway_bin())
        .arg("check")
        .arg(&config)
        .env("BUILDER_TEST_SECRET", "another-long-random-test-secret")
        .output()
        .unwrap();

    // Assert: the gateway accepts it, and so does the schema editors check it with.
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&config).unwrap()
    );
    let schema = crate::schema::schema_errors(std::slice::from_ref(&config));
    assert_eq!(
        schema[&config],
        Vec::<String>::new(),
        "the schema refuses a valid config"
    );
}
