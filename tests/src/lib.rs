//! End-to-end harness: the real gateway binary, real upstream servers and a real DNS server,
//! all on loopback sockets, each started on free ports and stopped when dropped.
//!
//! # Layout
//! - [`api`]: the one client of the todo API (backend tests, harness, compose test, bench).
//! - [`certs`]: self-signed and CA-signed certificates (the `openssl` command) and what a TLS
//!   server presents.
//! - [`config`]: typed `gateway.yaml` (serde structs and builders, serialized to YAML) that
//!   tests configure the gateway with.
//! - [`gateway`]: start the gateway binary with a generated config; signals, logs, metrics.
//! - [`upstream`]: hyper upstreams that report their identity and count connections.
//! - [`docker`]: the Docker engine for the compose and Swarm tests: local images, the CLI.
//! - [`dns`]: an authoritative DNS server whose answers tests edit while traffic flows.
//! - [`jwks`]: run-time signing keys, minted tokens and a JWKS server.
//! - [`redis`]: a real redis-server on a free port.
//! - [`pebble`]: Let's Encrypt's ACME test server (and its DNS) on loopback.
//! - [`process`]: child processes: logged, signalled, terminated with grace, killed on drop.
//! - [`postgres`]: a real PostgreSQL server (initdb into a temp dir) on a free port.
//! - [`stack`]: the whole stack on loopback (PostgreSQL, Redis, backends, gateway); the
//!   `stack` binary runs it.
//! - [`layers`]: the crates' module import graphs, checked against ARCHITECTURE.md.
//! - [`load`]: a bounded closed-loop load generator that records every failure.
//! - [`raw`]: raw HTTP/1.1 requests, for what client libraries will not send as written.
//! - [`schema`]: gateway configs checked against `config/gateway.schema.json`.
//! - `tests`: the end-to-end tests themselves (`cargo test --workspace`).
//!
//! Logs of each gateway are kept in its temp dir and printed on drop when `TEST_LOG=1`.

pub mod api;
pub mod browser;
pub mod certs;
pub mod config;
pub mod dns;
pub mod docker;
pub mod gateway;
pub mod jwks;
pub mod layers;
pub mod load;
pub mod pebble;
pub mod postgres;
pub mod process;
pub mod raw;
pub mod redis;
pub mod schema;
pub mod serve;
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

/// A free TCP port on 127.0.0.1. The port is free when this returns; the server under test
/// binds it a moment later (Pingora and redis-server bind from address strings, so they cannot
/// take a bound socket).
///
/// Ports come from just below the kernel's ephemeral range, never from it: in the moment
/// between this check and the server's bind, any `bind(port 0)` or outgoing connection of a
/// test running beside it may be handed an ephemeral port, and once that was this one (an
/// ACME challenge then went to another test's server). Each test process starts at a place
/// of its own in the range and walks it, so concurrent processes rarely try the same port, and
/// a port in use is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    const SPAN: u32 = 12_000;
    if ephemeral_low <= SPAN + 1024 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        return listener.local_addr().expect("local addr").port();
    }
    let low = ephemeral_low - SPAN;
    let offset = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (offset + n) % SPAN;
        let port = u16::try_from(port).expect("below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{ephemeral_low}");
}

/// Run `command` (`what` names it in messages) and insist on success: its standard output.
/// A program that cannot start or that fails fails the test with its own output.
pub fn run_ok(command: &mut std::process::Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// Poll `check` every 50 ms until it holds or `limit` has passed; whether it held. The one
/// waiting primitive of the workspace's tests: use it (or [`assert_eventually!`]) instead of
/// a sleep that hopes the system got there.
pub async fn poll_until(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Assert that an async condition comes to hold within [`patience`] (or `within = limit`),
/// polling it with [`poll_until`]; the message is formatted only on failure, so it may read
/// logs written meanwhile.
#[macro_export]
macro_rules! assert_eventually {
    (within = $limit:expr, $cond:expr, $($msg:tt)+) => {{
        if !$crate::poll_until($limit, async || $cond).await {
            panic!($($msg)+);
        }
    }};
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!(within = $crate::patience(), $cond, $($msg)+)
    };
}
