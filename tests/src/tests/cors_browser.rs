//! CORS in a real browser: headless Chromium loads a page from one origin that `fetch`es the
//! API through the gateway with credentials and a JSON body (so the browser sends a
//! preflight first). The allowed origin reads the answer; another origin is blocked by the
//! browser itself.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::json;

use super::metric_value;
use crate::browser;
use crate::config::{GatewayConfig, Pool, Route};
use crate::gateway;
use crate::upstream::Upstream;

/// The page: one credentialed, preflighted `fetch` to `api`, its outcome written into
/// `#out` (`allowed <status> <method echoed by the upstream> <exposed request id>` or
/// `blocked <error name>`).
fn page(api: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>CORS check</title></head>
<body style="font: 20px sans-serif">
<h1>fetch {api}</h1>
<pre id="out">pending</pre>
<script>
fetch("{api}", {{
  method: "POST",
  credentials: "include",
  headers: {{ "Content-Type": "application/json", "Authorization": "Bearer page-token" }},
  body: JSON.stringify({{ title: "from the browser" }}),
}})
  .then(r => r.json().then(j => "allowed " + r.status + " " + j.method + " " + (r.headers.get("x-request-id") ? "request-id-visible" : "request-id-hidden")))
  .catch(e => "blocked " + e.name)
  .then(text => {{ document.getElementById("out").textContent = text; }});
</script>
</body></html>"#
    )
}

/// Serve `html` at every path on a free port of 127.0.0.1; the origin is
/// `http://127.0.0.1:<port>`.
async fn serve_page(html: String) -> std::net::SocketAddr {
    let html = Bytes::from(html);
    crate::serve::spawn(move |_req| {
        let html = html.clone();
        async move {
            let mut resp = Response::new(Full::new(html));
            resp.headers_mut().insert(
                "content-type",
                "text/html; charset=utf-8".parse().expect("static"),
            );
            resp
        }
    })
    .await
}

/// The text of `#out` in a dumped DOM.
fn outcome(dom: &str) -> &str {
    let start = dom
        .find(r#"<pre id="out">"#)
        .expect("the page's #out element")
        + 14;
    let end = dom[start..].find("</pre>").expect("end of #out") + start;
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_reads_the_api_from_an_allowed_origin_and_is_blocked_from_another() {
    // Arrange: the pages are served before the gateway starts, so their origins can go into
    // its config.
    let up = Upstream::spawn("api").await;
    let gw_http = std::net::SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
    let api = format!("http://{gw_http}/api/items");
    let allowed_page = serve_page(page(&api)).await;
    let foreign_page = serve_page(page(&api)).await;
    let gw = gateway::start_at(
        &GatewayConfig::new()
            .pool("a", Pool::upstreams(&[&up]))
            .route(
                Route::prefix("/api")
                    .name("api")
                    .pool("a")
                    .methods(&["GET", "POST"])
                    .policy(
                        "cors",
                        json!({
                            "allow_origins": [format!("http://{allowed_page}")],
                            "allow_methods": ["GET", "POST"],
                            "allow_headers": ["Content-Type", "Authorization"],
                            "expose_headers": ["X-Request-Id"],
                            "allow_credentials": true
                        }),
                    ),
            ),
        gw_http,
    )
    .await;
    gw.wait_ready().await;

    // Act: each page is loaded twice (DOM, then screenshot), each time in a new browser.
    let allowed_url = format!("http://{allowed_page}/");
    let foreign_url = format!("http://{foreign_page}/");
    let (allowed_dom, foreign_dom) = tokio::task::spawn_blocking(move || {
        (
            browser::rendered_dom(&allowed_url, "cors-allowed-origin"),
            browser::rendered_dom(&foreign_url, "cors-foreign-origin"),
        )
    })
    .await
    .unwrap();

    // Assert
    assert_eq!(
        outcome(&allowed_dom),
        "allowed 200 POST request-id-visible",
        "the allowed origin reads the answer and the exposed header"
    );
    assert_eq!(
        outcome(&foreign_dom),
        "blocked TypeError",
        "the browser refuses the other origin"
    );
    assert_eq!(
        up.requests(),
        2,
        "only the allowed page's POSTs reach the upstream; the other origin's preflight fails"
    );
    let preflights = r#"gateway_edge_actions_total{action="cors_preflight",route="api"}"#;
    assert_eq!(metric_value(&gw, preflights).await, Some(4.0));
}
