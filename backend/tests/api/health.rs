use crate::helpers::spawn_app;

#[tokio::test]
async fn health_ready_and_metrics_answer_with_the_instance_name() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let health = app.api.get_anonymous("/healthz").await;
    let ready = app.api.get_anonymous("/readyz").await;
    let metrics = app.api.get_anonymous("/metrics").await;

    // Assert
    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.headers()["x-instance"].to_str().unwrap(),
        app.settings.instance_id.as_deref().unwrap()
    );
    let text = metrics.text().await.unwrap();
    for name in [
        "http_requests_total",
        "db_pool_connections",
        "job_stream_entries",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_as_problem_json() {
    let app = spawn_app().await;

    let missing = app.api.get_anonymous("/nope").await;
    let wrong = app
        .api
        .http()
        .put(app.api.url("/todos"))
        .send()
        .await
        .unwrap();

    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(wrong.status(), 405);
}
