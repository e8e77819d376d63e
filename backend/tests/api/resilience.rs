use std::time::Duration;

use serde_json::Value;
use tests::assert_eventually;
use tests::process::Process;

use crate::helpers::{create_database, spawn_app, spawn_app_with, Options, Postgres, RedisServer};

#[tokio::test]
async fn with_redis_down_reads_fall_back_and_writes_are_refused_until_it_returns() {
    // Arrange
    let mut redis = RedisServer::start();
    let app = spawn_app_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let user = app.api.user("rita").await.unwrap();
    app.create_todo_done(&user, "before the outage").await;

    // Act
    redis.stop();
    let read = app.api.get("/todos", &user).await;
    let write = app.api.create_todo(&user, "during the outage").await;
    let ready = app.api.get_anonymous("/readyz").await.status();

    // Assert
    assert_eq!(read.status(), 200);
    let list: Value = read.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(write.status(), 503);
    assert_eq!(ready, 503);
    let metrics = app.metrics().await;
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cache_operations_total{result=\"error\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        errors >= 1.0,
        "the failed cache read was not counted:\n{metrics}"
    );

    // Act 2: Redis comes back (empty); everything resumes by itself.
    redis.restart();
    assert_eventually!(
        within = Duration::from_secs(20),
        app.api.create_todo(&user, "after").await.status() == 202,
        "POST never recovered"
    );
    app.drain_jobs().await;
    let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn with_postgres_down_requests_get_503_and_recover_when_it_returns() {
    // Arrange
    let mut pg = Postgres::start(false);
    create_database(&pg.url("postgres"), "app").await;
    let app = spawn_app_with(Options {
        database_url: Some(pg.url("app")),
        ..Options::default()
    })
    .await;
    let user = app.api.user("paul").await.unwrap();
    let id = app.create_todo_done(&user, "kept").await;

    // Act
    pg.stop();
    let during = app.api.get(&format!("/todos/{id}"), &user).await;
    let ready = app.api.get_anonymous("/readyz").await.status();

    // Assert
    assert_eq!(during.status(), 503);
    assert_eq!(during.headers()["content-type"], "application/problem+json");
    let body: Value = during.json().await.unwrap();
    assert!(
        !body["detail"].as_str().unwrap().contains("sqlx"),
        "no internals: {body}"
    );
    assert_eq!(ready, 503);

    pg.restart();
    assert_eventually!(
        within = Duration::from_secs(20),
        app.api.get(&format!("/todos/{id}"), &user).await.status() == 200,
        "reads never recovered"
    );
}

#[tokio::test]
async fn concurrent_readers_never_see_a_list_older_than_a_finished_job() {
    // Arrange: workers run in the background and readers keep the cache hot.
    let app = spawn_app().await;
    let user = app.api.user("cora").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = backend::worker::spawn_workers(&app.state, &stop_rx);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, token, stop) = (
                app.api.http().clone(),
                app.api.url("/todos"),
                user.token.clone(),
                stop_rx.clone(),
            );
            tokio::spawn(async move {
                while !*stop.borrow() {
                    let _ = client.get(&url).bearer_auth(&token).send().await;
                }
            })
        })
        .collect();

    // Act + Assert
    for i in 0..20 {
        let job: Value = app
            .api
            .create_todo(&user, &format!("todo {i}"))
            .await
            .json()
            .await
            .unwrap();
        let url = job["status_url"].as_str().unwrap().to_owned();
        let mut status = Value::Null;
        assert_eventually!(
            within = Duration::from_secs(20),
            {
                status = app.api.get(&url, &user).await.json().await.unwrap();
                status["status"] == "done"
            },
            "round {i}: job never finished: {status}"
        );
        let todo_id = status["todo_id"].clone();
        let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
        let ids: Vec<&Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["id"])
            .collect();
        assert!(
            ids.contains(&&todo_id),
            "round {i}: finished todo missing from the list"
        );
    }
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    while workers.join_next().await.is_some() {}
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    // Arrange: 1,000 queued jobs and a separate worker process with a 1 s visibility timeout,
    // one worker taking batches of 10: a batch is almost always in flight, and the process
    // is far from done when the first batches are (batches of 64 and four workers drain the
    // lot in well under a second, faster than the kill below can land).
    let app = spawn_app_with(Options {
        visibility_timeout_seconds: 1,
        ..Options::default()
    })
    .await;
    let user = app.api.user("kim").await.unwrap();
    for chunk in 0..50 {
        let titles: Vec<String> = (0..20).map(|i| format!("job {}", chunk * 20 + i)).collect();
        let posts = titles.iter().map(|t| app.api.create_todo(&user, t));
        for resp in futures::future::join_all(posts).await {
            assert_eq!(resp.status(), 202);
        }
    }
    let s = &app.settings;
    let mut worker = Process::spawn(
        "worker",
        std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
            .arg("worker")
            .env("DATABASE_URL", &s.database_url)
            .env("REDIS_URL", &s.redis_url)
            .env("JWT_PRIVATE_KEY_FILE", &s.jwt_private_key_file)
            .env("REDIS_KEY_PREFIX", &s.redis_key_prefix)
            .env("JOB_VISIBILITY_TIMEOUT_SECONDS", "1")
            .env("WORKER_CONCURRENCY", "1")
            .env("JOB_BATCH_SIZE", "10")
            .env("INSTANCE_ID", "doomed")
            .env("RUST_LOG", "warn"),
        None,
    )
    .unwrap();
    let done = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE status = 'done'")
            .fetch_one(&app.state.db)
            .await
            .unwrap()
    };

    // Act: kill it once it has finished a few batches, then let this process's workers finish.
    assert_eventually!(
        within = Duration::from_secs(20),
        done().await >= 20,
        "the worker process made no progress"
    );
    worker.kill();
    let killed_at = done().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = backend::worker::spawn_workers(&app.state, &stop_rx);
    assert_eventually!(
        within = Duration::from_secs(120),
        done().await >= 1000,
        "stuck at {} done jobs",
        done().await
    );
    let _ = stop_tx.send(true);
    while workers.join_next().await.is_some() {}

    // Assert
    assert!(
        killed_at < 1000,
        "the kill happened before the queue was drained ({killed_at} done)"
    );
    let todos: i64 = sqlx::query_scalar("SELECT count(*) FROM todos")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT job_id) FROM todos")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!((todos, distinct), (1000, 1000));
}

#[tokio::test]
async fn readiness_needs_both_dependencies_and_spawn_app_isolates_tests() {
    let (a, b) = (spawn_app().await, spawn_app().await);
    let (ua, ub) = (
        a.api.user("same-name").await.unwrap(),
        b.api.user("same-name").await.unwrap(),
    );

    a.create_todo_done(&ua, "only in a").await;

    let list_b: Value = b.api.get("/todos", &ub).await.json().await.unwrap();
    assert_eq!(list_b["items"].as_array().unwrap().len(), 0);
}
