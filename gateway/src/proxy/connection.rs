//! Client connections: a cap on how many are open, an idle deadline before each request and
//! a deadline for each request header, around Pingora's HTTP proxy.
//!
//! Pingora bounds each single read of a request header (60 s) but not the header as a
//! whole, so a client sending one byte every 50 s holds a connection forever, and nothing
//! caps connections: a few thousand such clients (slowloris) exhaust file descriptors. This
//! `ServerApp` runs Pingora's own HTTP/1 keep-alive loop with three additions:
//! - a connection past `limits.max_connections`, or past
//!   `limits.max_connections_per_client` from one client address, is closed at once;
//! - before each request, the first byte must come within `limits.idle_timeout`;
//! - from that byte, the header must be complete within `limits.header_timeout`, which the
//!   request phases signal through [`header_received`]; otherwise the connection is closed.
//!
//! The limits are read from the live runtime, so a reload changes them for new connections
//! (and for the next request of open ones). HTTP/2 connections (TLS with ALPN `h2`) keep
//! Pingora's own handling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Peek, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;

use super::{Gateway, Runtime};
use crate::metrics;
use crate::tls::Peekable;

tokio::task_local! {
    /// Set by the request phases once the current request's header has been read.
    static HEADER_READ: Arc<AtomicBool>;
}

/// Tell the connection the current request's header is complete (its deadline no longer
/// applies). A no-op outside an HTTP/1 connection task.
pub(crate) fn header_received() {
    let _ = HEADER_READ.try_with(|done| done.store(true, Ordering::Relaxed));
}

/// A public listener's application: connection limits (and, on HTTPS, the TLS handshake)
/// around the proxy. The HTTP and HTTPS listeners share one count of open connections.
pub(crate) struct Connections {
    shared: Arc<Shared>,
    /// Whether this is the HTTPS listener: connections hand-shake TLS first.
    tls: bool,
}

struct Shared {
    proxy: Arc<HttpProxy<Gateway>>,
    /// The live config's `limits:`.
    runtime: Arc<ArcSwap<Runtime>>,
    /// Client connections open now.
    open: AtomicUsize,
    /// Client connections open now per client address (kept only while a per-client cap
    /// is configured), so one client cannot take every slot of `max_connections`.
    per_client: PerClient,
}

const SHARDS: usize = 16;

/// Open connections per client key, sharded to keep lock hold times short.
struct PerClient {
    shards: Vec<Mutex<HashMap<String, usize>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl PerClient {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, usize>> {
        use std::hash::BuildHasher as _;
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// Count one more connection of `key`; returns how many it has open now.
    fn enter(&self, key: &str) -> usize {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    fn leave(&self, key: &str) {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                map.remove(key);
            }
        }
    }
}

/// Counts one open connection of a client until dropped.
struct ClientSlot<'a> {
    counts: &'a PerClient,
    key: String,
}

impl Drop for ClientSlot<'_> {
    fn drop(&mut self) {
        self.counts.leave(&self.key);
    }
}

/// Counts one open connection until dropped.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        metrics::DOWNSTREAM_CONNECTIONS.dec();
    }
}

impl Connections {
    /// The HTTP listener's application.
    pub(crate) fn new(proxy: HttpProxy<Gateway>, runtime: Arc<ArcSwap<Runtime>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                proxy: Arc::new(proxy),
                runtime,
                open: AtomicUsize::new(0),
                per_client: PerClient::new(),
            }),
            tls: false,
        }
    }

    /// The HTTPS listener's application, counting connections together with this one.
    pub(crate) fn https(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            tls: true,
        }
    }

    /// One request of an HTTP/1 connection, closed (`None`) when its header is not complete
    /// within `deadline` of its first byte.
    async fn request(
        &self,
        session: ServerSession,
        shutdown: &ShutdownWatch,
        deadline: std::time::Duration,
        header_read: &Arc<AtomicBool>,
    ) -> Option<pingora::apps::ReusedHttpStream> {
        header_read.store(false, Ordering::Relaxed);
        // The request's future is several KiB. Boxed per request, so an idle keep-alive
        // connection does not hold it; the box is allocated before the future is made, so
        // that it can be written in place (`Box::pin(future)` copies all of it).
        let serve = Box::write(
            Box::new_uninit(),
            self.shared.proxy.process_http_request(session, shutdown),
        );
        let request = HEADER_READ.scope(Arc::clone(header_read), Box::into_pin(serve));
        tokio::pin!(request);
        tokio::select! {
            biased;
            done = &mut request => done,
            () = tokio::time::sleep(deadline) => {
                if header_read.load(Ordering::Relaxed) {
                    request.await
                } else {
                    metrics::DOWNSTREAM_TIMEOUTS.with_label_values(&["header"]).inc();
                    None
                }
            }
        }
    }
}

enum FirstByte {
    Arrived,
    /// The client closed the connection without sending anything.
    Closed,
    /// Nothing came within the deadline.
    Late,
}

/// Wait, without consuming it, for the first byte a client sends.
async fn first_byte(
    stream: &mut (impl Peek + Send + ?Sized),
    deadline: std::time::Duration,
) -> FirstByte {
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, stream.try_peek(&mut first)).await {
        Ok(Ok(_)) => FirstByte::Arrived,
        Ok(Err(_)) => FirstByte::Closed,
        Err(_) => FirstByte::Late,
    }
}

/// The TLS handshake of an HTTPS connection, with the live runtime's certificates, within
/// `limits.header_timeout` (a client that opens a connection and stays silent holds it no
/// longer than one that sends half a header). `None` closes the connection.
async fn handshake(runtime: &ArcSwap<Runtime>, stream: Stream) -> Option<Stream> {
    let (acceptor, deadline) = {
        let rt = runtime.load();
        (rt.tls.clone(), rt.config.limits.header_timeout)
    };
    let acceptor = acceptor?;
    // The listener hands over a TCP stream; TLS runs over that concrete type.
    let mut tcp = match stream.into_any().downcast::<L4Stream>() {
        Ok(tcp) => *tcp,
        Err(_) => {
            tracing::error!("HTTPS listener: a connection that is not TCP");
            return None;
        }
    };
    let started = tokio::time::Instant::now();
    // A probe that connects and closes without sending a byte (a TCP health check) is not
    // a failed handshake.
    match first_byte(&mut tcp, deadline).await {
        FirstByte::Arrived => {}
        FirstByte::Closed => return None,
        FirstByte::Late => {
            metrics::TLS_HANDSHAKE_FAILURES
                .with_label_values(&["timeout"])
                .inc();
            return None;
        }
    }
    let handshake = acceptor.acceptor.tls_handshake(tcp);
    match tokio::time::timeout_at(started + deadline, handshake).await {
        Ok(Ok(tls)) => Some(Box::new(Peekable::new(tls))),
        Ok(Err(e)) => {
            metrics::TLS_HANDSHAKE_FAILURES
                .with_label_values(&["error"])
                .inc();
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics::TLS_HANDSHAKE_FAILURES
                .with_label_values(&["timeout"])
                .inc();
            None
        }
    }
}

#[async_trait]
impl ServerApp for Connections {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let open = self.shared.open.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::DOWNSTREAM_CONNECTIONS.inc();
        let _open = Open(&self.shared.open);
        let (max, per_client_max, v6_prefix) = {
            let rt = self.shared.runtime.load();
            let limits = &rt.config.limits;
            (
                limits.max_connections,
                limits.max_connections_per_client,
                rt.config.rate_limiting.ipv6_prefix,
            )
        };
        if open > max {
            metrics::DOWNSTREAM_REJECTED.inc();
            tracing::debug!(
                open,
                max,
                "connection refused: limits.max_connections reached"
            );
            return None;
        }
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _slot = match (per_client_max, peer) {
            (Some(cap), Some(ip)) => {
                let slot = ClientSlot {
                    counts: &self.shared.per_client,
                    key: super::headers::client_key(ip, v6_prefix),
                };
                if self.shared.per_client.enter(&slot.key) > cap {
                    metrics::DOWNSTREAM_REJECTED.inc();
                    tracing::debug!(client = %slot.key, cap, "connection refused: limits.max_connections_per_client reached");
                    return None;
                }
                Some(slot)
            }
            _ => None,
        };
        if self.tls {
            // Boxed: the handshake's state is large and would otherwise stay part of this
            // connection's future for its whole life (memory per idle connection).
            stream = Box::pin(handshake(&self.shared.runtime, stream)).await?;
        }
        if matches!(
            stream.selected_alpn_proto(),
            Some(ALPN::H2 | ALPN::Custom(_))
        ) {
            // HTTP/2 runs in Pingora's own loop, which closes idle connections after
            // `h2_idle_timeout` but waits for the client's preface without a deadline: the
            // preface's first byte must come within `limits.header_timeout`.
            let deadline = self.shared.runtime.load().config.limits.header_timeout;
            match first_byte(&mut *stream, deadline).await {
                FirstByte::Arrived => {}
                FirstByte::Closed => return None,
                FirstByte::Late => {
                    metrics::DOWNSTREAM_TIMEOUTS
                        .with_label_values(&["header"])
                        .inc();
                    return None;
                }
            }
            return ServerApp::process_new(&self.shared.proxy, stream, shutdown).await;
        }
        let header_read = Arc::new(AtomicBool::new(false));
        let mut persistent: Option<HttpPersistentSettings> = None;
        loop {
            let (idle, header) = {
                let rt = self.shared.runtime.load();
                (
                    rt.config.limits.idle_timeout,
                    rt.config.limits.header_timeout,
                )
            };
            // Wait for the first byte of the next request (peeked, so Pingora still reads it).
            // A keep-alive connection idle at shutdown is closed, as Pingora's own loop does.
            if persistent.is_some() && *shutdown.borrow() {
                return None;
            }
            let mut stop = shutdown.clone();
            let mut first = [0u8; 1];
            tokio::select! {
                waited = tokio::time::timeout(idle, stream.try_peek(&mut first)) => match waited {
                    Ok(Ok(_)) => {}
                    // Closed by the client: the common end of a keep-alive connection.
                    Ok(Err(_)) => return None,
                    Err(_) => {
                        metrics::DOWNSTREAM_TIMEOUTS.with_label_values(&["idle"]).inc();
                        return None;
                    }
                },
                _ = stop.changed(), if persistent.is_some() => return None,
            }
            let mut session = ServerSession::new_http1(stream);
            match persistent.take() {
                Some(settings) => settings.apply_to_session(&mut session),
                None => {
                    // As Pingora's own HTTP/1 loop does for a new connection.
                    session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
                    session.set_keepalive_reuses_remaining(
                        self.shared
                            .proxy
                            .server_options()
                            .and_then(|o| o.keepalive_request_limit),
                    );
                }
            }
            let reused = self
                .request(session, shutdown, header, &header_read)
                .await?;
            let (next, settings) = reused.consume();
            stream = next;
            persistent = settings;
        }
    }

    async fn cleanup(&self) {
        self.shared.proxy.http_cleanup().await;
    }
}
