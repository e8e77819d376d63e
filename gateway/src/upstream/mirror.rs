//! `routes[].mirror`: copies of sampled requests sent to a shadow pool, fire and forget.
//!
//! A copy leaves after the client's answer (from the `logging` phase), in its own task, on
//! its own connections (a reqwest client per mirror, plain HTTP), so the shadow can neither
//! delay nor fail the real request. At most `max_in_flight` copies run at once; beyond that
//! a copy is dropped and counted. The shadow pool's endpoints are chosen and judged by its
//! breakers like any other traffic.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;
use tokio::sync::Semaphore;

use super::Pool;
use crate::config::Mirror as Settings;
use crate::metrics;

pub(crate) struct Mirror {
    pub(crate) settings: Settings,
    pool: Arc<Pool>,
    client: reqwest::Client,
    places: Arc<Semaphore>,
    /// The route's name, for the metric.
    route: String,
}

/// Headers the copy does not take from the upstream request: the client sets its own
/// framing, and the connection is its own.
const NOT_COPIED: [http::HeaderName; 4] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
    http::header::EXPECT,
];

impl Mirror {
    pub(crate) fn new(settings: Settings, pool: Arc<Pool>, route: String) -> Self {
        let t = &pool.config.timeouts;
        let client = reqwest::Client::builder()
            .connect_timeout(t.connect)
            .timeout(t.connect + t.read)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            places: Arc::new(Semaphore::new(settings.max_in_flight)),
            settings,
            pool,
            client,
            route,
        }
    }

    /// Whether this request is one of the sampled share.
    pub(crate) fn sampled(&self, unit: f64) -> bool {
        unit * 100.0 < self.settings.percent
    }

    fn count(&self, result: &str) {
        metrics::MIRROR_REQUESTS
            .with_label_values(&[&self.route, result])
            .inc();
    }

    /// Count a sampled request that is not copied because its body is too large.
    pub(crate) fn skipped(&self) {
        self.count("too_large");
    }

    /// Send a copy of `req` with `body` to the shadow pool, without waiting for it.
    pub(crate) fn send(self: &Arc<Self>, req: RequestHeader, body: Bytes) {
        let Ok(place) = Arc::clone(&self.places).try_acquire_owned() else {
            self.count("dropped");
            return;
        };
        let mirror = Arc::clone(self);
        let in_flight = metrics::MIRROR_IN_FLIGHT.with_label_values(&[&self.route]);
        in_flight.inc();
        tokio::spawn(async move {
            let _place = place;
            let result = mirror.copy(req, body).await;
            mirror.count(result);
            in_flight.dec();
        });
    }

    async fn copy(&self, req: RequestHeader, body: Bytes) -> &'static str {
        let Ok(chosen) = self.pool.select(b"", &[]) else {
            return "failed";
        };
        let target = req
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let url = format!("http://{}{target}", chosen.addr);
        let mut headers = req.headers.clone();
        for name in &NOT_COPIED {
            headers.remove(name);
        }
        let sent = self
            .client
            .request(req.method.clone(), url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        // The answer is read to its end so the connection can be reused, and judged like
        // any answer from the pool.
        let ok = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let _ = resp.bytes().await;
                !self.pool.is_failure_status(status)
            }
            Err(_) => false,
        };
        drop((chosen.probe, chosen.slot));
        if ok {
            self.pool.report_success(chosen.addr);
            "sent"
        } else {
            self.pool.report_failure(chosen.addr);
            "failed"
        }
    }
}
