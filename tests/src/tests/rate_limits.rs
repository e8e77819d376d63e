use std::time::{Duration, Instant};

use crate::config::{GatewayConfig, Pool, RateLimit, RateLimiting, Route, Scope};
use crate::gateway::{self, TestGateway};
use crate::redis::RedisServer;
use crate::upstream::Upstream;

struct Tally {
    allowed: usize,
    limited: usize,
    unavailable: usize,
    other: Vec<u16>,
}

/// Send requests back to back for `run`, counting answers.
async fn hammer(gw: &TestGateway, path: &str, key: Option<&str>, run: Duration) -> Tally {
    let client = reqwest::Client::new();
    let mut tally = Tally {
        allowed: 0,
        limited: 0,
        unavailable: 0,
        other: Vec::new(),
    };
    let start = Instant::now();
    while start.elapsed() < run {
        let mut req = client.get(gw.url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        match req.send().await.unwrap().status().as_u16() {
            200 => tally.allowed += 1,
            429 => tally.limited += 1,
            503 => tally.unavailable += 1,
            s => tally.other.push(s),
        }
    }
    tally
}

/// `base` (for the shared `rate_limiting:`) with one route `limited` for everything, to `up`.
async fn limited_gateway(up: &Upstream, limit: RateLimit, base: GatewayConfig) -> TestGateway {
    let gw = gateway::start(
        &base.pool("p", Pool::upstreams(&[up])).route(
            Route::prefix("/")
                .name("limited")
                .pool("p")
                .rate_limit(limit),
        ),
    )
    .await;
    gw.wait_ready().await;
    gw
}

#[tokio::test]
async fn a_local_limit_never_admits_more_than_rate_plus_burst_per_period() {
    // Arrange: 10 per second, bursts of 5.
    let up = Upstream::spawn("a").await;
    let gw = limited_gateway(
        &up,
        RateLimit::client_ip(10, "1s").burst(5),
        GatewayConfig::new(),
    )
    .await;

    // Act
    let start = Instant::now();
    let tally = hammer(&gw, "/x", None, Duration::from_millis(2500)).await;
    let elapsed = start.elapsed().as_secs_f64();

    // Assert: at most burst + rate * elapsed (GCRA bound), and the limit really bites.
    assert!(tally.other.is_empty(), "{:?}", tally.other);
    let bound = 5.0 + 10.0 * elapsed + 1.0;
    assert!(
        (tally.allowed as f64) <= bound,
        "{} allowed in {elapsed:.2}s",
        tally.allowed
    );
    assert!(tally.allowed >= 5, "the burst is served");
    assert!(tally.limited > 0, "nothing was limited");
    assert_eq!(up.requests(), tally.allowed);
}

#[tokio::test]
async fn a_429_carries_retry_after_and_quota_headers_and_allowed_answers_carry_quota() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = limited_gateway(
        &up,
        RateLimit::route(1, "1m").burst(2),
        GatewayConfig::new(),
    )
    .await;
    let client = reqwest::Client::new();

    // Act
    let first = client.get(gw.url("/x")).send().await.unwrap();
    let _second = client.get(gw.url("/x")).send().await.unwrap();
    let third = client.get(gw.url("/x")).send().await.unwrap();

    // Assert
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["content-type"], "application/problem+json");
    let retry_after: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(third.headers()["ratelimit-remaining"], "0");
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .contains("gateway_policy_rejections_total{reason=\"rate_limit\",route=\"limited\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn header_keys_get_separate_buckets_and_a_missing_header_falls_back_to_the_client() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = limited_gateway(
        &up,
        RateLimit::header("x-api-key", 1, "1m").burst(3),
        GatewayConfig::new(),
    )
    .await;

    // Act
    let alice = hammer(&gw, "/x", Some("alice"), Duration::from_millis(300)).await;
    let bob = hammer(&gw, "/x", Some("bob"), Duration::from_millis(300)).await;
    let anonymous = hammer(&gw, "/x", None, Duration::from_millis(300)).await;

    // Assert
    assert_eq!((alice.allowed, bob.allowed, anonymous.allowed), (3, 3, 3));
    assert!(anonymous.limited > 0, "no key never means unlimited");
}

#[tokio::test]
async fn two_gateways_sharing_redis_together_admit_no_more_than_one_limit() {
    // Arrange
    let redis = RedisServer::start();
    let up = Upstream::spawn("a").await;
    let shared = GatewayConfig::new().rate_limiting(RateLimiting::new().redis_url(redis.url()));
    let limit = RateLimit::client_ip(10, "1s")
        .burst(5)
        .scope(Scope::Cluster);
    let gw1 = limited_gateway(&up, limit.clone(), shared.clone()).await;
    let gw2 = limited_gateway(&up, limit, shared).await;

    // Act
    let start = Instant::now();
    let run = Duration::from_millis(2500);
    let (t1, t2) = tokio::join!(hammer(&gw1, "/x", None, run), hammer(&gw2, "/x", None, run));
    let elapsed = start.elapsed().as_secs_f64();

    // Assert
    let allowed = t1.allowed + t2.allowed;
    let bound = 5.0 + 10.0 * elapsed + 1.0;
    assert!(
        (allowed as f64) <= bound,
        "{allowed} allowed in {elapsed:.2}s by two gateways"
    );
    assert!(
        t1.allowed > 0 && t2.allowed > 0,
        "both gateways served: {} {}",
        t1.allowed,
        t2.allowed
    );
    assert!(t1.limited + t2.limited > 0);
}

#[tokio::test]
async fn when_redis_is_down_fail_open_uses_a_local_limit_and_fail_closed_refuses() {
    // Arrange
    let mut redis = RedisServer::start();
    let up = Upstream::spawn("a").await;
    let shared = GatewayConfig::new().rate_limiting(
        RateLimiting::new()
            .redis_url(redis.url())
            .redis_timeout("200ms"),
    );
    let limit = RateLimit::client_ip(1, "1m").burst(3).scope(Scope::Cluster);
    let open = limited_gateway(&up, limit.clone().fail_open(true), shared.clone()).await;
    let closed = limited_gateway(&up, limit.fail_open(false), shared).await;

    // Act
    redis.stop();
    let open_tally = hammer(&open, "/x", None, Duration::from_millis(500)).await;
    let closed_tally = hammer(&closed, "/x", None, Duration::from_millis(300)).await;

    // Assert
    assert_eq!(open_tally.allowed, 3, "the local fallback still limits");
    assert!(open_tally.limited > 0);
    assert_eq!(closed_tally.allowed, 0);
    assert!(closed_tally.unavailable > 0, "fail_open: false answers 503");
}
