//! The real gateway binary, started as a child process on reserved loopback ports.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::patience;

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
                .args(["build", "-p", "gateway", "--bin", "gateway"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p gateway failed");
        }
        bin
    })
    .clone()
}

/// A free TCP port on 127.0.0.1. The port is free when this returns; the gateway binds it
/// a moment later (Pingora binds from address strings, so it cannot take a bound socket).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// A running gateway. Killed (SIGKILL) on drop if still running.
pub struct TestGateway {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The `server:` section body, kept so rewrites change only the rest.
    server: String,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Start the gateway with `body` (pools, routes, ...) plus generated `server:` and
/// `listeners:` sections, and wait until its admin listener answers.
pub async fn start(body: &str) -> TestGateway {
    start_with(body, "threads: 2\n  shutdown_grace: 5s").await
}

/// Like [`start`], with a custom `server:` section body.
pub async fn start_with(body: &str, server: &str) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let yaml = format!("server:\n  {server}\nlisteners:\n  http: {http}\n  admin: {admin}\n{body}");
    let config_path = dir.path().join("gateway.yaml");
    std::fs::write(&config_path, yaml).expect("write config");
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(gateway_bin())
        .arg("--config")
        .arg(&config_path)
        .env(
            "RUST_LOG",
            std::env::var("GATEWAY_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::from(log.try_clone().expect("dup log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn gateway");
    let mut gw = TestGateway {
        http,
        admin,
        server: server.to_owned(),
        config_path,
        log_path,
        child,
        _dir: dir,
    };
    gw.wait_until_listening().await;
    gw
}

fn compose(server: &str, http: SocketAddr, admin: SocketAddr, body: &str) -> String {
    format!("server:\n  {server}\nlisteners:\n  http: {http}\n  admin: {admin}\n{body}")
}

impl TestGateway {
    /// Replace the config file's body (everything but `server:` and `listeners:`), the way
    /// an operator edits it: write a temp file and rename it over the old one.
    pub fn rewrite_config(&self, body: &str) {
        self.rewrite_raw(&compose(&self.server, self.http, self.admin, body));
    }

    /// Replace the whole config file with `text`.
    pub fn rewrite_raw(&self, text: &str) {
        let tmp = self.config_path.with_extension("yaml.tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("replace config");
    }

    /// Send SIGHUP: reload the config now.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + patience();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("gateway exited early with {status}:\n{}", self.log());
            }
            let admin_up = tokio::net::TcpStream::connect(self.admin).await.is_ok();
            let http_up = tokio::net::TcpStream::connect(self.http).await.is_ok();
            if admin_up && http_up {
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

    /// Send SIGTERM, as Docker does on `stop`. (The workspace forbids `unsafe`, so this
    /// uses the `kill` command rather than `libc::kill`.)
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Wait for the process to exit, up to `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("--- gateway log ---\n{}", self.log());
        }
    }
}
