use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn every_crud_path_works_and_delete_makes_it_404() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("alice").await.unwrap();

    // Act
    let id = app.create_todo_done(&user, "  buy milk ").await;
    let got: Value = app
        .api
        .get(&format!("/todos/{id}"), &user)
        .await
        .json()
        .await
        .unwrap();
    let patched = app
        .api
        .patch_todo(&user, &id, &json!({"done": true, "title": "buy oat milk"}))
        .await;
    let patched: Value = patched.json().await.unwrap();
    let deleted = app.api.delete_todo(&user, &id).await;
    let after = app.api.get(&format!("/todos/{id}"), &user).await;

    // Assert
    assert_eq!(got["title"], "buy milk", "title trimmed");
    assert_eq!(got["done"], false);
    assert_eq!(
        (patched["title"].as_str(), patched["done"].as_bool()),
        (Some("buy oat milk"), Some(true))
    );
    assert_eq!(deleted.status(), 204);
    assert_eq!(after.status(), 404);
    assert_eq!(app.api.delete_todo(&user, &id).await.status(), 404);
}

#[tokio::test]
async fn another_users_todo_and_job_are_404() {
    // Arrange
    let app = spawn_app().await;
    let (alice, mallory) = (
        app.api.user("alice").await.unwrap(),
        app.api.user("mallory").await.unwrap(),
    );
    let resp: Value = app
        .api
        .create_todo(&alice, "secret")
        .await
        .json()
        .await
        .unwrap();
    let job_url = resp["status_url"].as_str().unwrap().to_owned();
    app.drain_jobs().await;
    let status: Value = app.api.get(&job_url, &alice).await.json().await.unwrap();
    let id = status["todo_id"].as_str().unwrap();

    // Act + Assert
    assert_eq!(
        app.api
            .get(&format!("/todos/{id}"), &mallory)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.api
            .patch_todo(&mallory, id, &json!({"done": true}))
            .await
            .status(),
        404
    );
    assert_eq!(app.api.delete_todo(&mallory, id).await.status(), 404);
    assert_eq!(app.api.get(&job_url, &mallory).await.status(), 404);
    let list: Value = app.api.get("/todos", &mallory).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.api.get(&format!("/todos/{id}"), &alice).await.status(),
        200,
        "still there"
    );
}

#[tokio::test]
async fn pages_come_newest_first_with_a_cursor_until_the_end() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("pat").await.unwrap();
    for i in 0..7 {
        app.api.create_todo(&user, &format!("todo {i}")).await;
    }
    app.drain_jobs().await;

    // Act
    let mut titles = Vec::new();
    let mut pages = 0;
    let mut path = "/todos?limit=3".to_owned();
    loop {
        let page: Value = app.api.get(&path, &user).await.json().await.unwrap();
        pages += 1;
        titles.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["title"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/todos?limit=3&cursor={c}"),
            None => break,
        }
    }

    // Assert
    assert_eq!(pages, 3);
    assert_eq!(titles.len(), 7);
    let mut sorted = titles.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(titles, sorted, "newest first (jobs ran in order)");
}

#[tokio::test]
async fn invalid_input_gets_4xx_problem_json_and_is_never_a_500() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("val").await.unwrap();
    let id = app.create_todo_done(&user, "x").await;
    let raw =
        |method: reqwest::Method, path: &str, body: &'static str, content_type: &'static str| {
            app.api
                .http()
                .request(method, app.api.url(path))
                .bearer_auth(&user.token)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
    let cases: Vec<(&str, reqwest::Response, u16)> = vec![
        ("empty title", app.api.create_todo(&user, "   ").await, 400),
        (
            "long title",
            app.api.create_todo(&user, &"t".repeat(256)).await,
            400,
        ),
        (
            "malformed json",
            raw(
                reqwest::Method::POST,
                "/todos",
                "{\"title\":",
                "application/json",
            )
            .await
            .unwrap(),
            400,
        ),
        (
            "unknown field",
            raw(
                reqwest::Method::POST,
                "/todos",
                "{\"title\":\"a\",\"x\":1}",
                "application/json",
            )
            .await
            .unwrap(),
            400,
        ),
        (
            "wrong type",
            raw(
                reqwest::Method::POST,
                "/todos",
                "{\"title\":5}",
                "application/json",
            )
            .await
            .unwrap(),
            400,
        ),
        (
            "wrong content type",
            raw(reqwest::Method::POST, "/todos", "title=a", "text/plain")
                .await
                .unwrap(),
            415,
        ),
        (
            "empty patch",
            app.api.patch_todo(&user, &id, &json!({})).await,
            400,
        ),
        ("bad limit", app.api.get("/todos?limit=0", &user).await, 400),
        (
            "big limit",
            app.api.get("/todos?limit=201", &user).await,
            400,
        ),
        (
            "bad cursor",
            app.api.get("/todos?cursor=zzz", &user).await,
            400,
        ),
        ("bad id", app.api.get("/todos/not-a-uuid", &user).await, 404),
        (
            "body too large",
            app.api
                .post_json(
                    "/todos",
                    &json!({"title": "y".repeat(70_000)}),
                    Some(&user.token),
                )
                .await,
            413,
        ),
    ];

    // Assert
    for (name, resp, status) in cases {
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn sql_injection_strings_are_stored_verbatim() {
    let app = spawn_app().await;
    let user = app.api.user("bobby").await.unwrap();
    let evil = "Robert'); DROP TABLE todos;-- \" \\ %_";

    let id = app.create_todo_done(&user, evil).await;

    let got: Value = app
        .api
        .get(&format!("/todos/{id}"), &user)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["title"], evil);
    let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the table is still there"
    );
}

#[tokio::test]
async fn with_a_zero_cache_ttl_lists_come_from_postgres_and_the_cache_is_never_used() {
    // Arrange
    let app = spawn_app_with(Options {
        cache_ttl_seconds: 0,
        ..Options::default()
    })
    .await;
    let user = app.api.user("nocache").await.unwrap();
    app.create_todo_done(&user, "one").await;

    // Act
    let mut lists = Vec::new();
    for _ in 0..3 {
        let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
        lists.push(list["items"].as_array().unwrap().len());
    }
    let metrics = app.metrics().await;

    // Assert
    assert_eq!(lists, vec![1, 1, 1]);
    let cache_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("cache_operations_total{result=\"hit\"}")
                || l.starts_with("cache_operations_total{result=\"miss\"}")
        })
        .collect();
    assert!(
        cache_lines.iter().all(|l| l.ends_with(" 0")),
        "no cache lookups: {cache_lines:?}"
    );
}
