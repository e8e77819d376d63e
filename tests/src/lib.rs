//! End-to-end harness: the real gateway binary, real upstream servers and a real DNS server,
//! all on loopback sockets, each started on free ports and stopped when dropped.
//!
//! # Layout
//! - [`gateway`]: start the gateway binary with a generated config; signals, logs, metrics.
//! - [`upstream`]: hyper upstreams that report their identity and count connections.
//! - [`dns`]: an authoritative DNS server whose answers tests edit while traffic flows.
//! - [`jwks`]: run-time signing keys, minted tokens and a JWKS server.
//! - [`redis`]: a real redis-server on a free port.
//! - [`postgres`]: a real PostgreSQL server (initdb into a temp dir) on a free port.
//! - [`stack`]: the whole stack on loopback (PostgreSQL, Redis, backends, gateway); the
//!   `stack` binary runs it.
//! - [`layers`]: the crates' module import graphs, checked against ARCHITECTURE.md.
//! - [`load`]: a bounded closed-loop load generator that records every failure.
//! - [`raw`]: raw HTTP/1.1 requests, for what client libraries will not send as written.
//! - `tests`: the end-to-end tests themselves (`cargo test -p tests`).
//!
//! Logs of each gateway are kept in its temp dir and printed on drop when `TEST_LOG=1`.

pub mod dns;
pub mod gateway;
pub mod jwks;
pub mod layers;
pub mod load;
pub mod postgres;
pub mod raw;
pub mod redis;
pub mod stack;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::time::Duration;

/// How long eventual assertions wait: `RUST_TEST_PATIENCE_MS`, default 10 s.
pub fn patience() -> Duration {
    std::env::var("RUST_TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// Block until something accepts TCP connections on `127.0.0.1:port`, for at most 30 s.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Retry an async condition until it holds or [`patience`] runs out, then panic with the
/// message. Use instead of bare sleeps.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = ::std::time::Instant::now() + $crate::patience();
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!($($msg)+);
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(50)).await;
        }
    }};
}
