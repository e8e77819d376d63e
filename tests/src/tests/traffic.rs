//! Traffic management against real upstreams: circuit breakers, the retry budget, retries
//! on a status, and load shedding under `max_in_flight`.

use std::time::{Duration, Instant};

use super::{get, metric_value, proxy_all};
use crate::assert_eventually;
use crate::config::{CircuitBreaker, Pool, Queue, Retries, RetryBudget};
use crate::upstream::Upstream;

#[tokio::test]
async fn a_breaker_opens_lets_only_probes_through_and_closes_after_recovery() {
    // Arrange: b fails; two failures in a row open its breaker for 300 ms each time.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    b.set_failing(true);
    let gw = proxy_all(
        Pool::upstreams(&[&a, &b])
            .circuit_breaker(
                CircuitBreaker::new()
                    .consecutive_failures(2)
                    .open_for("300ms")
                    .max_open_for("300ms")
                    .half_open_probes(1),
            )
            .retries(Retries::new().attempts(0)),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act 1: traffic for a while as b keeps failing.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        get(&client, &gw.url("/t")).await;
        sent += 1;
    }
    let elapsed = started.elapsed();

    // Assert 1: b got the two failures that opened it, then only one probe per opening
    // (each failed probe opens it for another 300 ms).
    let openings = u32::try_from(elapsed.as_millis() / 300).unwrap() + 1;
    let to_b = b.requests();
    assert!(
        to_b <= 2 + openings as usize,
        "{to_b} of {sent} requests reached b in {elapsed:?}"
    );
    assert!(sent > 20, "only {sent} requests were sent");
    let gauge = format!(
        "gateway_breaker_state{{endpoint=\"{}\",pool=\"p\"}}",
        b.addr
    );
    let state = metric_value(&gw, &gauge).await;
    assert!(
        matches!(state, Some(s) if s >= 1.0),
        "b's breaker: {state:?}"
    );
    let opened = metric_value(
        &gw,
        "gateway_breaker_transitions_total{pool=\"p\",state=\"open\"}",
    )
    .await;
    assert!(opened >= Some(2.0), "failed probes reopen it: {opened:?}");
    assert!(
        metric_value(&gw, "gateway_breaker_rejected_total{pool=\"p\"}").await >= Some(1.0),
        "requests the balancer meant for b were diverted"
    );
    let readyz: serde_json::Value = client
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoints = readyz["pools"]["p"]["endpoints"].as_array().unwrap();
    let breaker_of = |addr: std::net::SocketAddr| {
        endpoints
            .iter()
            .find(|e| e["endpoint"] == addr.to_string())
            .map(|e| e["breaker"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(breaker_of(a.addr).as_deref(), Some("closed"), "{readyz}");
    assert!(
        matches!(breaker_of(b.addr).as_deref(), Some("open" | "half_open")),
        "{readyz}"
    );
    assert_eq!(readyz["ready"], true, "a still serves");

    // Act 2: b recovers.
    b.set_failing(false);
    assert_eventually!(
        {
            // Traffic is what lets a probe through once the opening ends.
            get(&client, &gw.url("/t")).await;
            metric_value(&gw, &gauge).await == Some(0.0)
        },
        "b's breaker never closed"
    );

    // Assert 2: closed, b takes its share again.
    let before = b.requests();
    for _ in 0..20 {
        assert_eq!(get(&client, &gw.url("/t")).await.0, 200);
    }
    assert!(
        b.requests() - before >= 8,
        "b got {} of 20",
        b.requests() - before
    );
    let closed = metric_value(
        &gw,
        "gateway_breaker_transitions_total{pool=\"p\",state=\"closed\"}",
    )
    .await;
    assert_eq!(closed, Some(1.0));
}

#[tokio::test]
async fn the_retry_budget_caps_retries_during_a_full_outage() {
    // Arrange: every endpoint answers 503; each request could be retried twice, but the
    // budget allows retries of 10% of the request rate, or 1 per second.
    let ups = [
        Upstream::spawn("a").await,
        Upstream::spawn("b").await,
        Upstream::spawn("c").await,
    ];
    for up in &ups {
        up.fail_with(503);
    }
    let gw = proxy_all(
        Pool::upstreams(&[&ups[0], &ups[1], &ups[2]])
            .circuit_breaker(CircuitBreaker::off())
            .retries(
                Retries::new()
                    .attempts(2)
                    .on_status(&[503])
                    .backoff("1ms")
                    .max_backoff("1ms")
                    .budget(RetryBudget::new().percent(10.0).min_per_second(1)),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let requests = 300;

    // Act: 300 requests, ten at a time.
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..requests / 10 {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                let (client, url) = (client.clone(), gw.url("/outage"));
                tokio::spawn(async move { get(&client, &url).await.0 })
            })
            .collect();
        for answer in batch {
            statuses.push(answer.await.expect("joins"));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Assert: the upstream's 503 reached every client, and retries stayed within 10% of
    // the requests plus one per second (and a little for the sliding estimate), far from
    // the 600 that two retries each would have made.
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let received: usize = ups.iter().map(Upstream::requests).sum();
    let retries = received - requests;
    let cap = (requests as f64 * 0.10 + elapsed.ceil() + 5.0) as usize;
    assert!(
        retries <= cap,
        "{retries} retries for {requests} requests in {elapsed:.1}s (cap {cap})"
    );
    assert!(retries >= 1, "the budget allows some retries");
    let exhausted = metric_value(&gw, "gateway_retry_budget_exhausted_total{pool=\"p\"}").await;
    assert!(exhausted >= Some(100.0), "{exhausted:?}");
}

/// Send `method` with `body` and return (status, the upstream that answered, its JSON).
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Vec<u8>,
) -> (u16, String, serde_json::Value) {
    let resp = client
        .request(method, url)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let upstream = resp
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json = resp.json().await.unwrap_or_default();
    (status, upstream, json)
}

#[tokio::test]
async fn statuses_are_retried_for_idempotent_methods_with_a_replayable_body() {
    // Arrange: a answers 503, b answers; one retry on 503, bodies kept up to 8 KiB, and a
    // budget that does not get in the way of this burst.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    a.fail_with(503);
    let gw = proxy_all(
        Pool::upstreams(&[&a, &b])
            .circuit_breaker(CircuitBreaker::off())
            .retries(
                Retries::new()
                    .attempts(1)
                    .on_status(&[503])
                    .replay_body("8KiB")
                    .budget(RetryBudget::new().min_per_second(1000)),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let url = gw.url("/r");

    // Act: six of each kind in a row, so that round robin sends some of each to a first.
    let mut answers = Vec::new();
    for (method, size) in [
        (reqwest::Method::GET, 0),
        (reqwest::Method::POST, 2),
        (reqwest::Method::PUT, 4000),
        (reqwest::Method::PUT, 20_000),
    ] {
        let mut of_kind = Vec::new();
        for _ in 0..6 {
            of_kind.push(send(&client, method.clone(), &url, vec![b'x'; size]).await);
        }
        answers.push(of_kind);
    }
    let [gets, posts, small_puts, large_puts] = <[_; 4]>::try_from(answers).unwrap();

    // Assert: GET and a small PUT always end at b, the PUT's body replayed whole; a POST
    // is never retried, nor a PUT whose body is larger than what is kept.
    for (status, upstream, _) in &gets {
        assert_eq!((*status, upstream.as_str()), (200, "b"));
    }
    for (status, upstream, json) in &small_puts {
        assert_eq!((*status, upstream.as_str()), (200, "b"));
        assert_eq!(json["body_len"], 4000);
    }
    let refused = |answers: &[(u16, String, serde_json::Value)]| {
        answers
            .iter()
            .filter(|(s, u, _)| *s == 503 && u == "a")
            .count()
    };
    assert!(
        refused(&posts) >= 1,
        "a POST reaching a gets its 503: {posts:?}"
    );
    assert!(refused(&large_puts) >= 1, "{large_puts:?}");
    // Every other request that reached a was retried.
    let not_retried = refused(&posts) + refused(&large_puts);
    let retries = metric_value(&gw, "gateway_upstream_retries_total{pool=\"p\"}").await;
    assert_eq!(retries, Some((a.requests() - not_retried) as f64));
    assert!(
        a.requests() > not_retried,
        "some GETs or small PUTs met a first"
    );
}

#[tokio::test]
async fn load_shedding_protects_the_upstream_and_bounds_the_wait_of_admitted_requests() {
    // Arrange: each answer takes 100 ms; 4 at once, 8 more may wait up to 300 ms.
    let up = Upstream::spawn("slow").await;
    let gw = proxy_all(
        Pool::upstreams(&[&up])
            .max_in_flight(4)
            .queue(Queue::new().size(8).timeout("300ms")),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act: 40 requests at once.
    let one = |client: reqwest::Client, url: String| async move {
        let started = Instant::now();
        let resp = client.get(url).send().await.expect("request");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let kind = resp.headers().get("content-type").cloned();
        let _ = resp.bytes().await;
        (status, started.elapsed(), retry_after, kind)
    };
    let pending: Vec<_> = (0..40)
        .map(|_| tokio::spawn(one(client.clone(), gw.url("/slow/100"))))
        .collect();
    let mut answers = Vec::new();
    for answer in pending {
        answers.push(answer.await.expect("joins"));
    }

    // Assert: the upstream never had more than 4 at once; the rest of the burst waited
    // (admitted within the queue's 300 ms) or got a 503 problem with Retry-After.
    assert!(
        up.max_in_flight() <= 4,
        "upstream saw {} at once",
        up.max_in_flight()
    );
    let admitted: Vec<Duration> = answers.iter().filter(|a| a.0 == 200).map(|a| a.1).collect();
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(admitted.len() + shed.len(), 40, "{answers:?}");
    assert!(admitted.len() >= 4 && !shed.is_empty(), "{answers:?}");
    for (_, _, retry_after, kind) in &shed {
        assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(
            kind.as_ref().map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
    }
    // Queue wait (at most 300 ms) plus the 100 ms answer, with room for a debug build.
    let slowest = admitted.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(1000),
        "slowest admitted: {slowest:?}"
    );
    let overload = metric_value(
        &gw,
        "gateway_policy_rejections_total{reason=\"overload\",route=\"all\"}",
    )
    .await;
    assert_eq!(overload, Some(shed.len() as f64));
}

#[tokio::test]
async fn a_routes_deadline_cuts_attempts_and_reaches_the_upstream_as_a_header() {
    // Arrange: the pool waits 30 s for an answer; one route gives a request 600 ms in all,
    // another waits 300 ms for the upstream, a third sends what is left of 5 s upstream.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = crate::gateway::start(
        &crate::config::GatewayConfig::new()
            .pool(
                "p",
                Pool::upstreams(&[&a, &b])
                    .circuit_breaker(CircuitBreaker::off())
                    .retries(Retries::new().attempts(2)),
            )
            .route(
                crate::config::Route::prefix("/deadline")
                    .pool("p")
                    .strip_prefix()
                    .policy("timeouts", serde_json::json!({ "request": "600ms" })),
            )
            .route(
                crate::config::Route::prefix("/impatient")
                    .pool("p")
                    .strip_prefix()
                    .policy(
                        "timeouts",
                        serde_json::json!({ "upstream_response": "300ms" }),
                    ),
            )
            .route(
                crate::config::Route::prefix("/told")
                    .pool("p")
                    .strip_prefix()
                    .policy(
                        "timeouts",
                        serde_json::json!({ "request": "5s", "deadline_header": "X-Deadline-Ms" }),
                    ),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let timed = |path: &'static str| {
        let (client, url) = (client.clone(), gw.url(path));
        async move {
            let started = Instant::now();
            let (status, _, body) = get(&client, &url).await;
            (status, started.elapsed(), body)
        }
    };
    let (deadline_status, deadline_took, deadline_body) = timed("/deadline/slow/3000").await;
    let (impatient_status, impatient_took, _) = timed("/impatient/slow/3000").await;
    let (told_status, _, told_body) = timed("/told/echo").await;

    // Assert: the deadline ended the request (retries included) at about 600 ms; the
    // response timeout gave each of the three attempts 300 ms; the upstream was told how
    // many of the 5000 ms were left.
    assert_eq!(deadline_status, 504, "{deadline_body}");
    assert!(deadline_body.contains("\"status\":504"), "{deadline_body}");
    assert!(
        deadline_took >= Duration::from_millis(550) && deadline_took < Duration::from_millis(2000),
        "{deadline_took:?}"
    );
    assert_eq!(impatient_status, 504);
    assert!(
        impatient_took >= Duration::from_millis(850)
            && impatient_took < Duration::from_millis(2500),
        "three attempts of 300 ms: {impatient_took:?}"
    );
    assert_eq!(told_status, 200);
    let echoed: serde_json::Value = serde_json::from_str(&told_body).unwrap();
    let left: u64 = echoed["headers"]["x-deadline-ms"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no deadline header: {echoed}"));
    assert!((4000..=5000).contains(&left), "{left} ms left");
}

#[tokio::test]
async fn endpoint_weights_share_a_pools_traffic() {
    // Arrange: b weighs three times a.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = proxy_all(Pool::weighted(&[(&a, 1), (&b, 3)])).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    for _ in 0..400 {
        assert_eq!(get(&client, &gw.url("/w")).await.0, 200);
    }

    // Assert: 3 of every 4 requests went to b.
    assert!(
        (270..=330).contains(&b.requests()),
        "a {} b {}",
        a.requests(),
        b.requests()
    );
    assert_eq!(a.requests() + b.requests(), 400);
}

/// A gateway with one route splitting 90/10 between pools `stable` and `canary`, sticky by
/// `X-User`, with `X-Canary` naming a pool for testers.
async fn canary_gateway(stable: &Upstream, canary: &Upstream) -> crate::gateway::TestGateway {
    crate::gateway::start(
        &crate::config::GatewayConfig::new()
            .pool("stable", Pool::upstreams(&[stable]))
            .pool("canary", Pool::upstreams(&[canary]))
            .route(
                crate::config::Route::prefix("/")
                    .name("app")
                    .policy(
                        "split",
                        serde_json::json!([
                            { "pool": "stable", "weight": 90 },
                            { "pool": "canary", "weight": 10 },
                        ]),
                    )
                    .policy("sticky", serde_json::json!("header:x-user"))
                    .policy("override_header", serde_json::json!("X-Canary")),
            ),
    )
    .await
}

#[tokio::test]
async fn a_90_10_split_lands_within_bounds_and_stays_sticky_per_key() {
    // Arrange
    let (stable, canary) = (
        Upstream::spawn("stable").await,
        Upstream::spawn("canary").await,
    );
    let gw = canary_gateway(&stable, &canary).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act 1: 10,000 requests without a sticky key, 16 at a time.
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, url) = (client.clone(), gw.url("/split"));
        workers.push(tokio::spawn(async move {
            let mut to_canary = 0;
            for _ in 0..625 {
                let (status, upstream, _) = get(&client, &url).await;
                assert_eq!(status, 200);
                to_canary += usize::from(upstream.as_deref() == Some("canary"));
            }
            to_canary
        }));
    }
    let mut to_canary = 0;
    for worker in workers {
        to_canary += worker.await.expect("joins");
    }

    // Assert 1: 10% of 10,000 is 1,000, with a standard deviation of 30; five of them
    // either way.
    assert!((850..=1150).contains(&to_canary), "{to_canary} of 10000");

    // Act 2: 200 users, five requests each.
    let mut canary_users = 0;
    for user in 0..200 {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let resp = client
                .get(gw.url("/split"))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            seen.insert(resp.headers()["x-upstream"].to_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 1, "user-{user} moved between pools: {seen:?}");
        canary_users += usize::from(seen.contains("canary"));
    }

    // Assert 2: each user stays on one pool, and about a tenth of them are on the canary
    // (20 expected, standard deviation 4.2).
    assert!((5..=40).contains(&canary_users), "{canary_users} of 200");

    // Act 3 + Assert 3: a tester asks for the canary by name; a name outside the split is
    // ignored.
    for _ in 0..5 {
        let resp = client
            .get(gw.url("/split"))
            .header("x-canary", "canary")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-upstream"], "canary");
    }
    let metric = metric_value(
        &gw,
        "gateway_split_requests_total{pool=\"canary\",route=\"app\"}",
    )
    .await;
    assert_eq!(metric, Some((to_canary + canary_users * 5 + 5) as f64));
}

#[tokio::test]
async fn mirrored_requests_reach_the_shadow_and_a_dead_shadow_changes_nothing() {
    // Arrange: every request of /all is copied to the shadow, half of /half's, and /dead's
    // go to a pool where nothing listens.
    let (primary, shadow) = (
        Upstream::spawn("primary").await,
        Upstream::spawn("shadow").await,
    );
    let mirror = |pool: &str, percent: f64| serde_json::json!({ "pool": pool, "percent": percent });
    let gw = crate::gateway::start(
        &crate::config::GatewayConfig::new()
            .pool("primary", Pool::upstreams(&[&primary]))
            .pool("shadow", Pool::upstreams(&[&shadow]))
            .pool(
                "nowhere",
                Pool::endpoints(["127.0.0.79:1"]).circuit_breaker(CircuitBreaker::off()),
            )
            .route(
                crate::config::Route::prefix("/all")
                    .name("all")
                    .pool("primary")
                    .policy("mirror", mirror("shadow", 100.0)),
            )
            .route(
                crate::config::Route::prefix("/half")
                    .name("half")
                    .pool("primary")
                    .policy("mirror", mirror("shadow", 50.0)),
            )
            .route(
                crate::config::Route::prefix("/dead")
                    .name("dead")
                    .pool("primary")
                    .policy("mirror", mirror("nowhere", 100.0)),
            ),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act 1: 20 POSTs with a body.
    for i in 0..20 {
        let (status, upstream, json) = send(
            &client,
            reqwest::Method::POST,
            &gw.url("/all"),
            format!("payload-{i:04}").into_bytes(),
        )
        .await;
        assert_eq!((status, upstream.as_str()), (200, "primary"));
        assert_eq!(json["body_len"], 12);
    }

    // Assert 1: each reached the shadow, body and all.
    assert_eventually!(shadow.requests() == 20, "shadow got {}", shadow.requests());
    assert_eq!(
        shadow
            .state
            .largest_body
            .load(std::sync::atomic::Ordering::SeqCst),
        12
    );

    // Act 2: 1,000 GETs on /half, and 50 on /dead.
    for _ in 0..1000 {
        assert_eq!(get(&client, &gw.url("/half")).await.0, 200);
    }
    let mut dead = Vec::new();
    for _ in 0..50 {
        dead.push(get(&client, &gw.url("/dead")).await.0);
    }

    // Assert 2: about half the /half requests were copied (500 expected, standard
    // deviation 16), each copy arrived, and the dead shadow failed no client request.
    let sent = |route: &'static str| {
        let gw = &gw;
        async move {
            metric_value(
                gw,
                &format!("gateway_mirror_requests_total{{result=\"sent\",route=\"{route}\"}}"),
            )
            .await
            .unwrap_or(0.0)
        }
    };
    assert_eventually!(
        metric_value(&gw, "gateway_mirror_in_flight{route=\"half\"}").await == Some(0.0),
        "copies still in flight"
    );
    assert_eq!(shadow.requests() as f64, 20.0 + sent("half").await);
    let half = shadow.requests() - 20;
    assert!((420..=580).contains(&half), "{half} of 1000 copied");
    assert!(dead.iter().all(|s| *s == 200), "{dead:?}");
    assert_eventually!(
        metric_value(
            &gw,
            "gateway_mirror_requests_total{result=\"failed\",route=\"dead\"}"
        )
        .await
            == Some(50.0),
        "the copies to nowhere were not all counted as failed"
    );
    assert_eq!(primary.requests(), 20 + 1000 + 50);
}

#[tokio::test]
async fn an_endpoint_at_its_own_limit_is_skipped_and_a_full_pool_answers_503() {
    // Arrange: two upstreams, each answering in 300 ms, each taking 2 requests at once.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = proxy_all(Pool::upstreams(&[&a, &b]).max_in_flight_per_endpoint(2)).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act: ten at once.
    let pending: Vec<_> = (0..10)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/slow/300"));
            tokio::spawn(async move {
                let resp = client.get(url).send().await.expect("request");
                let retry_after = resp.headers().contains_key("retry-after");
                (resp.status().as_u16(), retry_after)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for answer in pending {
        answers.push(answer.await.expect("joins"));
    }

    // Assert: neither upstream had more than 2; the four that fit were answered, the
    // others got 503 with Retry-After.
    assert!(
        a.max_in_flight() <= 2 && b.max_in_flight() <= 2,
        "{} {}",
        a.max_in_flight(),
        b.max_in_flight()
    );
    let answered = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers.iter().filter(|(s, r)| *s == 503 && *r).count();
    assert_eq!(answered + refused, 10, "{answers:?}");
    assert!(answered >= 4 && refused >= 1, "{answers:?}");
}

#[tokio::test]
async fn a_reload_keeps_the_breakers_of_unchanged_and_changed_pools() {
    // Arrange: b's breaker opens for a minute.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let other = Upstream::spawn("other").await;
    b.set_failing(true);
    let pool = || {
        Pool::upstreams(&[&a, &b])
            .circuit_breaker(
                CircuitBreaker::new()
                    .consecutive_failures(1)
                    .open_for("60s"),
            )
            .retries(Retries::new().attempts(0))
    };
    let config = |p: Pool| {
        crate::config::GatewayConfig::new()
            .pool("p", p)
            .route(crate::config::Route::prefix("/").name("all").pool("p"))
    };
    let gw = crate::gateway::start(&config(pool())).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    for _ in 0..4 {
        get(&client, &gw.url("/r")).await;
    }
    let gauge = format!(
        "gateway_breaker_state{{endpoint=\"{}\",pool=\"p\"}}",
        b.addr
    );
    assert_eq!(
        metric_value(&gw, &gauge).await,
        Some(2.0),
        "b's breaker is open"
    );
    let reloads = |n: f64| {
        let gw = &gw;
        async move { metric_value(gw, "gateway_config_reloads_total{result=\"ok\"}").await == Some(n) }
    };

    // Act 1: a reload that adds a pool and leaves p alone.
    gw.rewrite_config(
        &config(pool())
            .pool("q", Pool::upstreams(&[&other]))
            .route(crate::config::Route::prefix("/q").pool("q")),
    );
    assert_eventually!(reloads(1.0).await, "the first edit never applied");
    let to_b = b.requests();
    for _ in 0..10 {
        assert_eq!(get(&client, &gw.url("/r")).await.1.as_deref(), Some("a"));
    }

    // Act 2: a reload that changes p's own settings.
    gw.rewrite_config(&config(pool().retries(Retries::new().attempts(1))));
    assert_eventually!(reloads(2.0).await, "the second edit never applied");
    for _ in 0..10 {
        assert_eq!(get(&client, &gw.url("/r")).await.1.as_deref(), Some("a"));
    }

    // Assert: b stayed out through both reloads, and the gauge still says so.
    assert_eq!(b.requests(), to_b, "b got traffic after a reload");
    assert_eq!(metric_value(&gw, &gauge).await, Some(2.0));
}

#[tokio::test]
async fn the_adaptive_limit_falls_while_the_pool_is_slow_and_rises_when_it_is_quick() {
    // Arrange: at most 16 at once, at least 2, answers expected within 100 ms.
    let up = Upstream::spawn("u").await;
    let gw = proxy_all(
        Pool::upstreams(&[&up])
            .max_in_flight(16)
            .queue(Queue::new().size(200).timeout("10s"))
            .adaptive_limit(serde_json::json!({ "min_in_flight": 2, "latency": "100ms" })),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let limit = || {
        let gw = &gw;
        async move {
            metric_value(gw, "gateway_pool_requests{pool=\"p\",state=\"limit\"}")
                .await
                .unwrap_or(f64::NAN)
        }
    };
    let burst = |path: &'static str, clients: usize, each: usize| {
        let pending: Vec<_> = (0..clients)
            .map(|_| {
                let (client, url) = (client.clone(), gw.url(path));
                tokio::spawn(async move {
                    for _ in 0..each {
                        assert_eq!(get(&client, &url).await.0, 200);
                    }
                })
            })
            .collect();
        async move {
            for p in pending {
                p.await.expect("joins");
            }
        }
    };

    // Act 1: 12 clients, each sending 4 requests that take 250 ms.
    burst("/slow/250", 12, 4).await;
    let after_slow = limit().await;

    // Act 2: 12 clients, each sending 150 quick requests.
    burst("/quick", 12, 150).await;
    let after_quick = limit().await;
    println!("limit: 16 -> {after_slow} after slow answers -> {after_quick} after quick ones");

    // Assert: slow answers cut the limit (once per 100 ms at most), quick ones grew it
    // again, and the upstream never had more than the ceiling at once.
    // Four waves of slow answers, 250 ms apart: a cut each.
    assert!(after_slow <= 14.0, "limit after slow answers: {after_slow}");
    assert!(after_quick > after_slow, "{after_slow} -> {after_quick}");
    assert!(up.max_in_flight() <= 16, "{}", up.max_in_flight());
}
