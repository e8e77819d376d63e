//! The admin listener's status page, in a real browser: headless Chromium loads `/` from a
//! gateway whose pool has a healthy and an ejected endpoint and which has just rejected a
//! config edit, runs the page's refresh script, and the test reads the DOM as the browser
//! left it; a screenshot goes to `test-artifacts/`.

use std::path::PathBuf;

use serde_json::Value;

use crate::browser;
use crate::config::{CircuitBreaker, GatewayConfig, HealthCheck, Pool, Route};
use crate::gateway;
use crate::schema::{schema_path, validate};
use crate::upstream::Upstream;
use crate::{assert_eventually, poll_until};

async fn status(url: &str) -> Value {
    reqwest::get(url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default()
}

/// The state the page shows for `address`, from the rendered DOM's row attributes.
fn shown_state(dom: &str, address: &str) -> Option<String> {
    let marker = format!("data-endpoint=\"{address}\"");
    let row_start = dom.find(&marker)?;
    let row = &dom[row_start..dom[row_start..].find("</tr>")? + row_start];
    let state = row.split("data-state=\"").nth(1)?;
    Some(state[..state.find('"')?].to_owned())
}

#[tokio::test]
async fn the_status_page_shows_a_healthy_and_an_ejected_endpoint_and_a_rejected_edit() {
    // Arrange: a pool of two, b answering 500s, one failure opening a breaker for a minute.
    let (a, b) = (Upstream::spawn("a").await, Upstream::spawn("b").await);
    b.set_failing(true);
    let config = GatewayConfig::new()
        .pool(
            "app",
            Pool::upstreams(&[&a, &b])
                .health_check(HealthCheck::tcp().interval("200ms"))
                .circuit_breaker(
                    CircuitBreaker::new()
                        .consecutive_failures(1)
                        .open_for("60s")
                        .max_ejected_percent(50),
                ),
        )
        .route(Route::prefix("/api").name("api").pool("app"));
    let gw = gateway::start(&config).await;
    gw.wait_ready().await;
    let client = reqwest::Client::new();
    let status_url = gw.admin_url("/status.json");

    // Act: traffic until b's breaker opens, then an edit with a mistake in it.
    assert_eventually!(
        {
            let _ = client.get(gw.url("/api/x")).send().await;
            let s = status(&status_url).await;
            s["pools"][0]["endpoints"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["breaker"] == "open"))
        },
        "b's breaker never opened: {}",
        status(&status_url).await
    );
    for _ in 0..5 {
        client.get(gw.url("/api/y")).send().await.unwrap();
    }
    gw.rewrite_raw(
        "pools:\n  app:\n    endpoints: [\"127.0.0.1:1\"]\n    balance: fastest\nroutes: []\n",
    );
    assert_eventually!(
        status(&status_url).await["config"]["reloads"][0]["result"] == "rejected",
        "the broken edit never showed as rejected: {}",
        status(&status_url).await
    );

    // Assert: the JSON has what the page needs, and its documented schema holds.
    let json = status(&status_url).await;
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("status.json");
    std::fs::write(&file, json.to_string()).unwrap();
    let errors = validate(
        &schema_path("status.schema.json"),
        std::slice::from_ref(&file),
    );
    assert_eq!(errors[&file], Vec::<String>::new(), "{json}");
    let route = &json["routes"][0];
    assert_eq!(route["name"], "api");
    assert_eq!(route["target"], "pool app");
    assert!(
        route["requests_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{route}"
    );
    let rejected = &json["config"]["reloads"][0]["errors"];
    assert!(rejected.to_string().contains("balance"), "{rejected}");

    // Assert: the page, as Chromium renders it, shows each endpoint with its state.
    let (healthy, ejected) = (a.addr.to_string(), b.addr.to_string());
    let mut dom = String::new();
    let shown = poll_until(std::time::Duration::from_secs(30), async || {
        dom = browser::rendered_dom_in(&gw.admin_url("/"), "status-page", (1400, 1100));
        shown_state(&dom, &healthy).as_deref() == Some("healthy")
            && shown_state(&dom, &ejected).as_deref() == Some("ejected")
    })
    .await;
    assert!(
        shown,
        "the rendered page does not show both endpoints' states:\n{dom}"
    );
    assert!(dom.contains("rejected"), "no rejected reload on the page");
    assert!(
        dom.contains(":4:5: pools.app.balance: unknown variant `fastest`"),
        "the rejected edit's error line (file, line, column, key) is not on the page"
    );
    assert!(dom.contains("pool app"), "no route target on the page");

    // The page is the server's HTML, kept to itself: scripts and styles from its own origin.
    let page = reqwest::get(gw.admin_url("/")).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );
    assert!(page.text().await.unwrap().contains("src=\"/status.js\""));
}
