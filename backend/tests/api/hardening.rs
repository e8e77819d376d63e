//! Regressions of the attacks and failures the edge audit found (issue 9): each test sends what
//! an attacker or a careless client would and checks the backend answers with a 4xx and keeps
//! its invariants.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn non_canonical_paths_are_404_so_no_limit_can_be_bypassed_by_spelling() {
    // Arrange: a real account, so a path that reached the password check would answer 200.
    let app = spawn_app().await;
    app.api.register("alice", "correct horse").await;
    let creds = json!({"username": "alice", "password": "correct horse"});
    let spellings = [
        "/auth/login/",
        "//auth/login",
        "/auth//login",
        "/auth/./login",
        "/x/../auth/login",
        "/auth/%6Cogin",
        "/%61uth/login",
    ];

    // Act
    let mut statuses = Vec::new();
    for path in spellings {
        statuses.push((path, app.raw_post(path, &creds).await));
    }
    let canonical = app.raw_post("/auth/login", &creds).await;

    // Assert
    for (path, status) in statuses {
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(canonical, 200);
}

#[tokio::test]
async fn control_characters_in_text_inputs_are_400_with_a_clear_detail() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("carol").await.unwrap();
    let id = app.create_todo_done(&user, "milk").await;

    // Act
    let responses = [
        (
            "login username",
            app.api.login("car\0ol", "correct horse battery").await,
        ),
        (
            "login password",
            app.api.login("carol", "correct\0horse").await,
        ),
        (
            "register password",
            app.api.register("dave", "correct\0horse").await,
        ),
        ("new title", app.api.create_todo(&user, "mi\0lk").await),
        (
            "new title, newline",
            app.api.create_todo(&user, "milk\nand eggs").await,
        ),
        (
            "patched title",
            app.api
                .patch_todo(&user, &id, &json!({"title": "a\u{7}b"}))
                .await,
        ),
    ];

    // Assert
    for (what, resp) in responses {
        assert_eq!(resp.status(), 400, "{what}");
        let body: Value = resp.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("control character"), "{what}: {detail}");
    }
}

#[tokio::test]
async fn a_cursor_outside_the_representable_time_range_is_400() {
    // Arrange: a well-formed cursor dated before 4713 BC, which PostgreSQL cannot store.
    let app = spawn_app().await;
    let user = app.api.user("erin").await.unwrap();
    let raw = format!("{}.{}", -300_000_000_000_000_000_i64, uuid::Uuid::now_v7());
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);

    // Act
    let resp = app.api.get(&format!("/todos?cursor={cursor}"), &user).await;

    // Assert
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn postgres_data_exceptions_are_client_errors() {
    // Arrange: a real SQLSTATE 22 error from the test database (a NUL byte in text).
    let app = spawn_app().await;
    let error = sqlx::query("SELECT $1::text")
        .bind("a\0b")
        .execute(&app.state.db)
        .await
        .unwrap_err();

    // Act
    let mapped = backend::error::db_error(error);

    // Assert
    assert_eq!(mapped.status(), 400);
}

#[tokio::test]
async fn made_up_methods_share_one_metric_label() {
    // Arrange
    let app = spawn_app().await;

    // Act
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        app.api
            .http()
            .request(method, app.api.url("/todos"))
            .send()
            .await
            .unwrap();
    }

    // Assert
    let metrics = app.metrics().await;
    let methods: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.len() <= 8, "{methods:?}");
    assert!(methods.contains("OTHER"), "{methods:?}");
}

#[tokio::test]
async fn a_registration_flood_for_a_taken_name_hashes_no_password() {
    // Arrange
    let app = spawn_app().await;
    assert_eq!(
        app.api.register("taken", "correct horse").await.status(),
        201
    );

    // Act: 300 registrations of the same name, 30 at a time.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let batch = (0..30).map(|_| app.api.register("taken", "another password"));
        for resp in futures::future::join_all(batch).await {
            statuses.push(resp.status().as_u16());
        }
    }

    // Assert
    assert!(statuses.iter().all(|s| *s == 409), "{statuses:?}");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "password_hashes_total{op=\"hash\",outcome=\"done\"} 1"),
        "only the first registration hashed:\n{metrics}"
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_422_and_a_replay_enqueues_nothing() {
    // Arrange
    let app = spawn_app().await;
    let user = app.api.user("ike").await.unwrap();
    let post = |title: &'static str| {
        app.api
            .http()
            .post(app.api.url("/todos"))
            .bearer_auth(&user.token)
            .header("idempotency-key", "k-1")
            .json(&json!({ "title": title }))
            .send()
    };

    // Act
    let first = post("milk").await.unwrap();
    let replay = post("milk").await.unwrap();
    let other = post("eggs").await.unwrap();

    // Assert
    assert_eq!(
        (first.status().as_u16(), replay.status().as_u16()),
        (202, 202)
    );
    let (a, b): (Value, Value) = (first.json().await.unwrap(), replay.json().await.unwrap());
    assert_eq!(a["job_id"], b["job_id"]);
    assert_eq!(other.status(), 422);
    assert_eq!(other.headers()["content-type"], "application/problem+json");
    assert_eq!(
        app.stream_len(&app.settings.stream()).await,
        1,
        "the replay did not enqueue the job again"
    );
}

#[tokio::test]
async fn acknowledged_entries_are_trimmed_and_pending_ones_kept() {
    // Arrange: 5 jobs handled and acknowledged, then 2 delivered to nobody yet.
    let app = spawn_app().await;
    let user = app.api.user("trim").await.unwrap();
    for i in 0..5 {
        app.api.create_todo(&user, &format!("done {i}")).await;
    }
    assert_eq!(app.drain_jobs().await, 5);
    for i in 0..2 {
        app.api.create_todo(&user, &format!("queued {i}")).await;
    }
    let stream = app.settings.stream();
    assert_eq!(app.stream_len(&stream).await, 7);

    // Act
    let trimmed = app.state.queue.trim_acknowledged().await.unwrap();

    // Assert: the acknowledged ones are gone (the last delivered one is kept as the
    // group's marker), the undelivered ones are still there and still run.
    assert_eq!(trimmed, 4);
    assert_eq!(app.stream_len(&stream).await, 3);
    assert_eq!(app.drain_jobs().await, 2);
    let list: Value = app.api.get("/todos", &user).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn the_dead_letter_stream_is_capped() {
    // Arrange: a cap of 3.
    let app = spawn_app_with(Options {
        dead_letter_max_len: 3,
        ..Options::default()
    })
    .await;

    // Act: 250 jobs dead-lettered (XADD trims to about the cap, in whole macro nodes).
    for i in 0..250 {
        app.state
            .queue
            .dead_letter(uuid::Uuid::now_v7(), &format!("failure {i}"))
            .await
            .unwrap();
    }

    // Assert: Redis' approximate trimming keeps at most one radix node (100 entries)
    // beyond the cap.
    let dead = app.stream_len(&app.settings.dead_letter_stream()).await;
    assert!(dead <= 103, "{dead} dead letters kept");
}

#[tokio::test]
async fn a_client_that_trickles_its_header_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // Arrange
    let app = spawn_app_with(Options {
        header_read_timeout_seconds: 1,
        ..Options::default()
    })
    .await;
    let addr = app.api.url("").trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();

    // Act: half a request header, then nothing.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(tests::patience(), conn.read_to_end(&mut buf)).await;

    // Assert
    assert!(
        closed.is_ok(),
        "the backend kept a trickling client forever"
    );
}

#[tokio::test]
async fn saturated_hashing_answers_503_with_retry_after_at_once() {
    // Arrange: one hash at a time, so a burst overflows the short queue (4 waiting).
    let app = spawn_app_with(Options {
        password_hash_concurrency: Some(1),
        ..Options::default()
    })
    .await;
    app.api.register("hasher", "correct horse").await;

    // Act: 40 logins at once.
    let logins = (0..40).map(|_| app.api.login("hasher", "correct horse"));
    let responses = futures::future::join_all(logins).await;

    // Assert: some were refused (fast, with Retry-After), none failed, the rest logged in.
    let mut refused = 0;
    for resp in responses {
        match resp.status().as_u16() {
            200 => {}
            503 => {
                refused += 1;
                assert_eq!(resp.headers()["retry-after"], "1");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "the queue is bounded");
    assert!(app
        .metrics()
        .await
        .contains("password_hashes_total{op=\"verify\",outcome=\"busy\"}"));
}

#[tokio::test]
async fn logins_and_reads_keep_working_during_a_registration_flood() {
    // Arrange: two hashing slots (registrations may take one of them).
    let app = spawn_app_with(Options {
        password_hash_concurrency: Some(2),
        ..Options::default()
    })
    .await;
    let user = app.api.user("steady").await.unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);

    // Act: 16 clients register fresh names back to back while one user logs in and reads.
    let flood = async {
        let clients = (0..16).map(|c| {
            let stop = &stop;
            let app = &app;
            async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    app.api
                        .register(&format!("flood{c}x{n}"), "correct horse")
                        .await;
                    n += 1;
                }
            }
        });
        futures::future::join_all(clients).await;
    };
    let steady = async {
        let mut statuses = Vec::new();
        for _ in 0..10 {
            let login = app.api.login("steady", "correct horse battery").await;
            statuses.push(("login", login.status().as_u16()));
            let read = app.api.get("/todos", &user).await;
            statuses.push(("read", read.status().as_u16()));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        statuses
    };
    let ((), statuses) = tokio::join!(flood, steady);

    // Assert
    for (what, status) in statuses {
        assert_eq!(status, 200, "{what} during the flood");
    }
}
