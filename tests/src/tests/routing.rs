use super::get;
use crate::config::{GatewayConfig, Pool, Respond, Route};
use crate::gateway;
use crate::upstream::Upstream;

#[tokio::test]
async fn longest_prefix_then_exact_route_wins_and_strip_prefix_rewrites_the_path() {
    // Arrange
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&a]))
            .pool("b", Pool::upstreams(&[&b]))
            .route(Route::prefix("/").pool("a"))
            .route(Route::prefix("/api").pool("a"))
            .route(Route::prefix("/api/v2").pool("b").strip_prefix())
            .route(Route::path("/api/v2/fixed").respond(Respond::status(418).body("teapot"))),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let api = get(&client, &gw.url("/api/users")).await;
    let v2 = get(&client, &gw.url("/api/v2/users?x=1")).await;
    let fixed = get(&client, &gw.url("/api/v2/fixed")).await;
    let boundary = get(&client, &gw.url("/api/v2x")).await;

    // Assert
    assert_eq!((api.0, api.1.as_deref()), (200, Some("a")));
    assert_eq!((v2.0, v2.1.as_deref()), (200, Some("b")));
    let echoed: serde_json::Value = serde_json::from_str(&v2.2).unwrap();
    assert_eq!(
        echoed["target"], "/users?x=1",
        "prefix stripped, query kept"
    );
    assert_eq!((fixed.0, fixed.2.as_str()), (418, "teapot"));
    assert_eq!(
        boundary.1.as_deref(),
        Some("a"),
        "/api/v2x is not under /api/v2"
    );
}

#[tokio::test]
async fn no_route_is_a_404_problem_json_with_the_request_id() {
    // Arrange
    let a = Upstream::spawn("a").await;
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&a]))
            .route(Route::prefix("/api").pool("a")),
    )
    .await;

    // Act
    let resp = reqwest::Client::new()
        .get(gw.url("/nowhere"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["request_id"], "req-42");
    assert_eq!(a.requests(), 0);
}

#[tokio::test]
async fn method_and_host_restricted_routes_only_take_their_requests() {
    // Arrange
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    let gw = gateway::start(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&a]))
            .pool("b", Pool::upstreams(&[&b]))
            .route(Route::prefix("/x").pool("a"))
            .route(Route::prefix("/x").methods(&["POST"]).pool("b"))
            .route(Route::prefix("/x").host("special.test").pool("b")),
    )
    .await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();

    // Act
    let get_plain = client.get(gw.url("/x")).send().await.unwrap();
    let post = client.post(gw.url("/x")).body("hi").send().await.unwrap();
    let host = client
        .get(gw.url("/x"))
        .header("host", "Special.Test:1234")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(get_plain.headers()["x-upstream"], "a");
    assert_eq!(post.headers()["x-upstream"], "b");
    assert_eq!(host.headers()["x-upstream"], "b");
}
