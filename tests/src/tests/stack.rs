//! The native runner with the committed `gateway.yaml`: the real config, two real backend
//! replicas, PostgreSQL and Redis, and a live edit of the config.

use serde_json::Value;
use std::path::Path;

use crate::assert_eventually;
use crate::load::TodoTraffic;
use crate::stack::{Stack, StackOptions};

#[tokio::test]
async fn the_stack_serves_the_api_across_replicas_and_applies_config_edits() {
    // Arrange: a copy of the committed config, so the test may edit it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.yaml"),
        &config,
    )
    .unwrap();
    let stack = Stack::start(&StackOptions::for_tests(config.clone()))
        .await
        .expect("the stack starts");
    let api = stack.api();
    let client = api.http().clone();

    // Act: register, log in, create a todo through the queue, list it.
    let user = api.user("ada").await.unwrap();
    let token = user.token.clone();
    let status_url = api.accepted_todo(&user, "milk").await.unwrap();
    assert_eventually!(
        api.job_status(&user, &status_url).await == "done",
        "the job never finished"
    );
    let mut instances = std::collections::HashSet::new();
    let mut titles = Value::Null;
    for _ in 0..6 {
        let resp = client
            .get(stack.url("/todos"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        instances.insert(resp.headers()["x-instance"].to_str().unwrap().to_owned());
        titles = resp.json::<Value>().await.unwrap()["items"].clone();
    }

    // Assert: both replicas answered, through the real routes and the JWT check.
    assert_eq!(
        instances,
        ["backend-1", "backend-2"].map(String::from).into(),
        "round robin over both replicas"
    );
    assert_eq!(titles[0]["title"], "milk");
    let anonymous = client.get(stack.url("/todos")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the todos route requires a token");

    // Act 2: tighten the todos route's limit in the user's file.
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replacen(
        "{ key: subject, rate: 20, per: 1s, burst: 40, scope: cluster }",
        "{ key: subject, rate: 1, per: 1m, burst: 1, scope: cluster }",
        1,
    );
    assert_ne!(
        text, edited,
        "the committed todos limit changed; update this test"
    );
    std::fs::write(&config, edited).unwrap();

    // Assert 2: 429s appear without a restart, while the runner follows the file.
    let saw_429 = async {
        assert_eventually!(
            client
                .get(stack.url("/todos"))
                .bearer_auth(&token)
                .send()
                .await
                .is_ok_and(|r| r.status() == 429),
            "the edited limit never applied"
        );
    };
    tokio::select! {
        () = stack.follow_config(std::future::pending()) => unreachable!("follows until stopped"),
        () = saw_429 => {}
    }
    stack.shutdown().await;
}

/// Whether `/readyz` says `healthy` of the replica at `addr`.
async fn replica_healthy(
    client: &reqwest::Client,
    stack: &Stack,
    addr: std::net::SocketAddr,
) -> Option<bool> {
    let readyz: Value = client
        .get(format!("http://{}/readyz", stack.admin))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    readyz["pools"]["backend"]["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["endpoint"] == addr.to_string())?["healthy"]
        .as_bool()
}

#[tokio::test]
async fn killing_restarting_and_pausing_replicas_under_load_fails_no_request() {
    // Arrange: the committed config without its rate limits (the load would meet them),
    // three replicas, jobs a dead worker held redelivered after 3 s, and the sweep for jobs
    // a dead replica never enqueued every second.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.yaml"))
            .unwrap();
    let unlimited = crate::stack::without_rate_limits(
        &committed,
        &["login", "register", "auth", "todos", "jobs", "jwks"],
    )
    .unwrap();
    std::fs::write(&config, unlimited).unwrap();
    let mut options = StackOptions::for_tests(config);
    options.replicas = 3;
    options
        .backend_env
        .push(("JOB_VISIBILITY_TIMEOUT_SECONDS".into(), "3".into()));
    options
        .backend_env
        .push(("STREAM_TRIM_INTERVAL_SECONDS".into(), "1".into()));
    let mut stack = Stack::start(&options).await.expect("the stack starts");
    let api = stack.api();
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(api.user(&format!("chaos-{i}")).await.unwrap());
    }
    let users = std::sync::Arc::new(users);

    // Six clients: each alternates GET /todos and POST /todos with an Idempotency-Key.
    let traffic = TodoTraffic::start(&stack.url("/todos"), &users, 6);
    let client = reqwest::Client::new();
    let progress = async |more: usize| {
        assert!(
            traffic.progress(more, crate::patience()).await,
            "the load stalled: {more} more requests were not answered within {:?}",
            crate::patience()
        );
    };
    progress(100).await;

    // Act 1: three times, kill the second replica, let traffic flow, start it again and wait
    // until the gateway sends it traffic again.
    let victim = stack.backends[1];
    for _ in 0..3 {
        stack.kill_backend(1);
        progress(100).await;
        stack.restart_backend(1).await.unwrap();
        assert_eventually!(
            replica_healthy(&client, &stack, victim).await == Some(true),
            "the restarted replica never took traffic again"
        );
        progress(50).await;
    }

    // Act 2: freeze the third replica until its health check takes it out, then let it go.
    let slow = stack.backends[2];
    stack.pause_backend(2, true).unwrap();
    assert_eventually!(
        replica_healthy(&client, &stack, slow).await == Some(false),
        "the frozen replica was never taken out"
    );
    stack.pause_backend(2, false).unwrap();
    assert_eventually!(
        replica_healthy(&client, &stack, slow).await == Some(true),
        "the thawed replica never came back"
    );
    progress(100).await;
    let report = traffic.stop().await;

    // Assert: no client saw a failure, and every accepted todo exists exactly once.
    report.assert_no_failures("killing, restarting and pausing replicas");
    let metrics = client
        .get(format!("http://{}/metrics", stack.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retries: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_upstream_retries_total{pool=\"backend\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    println!(
        "chaos: {} requests answered, {} todos accepted, {retries} retries, {} failures",
        report.ok,
        report.accepted.len(),
        report.failures.len()
    );
    assert!(
        retries >= 1.0,
        "the kills met requests the gateway had to retry"
    );
    assert!(
        report.accepted.len() >= 100,
        "only {} todos were accepted",
        report.accepted.len()
    );
    report
        .assert_each_todo_once(&api, &users, crate::patience())
        .await;
    stack.shutdown().await;
}
