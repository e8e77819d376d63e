//! The real gateway binary, started as a child process on reserved loopback ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::{GatewayConfig, Listeners, Server};
use crate::process::Process;
use crate::{free_port, patience};

/// Path of the gateway binary: `$GATEWAY_BIN`, else the one beside this test executable,
/// built once per test process when missing.
pub fn gateway_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("GATEWAY_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/tests-<hash> -> target/<profile>/gateway
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir layout");
        let bin = profile_dir.join("gateway");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--bin", "gateway"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --bin gateway failed");
        }
        bin
    })
    .clone()
}

/// A running gateway. Killed (SIGKILL) on drop if still running.
pub struct TestGateway {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The HTTPS listener, reserved when the config has `tls:`.
    pub https: Option<SocketAddr>,
    /// The `server:` section started with, kept for rewrites that do not set their own.
    server: Server,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    process: Process,
    _dir: tempfile::TempDir,
}

/// Start the gateway with `config` on reserved loopback listeners and, unless `config` sets
/// one, the harness' `server:` section; wait until its listeners answer.
pub async fn start(config: &GatewayConfig) -> TestGateway {
    start_at(config, SocketAddr::from(([127, 0, 0, 1], free_port()))).await
}

/// [`start`] with the HTTP listener on `http`, reserved by the caller (who told another
/// server where to find it, as Pebble is told where to validate challenges).
pub async fn start_at(config: &GatewayConfig, http: SocketAddr) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let https = config
        .tls
        .as_ref()
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())));
    let listeners = Listeners {
        https,
        ..Listeners::new(http, admin)
    };
    let server = config.server.clone().unwrap_or_else(harness_server);
    let config_path = dir.path().join("gateway.yaml");
    std::fs::write(&config_path, render(config, &server, listeners)).expect("write config");
    let log_path = dir.path().join("gateway.log");
    let process = Process::spawn(
        "gateway",
        Command::new(gateway_bin())
            .arg("--config")
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("GATEWAY_LOG").unwrap_or_else(|_| "info".into()),
            ),
        Some(&log_path),
    )
    .expect("spawn gateway");
    let mut gw = TestGateway {
        http,
        admin,
        https,
        server,
        config_path,
        log_path,
        process,
        _dir: dir,
    };
    gw.wait_until_listening().await;
    gw
}

/// The harness' `server:`: two workers, and a shutdown grace short enough to test.
fn harness_server() -> Server {
    Server::new().threads(2).shutdown_grace("5s")
}

/// The file text of `config` on `listeners`, with `server` unless `config` sets its own.
fn render(config: &GatewayConfig, server: &Server, listeners: Listeners) -> String {
    assert!(
        config.listeners.is_none(),
        "the harness sets the listeners to the ports it reserved"
    );
    let mut full = config.clone();
    full.server.get_or_insert_with(|| server.clone());
    full.listeners = Some(listeners);
    full.to_yaml()
}

impl TestGateway {
    /// Replace the config file with `config`, on the same listeners (and the `server:` it
    /// started with, unless `config` sets one), the way an operator edits it: write a temp
    /// file and rename it over the old one.
    pub fn rewrite_config(&self, config: &GatewayConfig) {
        let listeners = Listeners {
            https: self.https,
            ..Listeners::new(self.http, self.admin)
        };
        self.rewrite_raw(&render(config, &self.server, listeners));
    }

    /// Replace the whole config file with `text`.
    pub fn rewrite_raw(&self, text: &str) {
        let tmp = self.config_path.with_extension("yaml.tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("replace config");
    }

    /// Send SIGHUP: reload the config now.
    pub fn hangup(&self) {
        self.process
            .signal(Signal::SIGHUP)
            .expect("SIGHUP to the running gateway");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + patience();
        loop {
            if let Some(status) = self.process.exited() {
                panic!("gateway exited early with {status}:\n{}", self.log());
            }
            let admin_up = tokio::net::TcpStream::connect(self.admin).await.is_ok();
            let http_up = tokio::net::TcpStream::connect(self.http).await.is_ok();
            let https_up = match self.https {
                Some(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
                None => true,
            };
            if admin_up && http_up && https_up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not listen in time:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until `/readyz` says every pool has a healthy endpoint.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = self.admin_url("/readyz");
        crate::assert_eventually!(
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200),
            "gateway never became ready:\n{}",
            self.log()
        );
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body")
    }

    /// Send SIGTERM, as Docker does on `stop`.
    pub fn terminate(&self) {
        self.process
            .signal(Signal::SIGTERM)
            .expect("SIGTERM to the running gateway");
    }

    /// Wait for the process to exit, up to `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(limit).await
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.process.kill();
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("--- gateway log ---\n{}", self.log());
        }
    }
}
