//! The whole stack on loopback, without Docker: an ephemeral PostgreSQL and Redis, N backend
//! replicas and the gateway, all real processes on free ports.
//!
//! The gateway runs the root `gateway.yaml` with only what cannot work outside Docker
//! replaced: the listener addresses, the `backend` pool's endpoints (the replicas' loopback
//! addresses instead of the compose service name), the rate limiter's Redis URL and the
//! directory of the self-signed certificate.
//! [`Stack::follow_config`] keeps applying edits of the root file, so the hot-reload tour in
//! the README works here too.
//!
//! Used by the `stack` binary (`cargo run --release --bin stack`) and by the end-to-end
//! benchmark in `bench/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_yaml::Value;

use crate::api::TodoApi;
use crate::free_port;
use crate::postgres::Postgres;
use crate::process::Process;
use crate::redis::RedisServer;
use nix::sys::signal::Signal;

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Number of backend replicas.
    pub replicas: usize,
    /// The gateway's HTTP port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// The gateway's admin port on 127.0.0.1 (0 picks a free one).
    pub admin_port: u16,
    /// The gateway's HTTPS port on 127.0.0.1 (0 picks a free one), when the config has
    /// `listeners.https`.
    pub https_port: u16,
    /// Where `tls.self_signed` keeps its certificate; `None`: in the stack's temp dir (a
    /// new certificate each run).
    pub tls_dir: Option<PathBuf>,
    /// The gateway config to run (normally the root `gateway.yaml`).
    pub config: PathBuf,
    /// Extra environment for every backend replica (e.g. `CACHE_TTL_SECONDS`).
    pub backend_env: Vec<(String, String)>,
}

impl StackOptions {
    /// What the tests run: two replicas (enough to see balancing), one worker each, ports
    /// picked free, and `config` as the user's file.
    pub fn for_tests(config: PathBuf) -> Self {
        Self {
            replicas: 2,
            port: 0,
            admin_port: 0,
            https_port: 0,
            tls_dir: None,
            config,
            backend_env: vec![("WORKER_CONCURRENCY".into(), "1".into())],
        }
    }
}

/// A running stack. Dropping it kills every process it started, the gateway and the
/// replicas first (fields drop in declaration order).
pub struct Stack {
    gateway_child: Process,
    /// Backend replica processes, in the order of `backends`.
    backend_children: Vec<Process>,
    /// The gateway's public address.
    pub http: SocketAddr,
    /// The gateway's admin address (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// The gateway's HTTPS address, when the config has an HTTPS listener.
    pub https: Option<SocketAddr>,
    /// `tls.self_signed`'s directory.
    tls_dir: PathBuf,
    /// Each replica's address, in start order.
    pub backends: Vec<SocketAddr>,
    /// The PostgreSQL server; kept so it lives as long as the stack.
    pub postgres: Postgres,
    /// The Redis server shared by the backends' cache and queue and the gateway's limits.
    pub redis: RedisServer,
    /// The gateway binary, also used to `check` edits of the source config.
    gateway_bin: PathBuf,
    /// The config as the user edits it, and the rendered copy the gateway runs.
    source_config: PathBuf,
    rendered_config: PathBuf,
    /// The source text the gateway started with; edits are changes from it.
    started_with: String,
    /// How a replica is started, to start one again.
    launcher: Launcher,
    /// Signing key, rendered config and every process's log.
    dir: tempfile::TempDir,
}

/// Everything a backend replica is started with.
struct Launcher {
    backend_bin: PathBuf,
    key: PathBuf,
    database_url: String,
    redis_url: String,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
}

impl Launcher {
    /// Start replica `i` (from 1) on `127.0.0.1:port`; a restart appends to its log.
    fn spawn(&self, i: usize, port: u16) -> anyhow::Result<Process> {
        Process::spawn(
            &format!("backend-{i}"),
            Command::new(&self.backend_bin)
                .env("DATABASE_URL", &self.database_url)
                .env("REDIS_URL", &self.redis_url)
                .env("BIND", "127.0.0.1")
                .env("PORT", port.to_string())
                .env("JWT_PRIVATE_KEY_FILE", &self.key)
                .env("INSTANCE_ID", format!("backend-{i}"))
                .envs(self.env.iter().map(|(k, v)| (k, v))),
            Some(&log_path(&self.log_dir, &format!("backend-{i}"))),
        )
    }
}

/// The directory of the running executable's profile (`target/debug` or `target/release`),
/// where cargo puts the `gateway` and `backend` binaries. Under `cargo run` they are built
/// (or brought up to date) first with the same profile. `GATEWAY_BIN` and `BACKEND_BIN`
/// override each (e.g. to run the tests against binaries of an earlier commit).
pub fn sibling_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    if let (Some(gateway), Some(backend)) = (
        std::env::var_os("GATEWAY_BIN"),
        std::env::var_os("BACKEND_BIN"),
    ) {
        return Ok((PathBuf::from(gateway), PathBuf::from(backend)));
    }
    let exe = std::env::current_exe().context("Failed to find the current executable")?;
    let mut dir = exe.parent().context("executable has no parent dir")?;
    // A test executable lives one level down, in `deps/`.
    let in_test = dir.ends_with("deps");
    if in_test {
        dir = dir.parent().context("deps dir has no parent")?;
    }
    // Under `cargo run` (not in a test: the test runner's binaries are built already, and
    // a nested cargo would wait on the running one's lock).
    if let (Some(cargo), false) = (std::env::var_os("CARGO"), in_test) {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bin", "gateway", "--bin", "backend"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().context("Failed to run cargo build")?;
        ensure!(
            status.success(),
            "cargo build of gateway and backend failed"
        );
    }
    let (gateway, backend) = (dir.join("gateway"), dir.join("backend"));
    for bin in [&gateway, &backend] {
        ensure!(
            bin.exists(),
            "{} is missing: build it with `cargo build --release --workspace --bins`",
            bin.display()
        );
    }
    Ok((gateway, backend))
}

impl Stack {
    /// Start PostgreSQL, Redis, the replicas and the gateway, and wait until `/readyz`
    /// answers 200 (every pool has a healthy endpoint).
    pub async fn start(options: &StackOptions) -> anyhow::Result<Self> {
        ensure!(options.replicas >= 1, "--replicas must be at least 1");
        let (gateway_bin, backend_bin) = sibling_binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("stack-")
            .tempdir()
            .context("Failed to create the stack's temp dir")?;

        let postgres = Postgres::start(true);
        let redis = RedisServer::start();

        let key = dir.path().join("signing.pem");
        let keygen = Command::new(&backend_bin)
            .arg("keygen")
            .output()
            .context("Failed to run `backend keygen`")?;
        ensure!(keygen.status.success(), "`backend keygen` failed");
        std::fs::write(&key, keygen.stdout).context("Failed to write the signing key")?;

        let launcher = Launcher {
            backend_bin,
            key,
            database_url: postgres.url("postgres"),
            redis_url: redis.url(),
            env: options.backend_env.clone(),
            log_dir: dir.path().to_owned(),
        };
        let mut backends = Vec::new();
        let mut backend_children = Vec::new();
        for i in 1..=options.replicas {
            let port = free_port();
            backend_children.push(launcher.spawn(i, port)?);
            backends.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }

        let http = SocketAddr::from(([127, 0, 0, 1], pick(options.port)));
        let admin = SocketAddr::from(([127, 0, 0, 1], pick(options.admin_port)));
        let rendered_config = dir.path().join("gateway.yaml");
        let source = std::fs::read_to_string(&options.config)
            .with_context(|| format!("Failed to read {}", options.config.display()))?;
        let https = has_https(&source)
            .then(|| SocketAddr::from(([127, 0, 0, 1], pick(options.https_port))));
        let tls_dir = options
            .tls_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("tls"));
        let local = Local {
            http,
            https,
            admin,
            backends: &backends,
            redis_url: &redis.url(),
            tls_dir: &tls_dir,
        };
        let rendered = render_config(&source, &local)
            .with_context(|| format!("Failed to adapt {}", options.config.display()))?;
        std::fs::write(&rendered_config, rendered).context("Failed to write the config")?;
        let gateway_child = Process::spawn(
            "gateway",
            Command::new(&gateway_bin)
                .arg("--config")
                .arg(&rendered_config),
            Some(&log_path(dir.path(), "gateway")),
        )?;

        let mut stack = Self {
            http,
            admin,
            https,
            tls_dir,
            backends,
            postgres,
            redis,
            backend_children,
            gateway_child,
            gateway_bin,
            source_config: options.config.clone(),
            rendered_config,
            started_with: source,
            launcher,
            dir,
        };
        stack.wait_ready().await?;
        Ok(stack)
    }

    /// Where every process writes its log (`gateway.log`, `backend-N.log`).
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process ids this stack started (gateway, replicas, PostgreSQL's watchdog and
    /// Redis), for accounting; their children belong to them.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.gateway_child.pid()];
        pids.extend(self.backend_children.iter().map(Process::pid));
        pids.extend(self.postgres.pid());
        pids.extend(self.redis.pid());
        pids
    }

    /// SIGKILL replica `i` (from 0, in start order), as a crash would end it.
    pub fn kill_backend(&mut self, i: usize) {
        self.backend_children[i].kill();
    }

    /// Start replica `i` again on its address, after [`Stack::kill_backend`]; returns once it
    /// accepts connections.
    pub async fn restart_backend(&mut self, i: usize) -> anyhow::Result<()> {
        let port = self.backends[i].port();
        self.backend_children[i] = self.launcher.spawn(i + 1, port)?;
        let listening = crate::poll_until(Duration::from_secs(30), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        ensure!(
            listening,
            "backend-{} did not listen again within 30 s",
            i + 1
        );
        Ok(())
    }

    /// Freeze replica `i` (SIGSTOP) or let it go on (SIGCONT): a replica that is slow.
    pub fn pause_backend(&self, i: usize, paused: bool) -> anyhow::Result<()> {
        let signal = if paused {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        self.backend_children[i].signal(signal)?;
        Ok(())
    }

    /// `http://` URL of `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The todo API through the gateway.
    pub fn api(&self) -> TodoApi {
        TodoApi::new(self.url(""))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("http://{}/readyz", self.admin);
        // Replicas run their migrations first; a cold PostgreSQL can take a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for child in std::iter::once(&mut self.gateway_child).chain(&mut self.backend_children)
            {
                if let Some(status) = child.exited() {
                    bail!(
                        "{} exited with {status}; see {}",
                        child.name(),
                        log_path(self.dir.path(), child.name()).display()
                    );
                }
            }
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the gateway was not ready within 60 s; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Apply edits of the source config until `stop` resolves: every 500 ms, if the file
    /// changed and `gateway check` accepts it, render it again over the running copy (the
    /// gateway reloads it). A rejected edit is reported with `gateway check`'s own messages,
    /// which name lines of the file the user edited.
    pub async fn follow_config(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last = self.started_with.clone();
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let Ok(text) = std::fs::read_to_string(&self.source_config) else {
                continue;
            };
            if text == last {
                continue;
            }
            last.clone_from(&text);
            match self.apply_config(&text) {
                Ok(()) => println!("{}: applied", self.source_config.display()),
                Err(e) => eprintln!("{e:#}; the gateway keeps its current config"),
            }
        }
    }

    /// Check the source file with `gateway check`, then render `text` (its contents) over the
    /// running copy, which the gateway then reloads.
    pub fn apply_config(&self, text: &str) -> anyhow::Result<()> {
        // Not `sibling_binaries()`: under `cargo run` that would run cargo on every edit.
        let check = Command::new(&self.gateway_bin)
            .arg("check")
            .arg(&self.source_config)
            .output()
            .context("Failed to run `gateway check`")?;
        ensure!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr).trim_end()
        );
        let local = Local {
            http: self.http,
            https: self.https,
            admin: self.admin,
            backends: &self.backends,
            redis_url: &self.redis.url(),
            tls_dir: &self.tls_dir,
        };
        let rendered = render_config(text, &local)?;
        // Write a temp file and rename it over the old one, so the gateway never reads half.
        let tmp = self.rendered_config.with_extension("yaml.tmp");
        std::fs::write(&tmp, rendered).context("Failed to write the config")?;
        std::fs::rename(&tmp, &self.rendered_config).context("Failed to replace the config")?;
        Ok(())
    }

    /// SIGTERM every process (gateway first, so it stops sending traffic), wait up to 10 s
    /// (Docker's stop timeout) for each, then kill what is left. PostgreSQL and Redis stop
    /// when the stack drops.
    pub async fn shutdown(mut self) {
        self.gateway_child.terminate(STOP_GRACE).await;
        for child in &self.backend_children {
            let _ = child.signal(Signal::SIGTERM);
        }
        for child in &mut self.backend_children {
            child.terminate(STOP_GRACE).await;
        }
    }
}

/// How long a process may take to stop after SIGTERM: Docker's default stop timeout.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn pick(port: u16) -> u16 {
    if port == 0 {
        free_port()
    } else {
        port
    }
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// What the stack puts in place of the Docker-only parts of the config.
pub struct Local<'a> {
    pub http: SocketAddr,
    /// Replaces `listeners.https` when the config has one.
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub backends: &'a [SocketAddr],
    pub redis_url: &'a str,
    /// Replaces `tls.self_signed.storage` when the config has one.
    pub tls_dir: &'a Path,
}

/// Whether `source` has an HTTPS listener (which the stack then moves to loopback).
fn has_https(source: &str) -> bool {
    serde_yaml::from_str::<Value>(source)
        .is_ok_and(|doc| doc.get("listeners").and_then(|l| l.get("https")).is_some())
}

/// `source` with the listeners, the `backend` pool's endpoints, the rate limiter's Redis and
/// the self-signed certificate's directory replaced. Everything else (routes, policies,
/// health checks) is the user's.
pub fn render_config(source: &str, local: &Local<'_>) -> anyhow::Result<String> {
    let mut doc: Value = serde_yaml::from_str(source).context("not valid YAML")?;
    let root = doc
        .as_mapping_mut()
        .context("the config is not a mapping")?;
    let listeners = root
        .entry("listeners".into())
        .or_insert_with(|| Value::Mapping(Default::default()));
    set(listeners, "http", Value::from(local.http.to_string()))?;
    set(listeners, "admin", Value::from(local.admin.to_string()))?;
    match local.https {
        Some(https) if listeners.get("https").is_some() => {
            set(listeners, "https", Value::from(https.to_string()))?;
        }
        _ => {}
    }
    if let Some(self_signed) = root.get_mut("tls").and_then(|t| t.get_mut("self_signed")) {
        let dir = local.tls_dir.display().to_string();
        set(self_signed, "storage", Value::from(dir))?;
    }
    let pool = root
        .get_mut("pools")
        .and_then(|p| p.get_mut("backend"))
        .context("the config has no `pools.backend` to point at the replicas")?;
    let endpoints = local
        .backends
        .iter()
        .map(|a| Value::from(a.to_string()))
        .collect();
    set(pool, "endpoints", Value::Sequence(endpoints))?;
    if let Some(limits) = root.get_mut("rate_limiting") {
        set(limits, "redis_url", Value::from(local.redis_url))?;
    }
    serde_yaml::to_string(&doc).context("Failed to write YAML")
}

/// `source` without the `rate_limits` of the routes named in `routes`: a load test from one
/// user (the benchmark, the compose test) measures failures and throughput, not the limiter.
pub fn without_rate_limits(source: &str, routes: &[&str]) -> anyhow::Result<String> {
    let mut doc: Value = serde_yaml::from_str(source).context("not valid YAML")?;
    let list = doc
        .get_mut("routes")
        .and_then(Value::as_sequence_mut)
        .context("the config has no `routes` list")?;
    for route in list {
        let named = route
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| routes.contains(&n));
        if let (true, Some(map)) = (named, route.as_mapping_mut()) {
            map.remove("rate_limits");
        }
    }
    serde_yaml::to_string(&doc).context("Failed to write YAML")
}

fn set(map: &mut Value, key: &str, value: Value) -> anyhow::Result<()> {
    map.as_mapping_mut()
        .with_context(|| format!("`{key}`'s parent is not a mapping"))?
        .insert(key.into(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_config_replaces_only_listeners_endpoints_redis_and_tls_dir() {
        // Arrange
        let source =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.yaml"))
                .unwrap();
        let backends: Vec<SocketAddr> = vec!["127.0.0.1:7001".parse().unwrap()];
        let local = Local {
            http: "127.0.0.1:8080".parse().unwrap(),
            https: Some("127.0.0.1:8443".parse().unwrap()),
            admin: "127.0.0.1:9099".parse().unwrap(),
            backends: &backends,
            redis_url: "redis://127.0.0.1:7379",
            tls_dir: Path::new("/tmp/stack-tls"),
        };

        // Act
        let rendered = render_config(&source, &local).unwrap();

        // Assert
        let mut before: Value = serde_yaml::from_str(&source).unwrap();
        let after: Value = serde_yaml::from_str(&rendered).unwrap();
        assert_eq!(after["listeners"]["http"], "127.0.0.1:8080");
        assert_eq!(after["listeners"]["admin"], "127.0.0.1:9099");
        assert_eq!(after["listeners"]["https"], "127.0.0.1:8443");
        assert_eq!(after["tls"]["self_signed"]["storage"], "/tmp/stack-tls");
        assert_eq!(
            after["pools"]["backend"]["endpoints"],
            Value::Sequence(vec!["127.0.0.1:7001".into()])
        );
        assert_eq!(
            after["rate_limiting"]["redis_url"],
            "redis://127.0.0.1:7379"
        );
        // Everything else is untouched.
        before["listeners"] = after["listeners"].clone();
        before["pools"]["backend"]["endpoints"] = after["pools"]["backend"]["endpoints"].clone();
        before["rate_limiting"]["redis_url"] = after["rate_limiting"]["redis_url"].clone();
        before["tls"]["self_signed"]["storage"] = after["tls"]["self_signed"]["storage"].clone();
        assert_eq!(before, after);
    }

    #[test]
    fn render_config_names_a_missing_backend_pool() {
        let local = Local {
            http: "127.0.0.1:1".parse().unwrap(),
            https: None,
            admin: "127.0.0.1:2".parse().unwrap(),
            backends: &[],
            redis_url: "redis://x",
            tls_dir: Path::new("/tmp"),
        };
        let err = render_config("pools: {}\n", &local).unwrap_err();
        assert!(err.to_string().contains("pools.backend"), "{err}");
    }
}
