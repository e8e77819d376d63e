//! The three proxies under test, each started from a generated config on a free port and
//! stopped (killed) when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tests::config::{
    Auth, CertificateFiles, GatewayConfig, Jwt, Listeners, Pool, RateLimit, Route, Server,
    StaticKey, Tls,
};
use tests::free_port;
use tests::process::Process;

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

/// A proxy under test. Its process group (nginx's workers, HAProxy's threads) is killed
/// when this drops.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    _process: Process,
    _dir: tempfile::TempDir,
}

pub(crate) fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("target dir").join("gateway")
}

/// Start `system` with `threads` workers in front of `upstreams`; with `tls`, the measured
/// address terminates TLS with that certificate (ALPN `h2` and `http/1.1`).
pub(crate) fn start(
    system: System,
    threads: usize,
    upstreams: &[SocketAddr],
    policy: Option<&Policy>,
    tls: Option<&CertificateFiles>,
) -> anyhow::Result<Running> {
    start_with(system, threads, upstreams, policy, tls, None)
}

/// [`start`], compressing responses with `compression` (`gzip` or `zstd`; nginx knows gzip
/// only). Both use gzip level 5 and compress JSON of 1 KiB and more.
pub(crate) fn start_with(
    system: System,
    threads: usize,
    upstreams: &[SocketAddr],
    policy: Option<&Policy>,
    tls: Option<&CertificateFiles>,
    compression: Option<&str>,
) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let d = dir.path();
    let script = match system {
        System::Gateway => gateway_script(d, addr, threads, upstreams, policy, tls, compression)?,
        System::Nginx => nginx_script(d, addr, threads, upstreams, tls, compression.is_some())?,
        System::Haproxy => haproxy_script(d, addr, threads, upstreams, tls)?,
    };
    // A raised descriptor limit for the idle-connection scenario, in a process group of its
    // own so that dropping it stops every process it started.
    let log = d.join("output.log");
    let process = Process::spawn_group(
        system.name(),
        Command::new("sh").args([
            "-c",
            &format!("ulimit -n 70000 2>/dev/null || ulimit -n 20000; exec {script}"),
        ]),
        Some(&log),
    )?;
    let pid = process.pid();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} did not start: {}",
            system.name(),
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Running {
        addr,
        pid,
        _process: process,
        _dir: dir,
    })
}

fn gateway_script(
    d: &Path,
    addr: SocketAddr,
    threads: usize,
    upstreams: &[SocketAddr],
    policy: Option<&Policy>,
    tls: Option<&CertificateFiles>,
    compression: Option<&str>,
) -> anyhow::Result<String> {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listeners = match tls {
        None => Listeners::new(addr, admin),
        Some(_) => Listeners {
            https: Some(addr),
            ..Listeners::new(SocketAddr::from(([127, 0, 0, 1], free_port())), admin)
        },
    };
    let mut config = GatewayConfig::new()
        .server(Server::new().threads(threads))
        .listeners(listeners)
        .pool("p", Pool::endpoints(upstreams));
    // The default certificate, as nginx and HAProxy serve their only one: wrk and h2load
    // send the IP address as SNI, which names no certificate.
    if let Some(files) = tls {
        config = config.tls(Tls::new().default_certificate(files.clone()));
    }
    let mut route = Route::prefix("/").pool("p");
    if let Some(algorithm) = compression {
        route = route.policy(
            "compression",
            serde_json::json!({ "algorithms": [algorithm], "min_size": "1KiB" }),
        );
    }
    let (route, log) = match policy {
        None => (route, "warn"),
        Some(p) => {
            config = config.jwt(
                Jwt::new(&["bench"], &["bench"])
                    .forward_claim("sub", "X-User-Id")
                    .key(StaticKey::jwk_file("EdDSA", &p.jwk_file).kid("bench")),
            );
            (
                route
                    .auth(Auth::Required)
                    .body_limit("1MiB")
                    .rate_limit(RateLimit::subject(1_000_000, "1s").burst(1_000_000)),
                // The access log is part of the policy chain's cost.
                "info",
            )
        }
    };
    let yaml = config.route(route).to_yaml();
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
    tls: Option<&CertificateFiles>,
    gzip: bool,
) -> anyhow::Result<String> {
    // The gateway's gzip level and rules: JSON of 1 KiB and more, proxied responses too.
    let gzip = if gzip {
        "gzip on; gzip_comp_level 5; gzip_min_length 1024; gzip_proxied any; \
         gzip_types application/json; gzip_vary on;"
    } else {
        ""
    };
    let servers: String = upstreams
        .iter()
        .map(|u| format!("    server {u};\n"))
        .collect();
    // Over TLS: the same certificate and versions as the gateway, HTTP/2 through ALPN, and
    // no cap on requests per connection (nginx closes after 1000 by default, and h2load does
    // not reconnect).
    let listen = match tls {
        None => format!("listen {addr};"),
        Some(files) => format!(
            "listen {addr} ssl http2; ssl_certificate {}; ssl_certificate_key {}; \
             ssl_protocols TLSv1.2 TLSv1.3; keepalive_requests 1000000;",
            files.cert_file.display(),
            files.key_file.display()
        ),
    };
    let conf = format!(
        "worker_processes {threads};\npid {pid};\nerror_log {err};\nevents {{ worker_connections 20000; }}\n\
         http {{\n  access_log off;\n  {gzip}\n  upstream up {{\n{servers}    keepalive 1024;\n  }}\n  server {{\n    {listen}\n    \
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
    tls: Option<&CertificateFiles>,
) -> anyhow::Result<String> {
    // HAProxy takes the chain and the key in one file.
    let bind = match tls {
        None => format!("bind {addr}"),
        Some(files) => {
            let pem = d.join("haproxy.pem");
            let mut both = std::fs::read(&files.cert_file)?;
            both.extend(std::fs::read(&files.key_file)?);
            std::fs::write(&pem, both)?;
            format!(
                "bind {addr} ssl crt {} alpn h2,http/1.1 ssl-min-ver TLSv1.2",
                pem.display()
            )
        }
    };
    let servers: String = upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| format!("  server s{i} {u} maxconn 1000\n"))
        .collect();
    let conf = format!(
        "global\n  nbthread {threads}\n  maxconn 9500\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  \
         timeout server 30s\n  option http-keep-alive\n  http-reuse always\nfrontend f\n  {bind}\n  default_backend b\n\
         backend b\n  balance roundrobin\n{servers}"
    );
    let path = d.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    Ok(format!("haproxy -db -f {}", path.display()))
}
