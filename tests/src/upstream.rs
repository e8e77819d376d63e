//! Small hyper upstream servers that say who they are.
//!
//! Every response carries `x-upstream: <name>`; the body echoes the method, path and request
//! headers as JSON, so tests can see exactly what the gateway forwarded. Behaviour is
//! switchable at run time: the health endpoint can fail, every answer can become a 500 (or
//! another status),
//! `/slow/<ms>` answers late and `/shed` answers 503 with `Retry-After` (load shedding). The server counts accepted connections, which is how tests
//! measure upstream keep-alive reuse. A request header `x-reply-<name>: <value>` makes the
//! answer carry `<name>: <value>` (replacing its own), so tests can choose the upstream's
//! response headers; `/big/<n>` answers with `n` bytes of repetitive JSON text instead of
//! the echo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Live knobs and counters of one upstream.
#[derive(Debug, Default)]
pub struct UpstreamState {
    /// `/healthz` answers 503 while false.
    pub unhealthy: AtomicBool,
    /// Every other path answers 500 (or `fail_status`) while true.
    pub failing: AtomicBool,
    /// The status of a failing answer; 0 means 500.
    pub fail_status: AtomicU16,
    /// Requests being answered now, and the most there ever were at once.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// TCP connections accepted so far.
    pub connections: AtomicUsize,
    /// Requests answered so far, health checks excluded.
    pub requests: AtomicUsize,
    /// The largest request body received complete.
    pub largest_body: AtomicUsize,
    /// Requests whose body broke off before its end.
    pub broken_bodies: AtomicUsize,
}

/// A running upstream; stopped (all connections dropped, like a killed process) on drop.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Start an upstream on a free port of 127.0.0.1.
    pub async fn spawn(name: &str) -> Self {
        Self::spawn_on(name, "127.0.0.1:0".parse().expect("literal address")).await
    }

    /// Start an upstream on `addr` (port 0 picks a free one).
    pub async fn spawn_on(name: &str, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(UpstreamState::default());
        let task = tokio::spawn(serve(listener, name.to_owned(), Arc::clone(&state)));
        Self {
            name: name.to_owned(),
            addr,
            state,
            task: Some(task),
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.state.unhealthy.store(!healthy, SeqCst);
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, SeqCst);
    }

    /// Answer every request (health checks aside) with `status`.
    pub fn fail_with(&self, status: u16) {
        self.state.fail_status.store(status, SeqCst);
        self.state.failing.store(true, SeqCst);
    }

    /// The most requests this upstream was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(SeqCst)
    }

    /// Stop abruptly: the listener closes and every open connection is dropped mid-flight.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accept loop. Connection tasks live in a `JoinSet` owned by this task, so aborting the
/// task drops every connection at once.
pub async fn serve(listener: TcpListener, name: String, state: Arc<UpstreamState>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                state.connections.fetch_add(1, SeqCst);
                let name = name.clone();
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, name.clone(), Arc::clone(&state)));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    name: String,
    state: Arc<UpstreamState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        let status = if state.unhealthy.load(SeqCst) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        return Ok(reply(status, &name, Bytes::from_static(b"health\n")));
    }
    state.requests.fetch_add(1, SeqCst);
    let now = state.in_flight.fetch_add(1, SeqCst) + 1;
    state.max_in_flight.fetch_max(now, SeqCst);
    let answer = answer(req, &path, &name, &state).await;
    state.in_flight.fetch_sub(1, SeqCst);
    Ok(answer)
}

async fn answer(
    req: Request<Incoming>,
    path: &str,
    name: &str,
    state: &UpstreamState,
) -> Response<Full<Bytes>> {
    if path == "/shed" {
        // A deliberate load-shedding answer: 503 with Retry-After.
        let mut resp = reply(StatusCode::SERVICE_UNAVAILABLE, name, Bytes::new());
        resp.headers_mut()
            .insert("retry-after", "1".parse().expect("static"));
        return resp;
    }
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = if state.failing.load(SeqCst) {
        StatusCode::from_u16(state.fail_status.load(SeqCst))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        StatusCode::OK
    };
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::from(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let body_len = match req.into_body().collect().await {
        Ok(body) => {
            let len = body.to_bytes().len();
            state.largest_body.fetch_max(len, SeqCst);
            len
        }
        Err(_) => {
            state.broken_bodies.fetch_add(1, SeqCst);
            0
        }
    };
    let asked: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("x-reply-")?.to_owned(),
                v.as_str()?.to_owned(),
            ))
        })
        .collect();
    let body = match path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => Bytes::from(big_body(n)),
        None => Bytes::from(
            serde_json::json!({
                "upstream": name,
                "method": method,
                "target": target,
                "headers": headers,
                "body_len": body_len,
            })
            .to_string(),
        ),
    };
    let mut resp = reply(status, name, body);
    for (k, v) in asked {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// `n` bytes of text that compresses the way API responses do.
pub fn big_body(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!("{{\"id\":{i},\"title\":\"item number {i}\",\"done\":false}},").as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

fn reply(status: StatusCode, name: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    if let Ok(v) = name.parse() {
        resp.headers_mut().insert("x-upstream", v);
    }
    resp
}
