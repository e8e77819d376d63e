//! Regressions of the attacks and failures the edge audit found (issue 9), each against the
//! real gateway binary: path spellings that dodged limits, forwarded-for parsing, IPv6 keys,
//! cluster limits that outlived their settings, config files read mid-write, and reloads
//! that failed requests.

use std::time::Duration;

use super::metric_value;
use crate::assert_eventually;
use crate::config::{GatewayConfig, Pool, RateLimit, RateLimiting, Respond, Route, Scope};
use crate::gateway::{self, TestGateway};
use crate::load::{Load, LoadSpec};
use crate::raw;
use crate::redis::RedisServer;
use crate::stack::{without_rate_limits, Stack, StackOptions};
use crate::upstream::Upstream;

#[tokio::test]
async fn every_spelling_of_a_limited_path_meets_its_limit_and_goes_upstream_canonical() {
    // Arrange: the login route is exact and limited; the rest of /auth is not.
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("p", Pool::upstreams(&[&up]))
            .route(
                Route::path("/auth/login")
                    .methods(&["POST"])
                    .name("login")
                    .pool("p")
                    .rate_limit(RateLimit::client_ip(1, "1m").burst(3)),
            )
            .route(Route::prefix("/auth").name("auth").pool("p")),
    )
    .await;
    gw.wait_ready().await;
    let spellings = [
        "/auth/login/",
        "//auth/login",
        "/auth//login",
        "/auth/%6Cogin",
        "/%61uth/login",
        "/auth/login//",
        "/auth/login",
        "/auth/%6cogin/",
        "/auth/login/",
        "/auth/login",
    ];

    // Act
    let mut answers = Vec::new();
    for target in spellings {
        let resp = raw::send(gw.http, &raw::request("POST", target, &[], "{}")).await;
        answers.push((target, resp));
    }

    // Assert: three passed (the burst), each forwarded as /auth/login; the rest were 429.
    let passed: Vec<_> = answers.iter().filter(|(_, r)| r.status == 200).collect();
    assert_eq!(
        passed.len(),
        3,
        "{:?}",
        answers
            .iter()
            .map(|(t, r)| (t, r.status))
            .collect::<Vec<_>>()
    );
    for (target, resp) in &passed {
        assert_eq!(resp.json()["target"], "/auth/login", "{target}");
    }
    for (target, resp) in answers.iter().skip(3) {
        assert_eq!(resp.status, 429, "{target}");
    }
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn dot_segments_and_encoded_separators_are_refused_before_routing() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = super::proxy_all(Pool::upstreams(&[&up])).await;
    gw.wait_ready().await;

    // Act + Assert
    for target in [
        "/a/../admin",
        "/a/%2e%2E/admin",
        "/./a",
        "/a%2Fb",
        "/a%5cb",
        "/a\\b",
        "/a%00b",
        "/a%zzb",
    ] {
        let resp = raw::send(gw.http, &raw::request("GET", target, &[], "")).await;
        assert_eq!(resp.status, 400, "{target}");
        assert_eq!(
            resp.header("content-type"),
            Some("application/problem+json")
        );
    }
    assert_eq!(up.requests(), 0);
}

/// A gateway that trusts 127.0.0.1 as a proxy, with a per-client limit of one request.
async fn behind_a_trusted_proxy(up: &Upstream) -> TestGateway {
    let gw = gateway::start(
        &GatewayConfig::new()
            .trusted_proxy("127.0.0.1")
            .pool("p", Pool::upstreams(&[up]))
            .route(
                Route::prefix("/")
                    .name("one")
                    .pool("p")
                    .rate_limit(RateLimit::client_ip(1, "1m").burst(1)),
            ),
    )
    .await;
    gw.wait_ready().await;
    gw
}

#[tokio::test]
async fn every_forwarded_for_line_from_a_trusted_proxy_is_read() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = behind_a_trusted_proxy(&up).await;

    // Act: the proxy sent two X-Forwarded-For lines; the client is the last entry.
    let split = raw::send(
        gw.http,
        &raw::request(
            "GET",
            "/x",
            &[
                ("X-Forwarded-For", "9.9.9.9"),
                ("X-Forwarded-For", "203.0.113.7"),
            ],
            "",
        ),
    )
    .await;
    let same_client = raw::send(
        gw.http,
        &raw::request("GET", "/x", &[("X-Forwarded-For", "203.0.113.7")], ""),
    )
    .await;

    // Assert
    assert_eq!(split.status, 200);
    assert_eq!(
        split.json()["headers"]["x-forwarded-for"],
        "9.9.9.9, 203.0.113.7, 127.0.0.1",
        "every line is kept, in order"
    );
    assert_eq!(same_client.status, 429, "one client, one bucket");
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_prefix() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = behind_a_trusted_proxy(&up).await;
    let from = |ip: &'static str| raw::request("GET", "/x", &[("X-Forwarded-For", ip)], "");

    // Act
    let first = raw::send(gw.http, &from("2001:db8:1:2::1")).await;
    let same_64 = raw::send(gw.http, &from("2001:db8:1:2:ffff:ffff:ffff:ffff")).await;
    let other_64 = raw::send(gw.http, &from("2001:db8:1:3::1")).await;

    // Assert
    assert_eq!(first.status, 200);
    assert_eq!(
        same_64.status, 429,
        "rotating the interface id gains nothing"
    );
    assert_eq!(other_64.status, 200);
}

/// One route `limited` for everything to `up`, limited by `rate` per `per` in Redis.
fn cluster_limit(up: &Upstream, redis: &RedisServer, rate: u64, per: &str) -> GatewayConfig {
    GatewayConfig::new()
        .rate_limiting(RateLimiting::new().redis_url(redis.url()))
        .pool("p", Pool::upstreams(&[up]))
        .route(
            Route::prefix("/").name("limited").pool("p").rate_limit(
                RateLimit::route(rate, per)
                    .burst(rate)
                    .scope(Scope::Cluster),
            ),
        )
}

#[tokio::test]
async fn a_loosened_cluster_limit_applies_at_once() {
    // Arrange: one request per minute, used up.
    let up = Upstream::spawn("a").await;
    let redis = RedisServer::start();
    let gw = gateway::start(&cluster_limit(&up, &redis, 1, "1m")).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(gw.url("/x")).send().await.unwrap().status(), 200);
    let limited = client.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(limited.status(), 429);

    // Act: loosen it to 100 per second.
    gw.rewrite_config(&cluster_limit(&up, &redis, 100, "1s"));
    assert_eventually!(
        metric_value(&gw, "gateway_config_reloads_total{result=\"ok\"}").await == Some(1.0),
        "the edit was never applied"
    );
    let after = client.get(gw.url("/x")).send().await.unwrap();

    // Assert
    assert_eq!(
        after.status(),
        200,
        "the old bucket still applied: Retry-After {:?}",
        after.headers().get("retry-after")
    );
    assert_eq!(after.headers()["ratelimit-limit"], "100");
}

#[tokio::test]
async fn a_config_file_read_mid_write_is_never_applied() {
    // Arrange: a file of 40 routes, each on one line, so every prefix cut at a line end is a
    // valid config with fewer routes: exactly what a reader racing a slow writer could see.
    let up = Upstream::spawn("a").await;
    let route = |i: usize| {
        Route::path(&format!("/r{i}"))
            .name(format!("r{i}"))
            .pool("p")
    };
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("p", Pool::upstreams(&[&up]))
            .route(route(0)),
    )
    .await;
    gw.wait_ready().await;
    let full_text = std::fs::read_to_string(&gw.config_path).unwrap();
    let preamble = full_text.split("routes:\n").next().unwrap().to_owned() + "routes:\n";
    // JSON is YAML: each route as one flow-style line.
    let lines: Vec<String> = (0..40)
        .map(|i| format!("- {}\n", serde_json::to_string(&route(i)).unwrap()))
        .collect();

    // Act: write the file in place, one route line every 20 ms (as a slow editor or a copy
    // over a network would), recording how long each prefix stayed on disk.
    let path = gw.config_path.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(preamble.as_bytes()).unwrap();
        let mut longest = Duration::ZERO;
        let mut last = std::time::Instant::now();
        for line in &lines {
            std::thread::sleep(Duration::from_millis(20));
            file.write_all(line.as_bytes()).unwrap();
            longest = longest.max(last.elapsed());
            last = std::time::Instant::now();
        }
        longest
    });
    let longest_stable = writer.join().unwrap();
    let client = reqwest::Client::new();
    assert_eventually!(
        client
            .get(gw.url("/r39"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200),
        "the complete file was never applied"
    );

    // Assert: the complete file was applied once, and no prefix before it. (A prefix that
    // stayed unchanged across two polls would be a legitimate edit; the writer never
    // paused that long unless the machine stalled, which the message then says.)
    let applied = metric_value(&gw, "gateway_config_reloads_total{result=\"ok\"}")
        .await
        .unwrap_or(0.0);
    assert_eq!(
        applied, 1.0,
        "{applied} configs applied; longest pause of the writer {longest_stable:?}"
    );
}

/// Apply `edit` to the YAML of `text`.
fn edited(text: &str, edit: impl Fn(&mut serde_yaml::Value)) -> String {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    edit(&mut doc);
    serde_yaml::to_string(&doc).unwrap()
}

#[tokio::test]
async fn an_edit_of_every_config_section_under_load_fails_no_request() {
    // Arrange: the committed gateway.yaml (without the per-user limits a one-user load would
    // hit), two replicas, a user, and steady authenticated reads.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.yaml"),
    )
    .unwrap();
    let base = without_rate_limits(&committed, &["todos", "jobs"]).unwrap();
    std::fs::write(&config, &base).unwrap();
    let stack = Stack::start(&StackOptions::for_tests(config.clone()))
        .await
        .expect("the stack starts");
    let token = stack.api().user("chaos").await.unwrap().token;
    let load = Load::start_with(&LoadSpec {
        url: stack.url("/todos"),
        concurrency: 6,
        max_requests: 1_000_000,
        bearer: Some(token),
        identity_header: "x-instance",
    });
    type Edit = (&'static str, fn(&mut serde_yaml::Value));
    let edits: [Edit; 9] = [
        ("pool retries", |d| {
            d["pools"]["backend"]["retries"]["attempts"] = 3.into()
        }),
        ("pool timeouts", |d| {
            d["pools"]["backend"]["timeouts"]["read"] = "25s".into()
        }),
        ("pool health check", |d| {
            d["pools"]["backend"]["health_check"]["interval"] = "1s".into();
        }),
        ("jwt leeway", |d| d["jwt"]["leeway"] = "20s".into()),
        ("jwks refresh", |d| {
            d["jwt"]["jwks"]["refresh_interval"] = "4m".into()
        }),
        ("routes", |d| {
            let extra = serde_yaml::to_value(
                Route::path("/extra")
                    .name("extra")
                    .respond(Respond::status(204)),
            )
            .unwrap();
            d["routes"].as_sequence_mut().unwrap().push(extra);
        }),
        ("route limits", |d| {
            d["routes"][0]["rate_limits"][0]["rate"] = 11.into();
        }),
        ("rate limiting", |d| {
            d["rate_limiting"]["redis_timeout"] = "150ms".into()
        }),
        ("limits", |d| d["limits"]["max_body_bytes"] = "9MiB".into()),
    ];
    let admin = format!("http://{}/metrics", stack.admin);
    let reloads = || async {
        reqwest::get(&admin)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("gateway_config_reloads_total{result=\"ok\"}")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };

    // Act: one edit at a time, each applied while the load runs.
    let mut text = base;
    for (n, (section, edit)) in edits.iter().enumerate() {
        text = edited(&text, edit);
        std::fs::write(&config, &text).unwrap();
        stack
            .apply_config(&text)
            .unwrap_or_else(|e| panic!("{section}: {e:#}"));
        let applied = (n + 1) as f64;
        assert_eventually!(
            reloads().await >= applied,
            "the {section} edit was never applied"
        );
        let before = load.snapshot().ok;
        assert_eventually!(
            load.snapshot().ok > before + 50,
            "no traffic after the {section} edit"
        );
    }
    let report = load.stop().await;

    // Assert
    assert!(
        report.failures.is_empty(),
        "{} failed, e.g. {:?}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(report.ok > 500, "{} requests", report.ok);
    stack.shutdown().await;
}

#[tokio::test]
async fn targets_that_are_not_a_path_are_refused_and_urls_go_upstream_as_paths() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = super::proxy_all(Pool::upstreams(&[&up])).await;
    gw.wait_ready().await;

    // Act
    let other_scheme = raw::send(gw.http, &raw::request("GET", "x:/auth/login", &[], "")).await;
    let absolute = raw::send(
        gw.http,
        &raw::request("GET", "http://test/a/b?c=d", &[], ""),
    )
    .await;

    // Assert
    assert_eq!(other_scheme.status, 400);
    assert_eq!(absolute.status, 200);
    assert_eq!(absolute.json()["target"], "/a/b?c=d");
}
