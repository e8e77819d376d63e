//! The native runner with the committed `gateway.yaml`: the real config, two real backend
//! replicas, PostgreSQL and Redis, and a live edit of the config.

use serde_json::Value;
use std::path::Path;

use crate::assert_eventually;
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
