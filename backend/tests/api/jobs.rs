use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn post_todos_is_202_with_a_job_that_becomes_done() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("quinn").await.unwrap();

    // Act
    let resp = app.api.create_todo(&user, "via the queue").await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let before: Value = app.api.get(&location, &user).await.json().await.unwrap();
    let handled = app.drain_jobs().await;
    let after: Value = app.api.get(&location, &user).await.json().await.unwrap();

    // Assert
    assert_eq!(body["status_url"], location);
    assert_eq!(before["status"], "queued");
    assert_eq!(handled, 1);
    assert_eq!(after["status"], "done");
    assert!(after["todo_id"].is_string());
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_creates_one_todo() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("ike").await.unwrap();
    let post = || {
        app.api
            .http()
            .post(app.api.url("/todos"))
            .bearer_auth(&user.token)
            .header("idempotency-key", "k-123")
            .json(&json!({"title": "once"}))
            .send()
    };

    // Act
    let first: Value = post().await.unwrap().json().await.unwrap();
    let second: Value = post().await.unwrap().json().await.unwrap();
    app.drain_jobs().await;
    let third: Value = post().await.unwrap().json().await.unwrap();
    app.drain_jobs().await;

    // Assert
    assert_eq!(first["job_id"], second["job_id"]);
    assert_eq!(first["job_id"], third["job_id"]);
    let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_job_delivered_twice_still_creates_one_todo() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("dup").await.unwrap();
    let body: Value = app
        .api
        .create_todo(&user, "twice")
        .await
        .json()
        .await
        .unwrap();
    let job_id = uuid::Uuid::parse_str(body["job_id"].as_str().unwrap()).unwrap();

    // Act: run the step twice, as a redelivery would.
    let first = backend::worker::try_execute_task(&app.state, job_id).await;
    let second = backend::worker::try_execute_task(&app.state, job_id).await;

    // Assert
    assert_eq!(first, backend::worker::ExecutionOutcome::Done);
    assert_eq!(second, backend::worker::ExecutionOutcome::Skipped);
    let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_batch_runs_good_jobs_together_and_fails_a_bad_one_alone() {
    // Arrange: three jobs, the middle one refused by the database, and the first listed
    // twice (as a redelivery beside its original would be).
    let app = spawn_app().await;
    let user = app.api.user("batch").await.unwrap();
    sqlx::query("ALTER TABLE todos ADD CONSTRAINT no_poison CHECK (title <> 'poison')")
        .execute(&app.state.db)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for title in ["first", "poison", "third"] {
        let body: Value = app
            .api
            .create_todo(&user, title)
            .await
            .json()
            .await
            .unwrap();
        ids.push(uuid::Uuid::parse_str(body["job_id"].as_str().unwrap()).unwrap());
    }
    let listed = [ids[0], ids[1], ids[2], ids[0]];

    // Act
    let outcomes = backend::worker::try_execute_tasks(&app.state, &listed).await;

    // Assert: the good ones are done, the bad one will be retried with one attempt counted.
    use backend::worker::ExecutionOutcome::{Done, WillRetry};
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(outcomes[&ids[0]], Done);
    assert_eq!(outcomes[&ids[2]], Done);
    assert!(matches!(outcomes[&ids[1]], WillRetry(_)), "{outcomes:?}");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1")
        .bind(ids[1])
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
    let mut titles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    titles.sort_unstable();
    assert_eq!(titles, ["first", "third"]);
    for (id, status) in [(ids[0], "done"), (ids[1], "running"), (ids[2], "done")] {
        let got: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
        assert_eq!(got, status, "job {id}");
    }
}

#[tokio::test]
async fn a_job_failing_every_attempt_is_dead_lettered_with_its_error() {
    // Arrange: make this test database refuse one title, so the insert fails every time.
    let app = spawn_app().await;
    let user = app.api.user("poison").await.unwrap();
    sqlx::query("ALTER TABLE todos ADD CONSTRAINT no_poison CHECK (title <> 'poison')")
        .execute(&app.state.db)
        .await
        .unwrap();
    let body: Value = app
        .api
        .create_todo(&user, "poison")
        .await
        .json()
        .await
        .unwrap();
    let job_id = uuid::Uuid::parse_str(body["job_id"].as_str().unwrap()).unwrap();

    // Act: JOB_MAX_ATTEMPTS is 3 in the tests.
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(backend::worker::try_execute_task(&app.state, job_id).await);
    }

    // Assert
    use backend::worker::ExecutionOutcome::{DeadLettered, WillRetry};
    assert!(
        matches!(outcomes[0], WillRetry(_)) && matches!(outcomes[1], WillRetry(_)),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], DeadLettered(_)), "{outcomes:?}");
    let status: Value = app
        .api
        .get(body["status_url"].as_str().unwrap(), &user)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "failed");
    assert_eq!(
        status["error"],
        backend::worker::FAILED_JOB_MESSAGE,
        "clients never read database error text"
    );
    assert_eq!(app.stream_len(&app.settings.dead_letter_stream()).await, 1);
}

#[tokio::test]
async fn a_keyed_job_that_was_never_enqueued_is_swept_into_the_queue() {
    // Arrange: a keyed job as a replica that died between commit and enqueue leaves it (its
    // stream entry gone, no enqueue recorded, older than the visibility timeout), plus a
    // young one the sweep must leave to its request.
    let app = spawn_app().await;
    let user = app.api.user("orphan").await.unwrap();
    let post = |key: &'static str| {
        app.api
            .http()
            .post(app.api.url("/todos"))
            .bearer_auth(&user.token)
            .header("idempotency-key", key)
            .json(&json!({ "title": key }))
            .send()
    };
    let old: Value = post("old").await.unwrap().json().await.unwrap();
    post("young").await.unwrap();
    let stream = app.settings.stream();
    let mut redis = app.redis_connection().await;
    let _: u64 = redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut redis)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET enqueued_at = NULL")
        .execute(&app.state.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE jobs SET created_at = now() - interval '1 hour' WHERE idempotency_key = 'old'",
    )
    .execute(&app.state.db)
    .await
    .unwrap();

    // Act
    backend::worker::enqueue_orphans(&app.state).await;
    let queued = app.stream_len(&stream).await;
    backend::worker::enqueue_orphans(&app.state).await;
    let handled = app.drain_jobs().await;

    // Assert: the old one was enqueued once and ran; the young one was left alone.
    assert_eq!(queued, 1);
    assert_eq!(handled, 1, "a second sweep enqueued nothing more");
    let status: Value = app
        .api
        .get(old["status_url"].as_str().unwrap(), &user)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "done");
}
