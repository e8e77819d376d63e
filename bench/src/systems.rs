//! The three proxies under test, each started from a generated config on a free port and
//! stopped (killed) when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::gateway::free_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Gateway,
    Nginx,
    Haproxy,
}

impl System {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
        }
    }
}

/// Extra gateway configuration for the policy-chain scenario.
pub(crate) struct Policy {
    /// Absolute path of the Ed25519 public JWK the tokens are verified with.
    pub(crate) jwk_file: PathBuf,
}

pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // nginx workers and HAProxy threads go with their parent; the gateway is one process.
        // The `--` matters: procps-ng 4.0.2's `kill -KILL -PGID` parses the group as `-1`
        // and signals every process on the machine.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.pid)])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("target dir").join("gateway")
}

/// Start `system` with `threads` workers in front of `upstreams`.
pub(crate) fn start(
    system: System,
    threads: usize,
    upstreams: &[SocketAddr],
    policy: Option<&Policy>,
) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let d = dir.path();
    let script = match system {
        System::Gateway => gateway_script(d, addr, threads, upstreams, policy)?,
        System::Nginx => nginx_script(d, addr, threads, upstreams)?,
        System::Haproxy => haproxy_script(d, addr, threads, upstreams)?,
    };
    // A raised descriptor limit for the idle-connection scenario; `setsid` puts the proxy in
    // its own process group so that dropping it stops every process it started.
    let child = Command::new("setsid")
        .args([
            "sh",
            "-c",
            &format!("ulimit -n 70000 2>/dev/null || ulimit -n 20000; exec {script}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(d.join("stderr.log"))?))
        .spawn()?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} did not start: {}",
            system.name(),
            std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Running {
        addr,
        pid,
        child,
        _dir: dir,
    })
}

fn gateway_script(
    d: &Path,
    addr: SocketAddr,
    threads: usize,
    upstreams: &[SocketAddr],
    policy: Option<&Policy>,
) -> anyhow::Result<String> {
    let endpoints: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    let admin = free_port();
    let mut yaml = format!(
        "server: {{ threads: {threads} }}\nlisteners: {{ http: \"{addr}\", admin: \"127.0.0.1:{admin}\" }}\n\
         pools:\n  p: {{ endpoints: [{}] }}\n",
        endpoints.join(", ")
    );
    let (route, log) = match policy {
        None => (
            "- { match: { path_prefix: / }, pool: p }\n".to_owned(),
            "warn",
        ),
        Some(p) => {
            yaml.push_str(&format!(
                "jwt:\n  issuers: [bench]\n  audiences: [bench]\n  forward_claims: {{ sub: X-User-Id }}\n  \
                 keys: [{{ alg: EdDSA, kid: bench, jwk_file: \"{}\" }}]\n",
                p.jwk_file.display()
            ));
            (
                "- { match: { path_prefix: / }, pool: p, auth: required, body_limit: 1MiB, \
                 rate_limits: [{ key: subject, rate: 1000000, per: 1s, burst: 1000000 }] }\n"
                    .to_owned(),
                // The access log is part of the policy chain's cost.
                "info",
            )
        }
    };
    yaml.push_str("routes:\n");
    yaml.push_str(&route);
    let config = d.join("gateway.yaml");
    std::fs::write(&config, yaml)?;
    Ok(format!(
        "env RUST_LOG={log} {} --config {} > {}",
        gateway_bin().display(),
        config.display(),
        d.join("access.log").display()
    ))
}

fn nginx_script(
    d: &Path,
    addr: SocketAddr,
    threads: usize,
    upstreams: &[SocketAddr],
) -> anyhow::Result<String> {
    let servers: String = upstreams
        .iter()
        .map(|u| format!("    server {u};\n"))
        .collect();
    let conf = format!(
        "worker_processes {threads};\npid {pid};\nerror_log {err};\nevents {{ worker_connections 20000; }}\n\
         http {{\n  access_log off;\n  upstream up {{\n{servers}    keepalive 1024;\n  }}\n  server {{\n    listen {addr};\n    \
         location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
        pid = d.join("nginx.pid").display(),
        err = d.join("error.log").display(),
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf)?;
    Ok(format!("nginx -c {} -g 'daemon off;'", path.display()))
}

fn haproxy_script(
    d: &Path,
    addr: SocketAddr,
    threads: usize,
    upstreams: &[SocketAddr],
) -> anyhow::Result<String> {
    let servers: String = upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| format!("  server s{i} {u} maxconn 1000\n"))
        .collect();
    let conf = format!(
        "global\n  nbthread {threads}\n  maxconn 9500\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  \
         timeout server 30s\n  option http-keep-alive\n  http-reuse always\nfrontend f\n  bind {addr}\n  default_backend b\n\
         backend b\n  balance roundrobin\n{servers}"
    );
    let path = d.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    Ok(format!("haproxy -db -f {}", path.display()))
}
