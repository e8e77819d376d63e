//! Regressions of the attacks and failures the edge audit found (issue 9), each against the
//! real gateway binary: path spellings that dodged limits, forwarded-for parsing, IPv6 keys,
//! cluster limits that outlived their settings, config files read mid-write, and reloads
//! that failed requests.

use std::time::Duration;

use serde_json::Value;

use super::endpoints;
use crate::assert_eventually;
use crate::gateway::{self, TestGateway};
use crate::load::{Load, LoadSpec};
use crate::raw;
use crate::redis::RedisServer;
use crate::stack::{without_rate_limits, Stack, StackOptions};
use crate::upstream::Upstream;

async fn metric_value(gw: &TestGateway, name: &str) -> Option<f64> {
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test]
async fn every_spelling_of_a_limited_path_meets_its_limit_and_goes_upstream_canonical() {
    // Arrange: the login route is exact and limited; the rest of /auth is not.
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(&format!(
        "pools:\n  p: {{ endpoints: {} }}\nroutes:\n\
         - {{ name: login, match: {{ path: /auth/login, methods: [POST] }}, pool: p, \
              rate_limits: [{{ key: client_ip, rate: 1, per: 1m, burst: 3 }}] }}\n\
         - {{ name: auth, match: {{ path_prefix: /auth }}, pool: p }}\n",
        endpoints(&[&up])
    ))
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
    let gw = super::proxy_all(&[&up], "").await;
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
    let gw = gateway::start(&format!(
        "trusted_proxies: [127.0.0.1]\npools:\n  p: {{ endpoints: {} }}\nroutes:\n\
         - {{ name: one, match: {{ path_prefix: / }}, pool: p, \
              rate_limits: [{{ key: client_ip, rate: 1, per: 1m, burst: 1 }}] }}\n",
        endpoints(&[up])
    ))
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

fn cluster_limit(up: &Upstream, redis: &RedisServer, limit: &str) -> String {
    format!(
        "rate_limiting: {{ redis_url: \"{}\" }}\npools:\n  p: {{ endpoints: {} }}\nroutes:\n\
         - {{ name: limited, match: {{ path_prefix: / }}, pool: p, rate_limits: [{limit}] }}\n",
        redis.url(),
        endpoints(&[up])
    )
}

#[tokio::test]
async fn a_loosened_cluster_limit_applies_at_once() {
    // Arrange: one request per minute, used up.
    let up = Upstream::spawn("a").await;
    let redis = RedisServer::spawn().await;
    let tight = "{ key: route, rate: 1, per: 1m, burst: 1, scope: cluster }";
    let gw = gateway::start(&cluster_limit(&up, &redis, tight)).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(gw.url("/x")).send().await.unwrap().status(), 200);
    let limited = client.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(limited.status(), 429);

    // Act: loosen it to 100 per second.
    let loose = "{ key: route, rate: 100, per: 1s, burst: 100, scope: cluster }";
    gw.rewrite_config(&cluster_limit(&up, &redis, loose));
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
    let head = format!(
        "pools:\n  p: {{ endpoints: {} }}\nroutes:\n",
        endpoints(&[&up])
    );
    let gw = gateway::start(&format!(
        "{head}- {{ name: r0, match: {{ path: /r0 }}, pool: p }}\n"
    ))
    .await;
    gw.wait_ready().await;
    let full_text = std::fs::read_to_string(&gw.config_path).unwrap();
    let preamble = full_text.split("routes:\n").next().unwrap().to_owned() + "routes:\n";
    let lines: Vec<String> = (0..40)
        .map(|i| format!("- {{ name: r{i}, match: {{ path: /r{i} }}, pool: p }}\n"))
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
    let stack = Stack::start(&StackOptions {
        replicas: 2,
        port: 0,
        admin_port: 0,
        config: config.clone(),
        backend_env: vec![("WORKER_CONCURRENCY".into(), "1".into())],
    })
    .await
    .expect("the stack starts");
    let client = reqwest::Client::new();
    let token = stack.new_user(&client, "chaos").await.unwrap();
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
            let extra: serde_yaml::Value = serde_yaml::from_str(
                "{ name: extra, match: { path: /extra }, respond: { status: 204 } }",
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

/// A gateway in front of `up` with the given `limits:` body.
async fn with_limits(up: &Upstream, limits: &str) -> TestGateway {
    let gw = gateway::start(&format!(
        "limits: {{ {limits} }}\npools:\n  p: {{ endpoints: {} }}\nroutes:\n\
         - {{ name: all, match: {{ path_prefix: / }}, pool: p }}\n",
        endpoints(&[up])
    ))
    .await;
    gw.wait_ready().await;
    gw
}

/// Whether the server closed `conn` (EOF or reset) within the harness' patience.
async fn closed_by_server(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(crate::patience(), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn three_hundred_slow_header_clients_are_cut_off_and_do_not_delay_others() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, "header_timeout: 2s").await;
    let addr = gw.http;

    // Act: 300 clients start a request header and then send one byte every half second.
    let slow: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .unwrap();
                let started = std::time::Instant::now();
                // Trickle until the gateway gives up on us (writes then fail) or 20 s pass.
                while started.elapsed() < Duration::from_secs(20) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if conn.write_all(b"X").await.is_err() {
                        break;
                    }
                }
                closed_by_server(&mut conn).await
            })
        })
        .collect();
    // Meanwhile, ordinary clients.
    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let started = std::time::Instant::now();
        let resp = client.get(gw.url("/fast")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut cut_off = 0;
    for task in slow {
        if task.await.unwrap() {
            cut_off += 1;
        }
    }

    // Assert
    assert_eq!(cut_off, 300, "every trickling client was disconnected");
    assert!(
        slowest < Duration::from_secs(1),
        "an ordinary request took {slowest:?} beside the slow clients"
    );
    let timeouts = metric_value(&gw, "gateway_downstream_timeouts_total{phase=\"header\"}").await;
    assert!(timeouts >= Some(300.0), "{timeouts:?}");
    assert_eq!(up.requests(), 50, "no slow request reached the upstream");
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, "idle_timeout: 1s").await;

    // Act: one connection says nothing; another makes a request and then idles.
    let mut silent = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut kept = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    kept.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    // Assert
    assert!(
        closed_by_server(&mut silent).await,
        "a silent client is closed"
    );
    assert!(
        closed_by_server(&mut kept).await,
        "an idle keep-alive client is closed"
    );
    let idle = metric_value(&gw, "gateway_downstream_timeouts_total{phase=\"idle\"}").await;
    assert!(idle >= Some(2.0), "{idle:?}");
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_at_once() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange: room for 5 connections, all taken by idle clients.
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, "max_connections: 5").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(gw.http).await.unwrap());
    }
    assert_eventually!(
        metric_value(&gw, "gateway_downstream_connections").await == Some(5.0),
        "the five connections were never counted"
    );

    // Act
    let mut sixth = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let _ = sixth.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let refused = closed_by_server(&mut sixth).await;
    held.pop();
    let client = reqwest::Client::new();
    assert_eventually!(
        client
            .get(gw.url("/x"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200),
        "a freed slot was never usable"
    );

    // Assert
    assert!(refused, "the sixth connection was closed");
    let rejected = metric_value(&gw, "gateway_downstream_connections_rejected_total").await;
    assert!(rejected >= Some(1.0), "{rejected:?}");
}

#[tokio::test]
async fn a_flood_of_made_up_tokens_is_limited_per_client_while_verified_ones_stay_free() {
    use crate::jwks::{claims, jwt_section, JwksServer, SigningKey};
    // Arrange: three signature checks per client, then one a minute.
    let key = SigningKey::generate("k1");
    let jwks = JwksServer::spawn(&[&key]).await;
    let up = Upstream::spawn("a").await;
    let gw = gateway::start(&format!(
        "{}  verification_limit: {{ rate: 1, per: 1m, burst: 3 }}\npools:\n  p: {{ endpoints: {} }}\n\
         routes:\n- {{ name: api, match: {{ path_prefix: /api }}, pool: p, auth: required }}\n",
        jwt_section(&jwks.url()),
        endpoints(&[&up])
    ))
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
    let gw = gateway::start(&format!(
        "{}pools:\n  p: {{ endpoints: {}, forward_secret: {{ secret_file: \"{}\" }} }}\n\
         routes:\n- {{ name: open, match: {{ path_prefix: / }}, pool: p, auth: optional }}\n",
        jwt_section(&jwks.url()),
        endpoints(&[&up]),
        secret_file.display(),
    ))
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let seen = |resp: reqwest::Response| async {
        let body: Value = resp.json().await.unwrap();
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

#[tokio::test]
async fn an_upstream_shedding_load_with_503_and_retry_after_is_not_ejected() {
    // Arrange: ejection after 2 failures in a row.
    let up = Upstream::spawn("a").await;
    let gw = super::proxy_all(&[&up], "passive_health: { consecutive_failures: 2 }").await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act: five load-shedding answers, then five real failures.
    let mut shed = Vec::new();
    for _ in 0..5 {
        shed.push(
            client
                .get(gw.url("/shed"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    let ejections_after_shedding =
        metric_value(&gw, "gateway_upstream_ejections_total{pool=\"p\"}").await;
    up.set_failing(true);
    for _ in 0..5 {
        client.get(gw.url("/x")).send().await.unwrap();
    }

    // Assert: the 503s reached the client untouched, and only real failures eject.
    assert_eq!(shed, vec![503; 5]);
    assert_eq!(ejections_after_shedding.unwrap_or(0.0), 0.0);
    let ejections = metric_value(&gw, "gateway_upstream_ejections_total{pool=\"p\"}").await;
    assert!(ejections >= Some(1.0), "{ejections:?}");
}

#[tokio::test]
async fn targets_that_are_not_a_path_are_refused_and_urls_go_upstream_as_paths() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let gw = super::proxy_all(&[&up], "").await;
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

#[tokio::test]
async fn one_client_cannot_take_every_connection_when_capped_per_client() {
    use tokio::io::AsyncWriteExt as _;
    // Arrange: 3 connections per client address, 100 in all.
    let up = Upstream::spawn("a").await;
    let gw = with_limits(&up, "max_connections_per_client: 3").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(gw.http).await.unwrap());
    }
    assert_eventually!(
        metric_value(&gw, "gateway_downstream_connections").await == Some(3.0),
        "the three connections were never counted"
    );

    // Act: a fourth from the same address (127.0.0.1), and one from another (127.0.0.2).
    let mut fourth = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let _ = fourth
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let refused = closed_by_server(&mut fourth).await;
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(gw.http).await.unwrap();
    other
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut other, &mut answer)
        .await
        .unwrap();

    // Assert
    assert!(refused, "the fourth connection of one client was closed");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "another client still gets in"
    );
}
