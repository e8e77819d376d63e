//! The proxy benchmark: every scenario, every system, interleaved rounds, medians.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;

use crate::measure::{cpu_seconds, h2load, memory_mb, process_tree, wrk};
use crate::report::{self, Row};
use crate::systems::{self, Policy, System};

pub(crate) struct Options {
    pub(crate) duration: u64,
    pub(crate) rounds: usize,
    pub(crate) connections: usize,
    pub(crate) smoke: bool,
    pub(crate) out: PathBuf,
}

/// One scenario: which systems, how many threads, which upstreams, which client headers,
/// and how the client speaks to the proxy.
struct Scenario {
    name: &'static str,
    threads: usize,
    upstreams: usize,
    /// `(label, system, with the policy chain)`.
    systems: Vec<(&'static str, System, bool)>,
    headers: Vec<String>,
    transport: Transport,
    /// The path wrk asks for (`/bench` is the upstream's small echo).
    path: &'static str,
    /// Response compression the proxies apply (`gzip`, `zstd`), and the coding the client
    /// must get back (checked before measuring).
    compression: Option<&'static str>,
}

/// A 20 KiB JSON answer from the upstream.
const JSON_20K: &str = "/big/20480";

/// The client side of a scenario.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// wrk, HTTP/1.1 in cleartext.
    Http,
    /// wrk, HTTP/1.1 over TLS (the same ECDSA P-256 certificate for every proxy).
    Https,
    /// h2load, HTTP/2 over TLS: a few connections with many concurrent streams each.
    H2 { connections: usize, streams: usize },
}

fn all_systems() -> Vec<(&'static str, System, bool)> {
    vec![
        ("gateway", System::Gateway, false),
        ("nginx", System::Nginx, false),
        ("haproxy", System::Haproxy, false),
    ]
}

/// A signing key, its public JWK in a file, and a long-lived token for the policy chain.
fn bench_token(dir: &std::path::Path) -> anyhow::Result<(PathBuf, String)> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let der = key.to_pkcs8_der()?;
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "bench",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    });
    let path = dir.join("bench-key.json");
    std::fs::write(&path, jwk.to_string())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("bench".into());
    let claims = serde_json::json!({"sub": "bench-user", "iss": "bench", "aud": "bench", "exp": 4_000_000_000u64});
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )?;
    Ok((path, token))
}

pub(crate) fn run(opts: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        systems::gateway_bin().exists(),
        "no gateway binary next to this one: build it with this binary's profile \
         (`cargo build --profile dist --workspace --bins` for what ships)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let upstreams: Vec<tests::upstream::Upstream> = rt.block_on(async {
        let mut list = Vec::new();
        for name in ["u1", "u2", "u3"] {
            list.push(tests::upstream::Upstream::spawn(name).await);
        }
        list
    });
    let work = tempfile::tempdir()?;
    let (jwk_file, token) = bench_token(work.path())?;
    let certificate = tests::certs::self_signed(
        work.path(),
        "bench",
        &["localhost"],
        tests::certs::KeyKind::EcdsaP256,
    );
    let policy = Policy { jwk_file };

    let mut scenarios = vec![Scenario {
        name: "passthrough",
        threads: 1,
        upstreams: 1,
        systems: all_systems(),
        headers: Vec::new(),
        transport: Transport::Http,
        path: "/bench",
        compression: None,
    }];
    let mut policy_systems = vec![("gateway", System::Gateway, true)];
    policy_systems.push(("gateway_passthrough", System::Gateway, false));
    scenarios.push(Scenario {
        name: "policy_chain",
        threads: 1,
        upstreams: 1,
        systems: policy_systems,
        headers: vec![format!("Authorization: Bearer {token}")],
        transport: Transport::Http,
        path: "/bench",
        compression: None,
    });
    // Compression of a 20 KiB JSON answer: the same answer uncompressed, gzip at level 5 in
    // both proxies, and zstd (level 3) in the gateway (Debian's nginx has no zstd module).
    let two = || {
        vec![
            ("gateway", System::Gateway, false),
            ("nginx", System::Nginx, false),
        ]
    };
    for (name, systems, coding) in [
        ("json_20k_identity", two(), None),
        ("json_20k_gzip", two(), Some("gzip")),
        (
            "json_20k_zstd",
            vec![("gateway", System::Gateway, false)],
            Some("zstd"),
        ),
    ] {
        scenarios.push(Scenario {
            name,
            threads: 1,
            upstreams: 1,
            systems,
            headers: coding
                .map(|c| vec![format!("Accept-Encoding: {c}")])
                .unwrap_or_default(),
            transport: Transport::Http,
            path: JSON_20K,
            compression: coding,
        });
    }
    // HTTPS: keep-alive over TLS, a new TLS connection (a full ECDSA P-256 handshake, wrk
    // does not resume sessions) per request, and HTTP/2 with many streams per connection.
    let https = [
        ("tls_passthrough", Vec::new(), Transport::Https),
        (
            "tls_new_connection_per_request",
            vec!["Connection: close".to_owned()],
            Transport::Https,
        ),
        (
            "h2_4x32_streams",
            Vec::new(),
            Transport::H2 {
                connections: 4,
                streams: 32,
            },
        ),
    ];
    for (name, headers, transport) in https {
        scenarios.push(Scenario {
            name,
            threads: 1,
            upstreams: 1,
            systems: all_systems(),
            headers,
            transport,
            path: "/bench",
            compression: None,
        });
    }
    if !opts.smoke {
        scenarios.push(Scenario {
            name: "passthrough",
            threads: 2,
            upstreams: 1,
            systems: all_systems(),
            headers: Vec::new(),
            transport: Transport::Http,
            path: "/bench",
            compression: None,
        });
        scenarios.push(Scenario {
            name: "three_upstreams",
            threads: 1,
            upstreams: 3,
            systems: all_systems(),
            headers: Vec::new(),
            transport: Transport::Http,
            path: "/bench",
            compression: None,
        });
        scenarios.push(Scenario {
            name: "new_connection_per_request",
            threads: 1,
            upstreams: 1,
            systems: all_systems(),
            headers: vec!["Connection: close".to_owned()],
            transport: Transport::Http,
            path: "/bench",
            compression: None,
        });
    }

    let mut samples: Vec<Row> = Vec::new();
    for sc in &scenarios {
        let addrs: Vec<SocketAddr> = upstreams[..sc.upstreams].iter().map(|u| u.addr).collect();
        for round in 0..opts.rounds {
            for (label, system, with_policy) in &sc.systems {
                let p = with_policy.then_some(&policy);
                let tls = (sc.transport != Transport::Http).then_some(&certificate);
                let running =
                    systems::start_with(*system, sc.threads, &addrs, p, tls, sc.compression)?;
                if let Some(coding) = sc.compression {
                    check_coding(&running, sc.path, coding)?;
                }
                let row = measure_once(sc, label, &running, &upstreams, opts, work.path())?;
                eprintln!(
                    "{} t{} round {} {:<20} {:>9.0} req/s  p99 {:>6.2} ms  reuse {:.4}",
                    sc.name,
                    sc.threads,
                    round + 1,
                    label,
                    row.rps,
                    row.p99_ms,
                    row.upstream_reuse
                );
                samples.push(row);
            }
        }
    }
    let counts: &[usize] = if opts.smoke { &[100] } else { &[1000, 10_000] };
    for &count in counts {
        for (label, system, _) in all_systems() {
            let (rss, held) = idle_rss(system, count, upstreams[0].addr)?;
            eprintln!(
                "idle_connections {count:>6} {label:<8} {rss:.1} MiB ({held} connections held)"
            );
            samples.push(Row {
                scenario: format!("idle_connections_{count}"),
                system: label.to_owned(),
                threads: 1,
                rss_mb: rss,
                // For this scenario, `requests` is the number of connections held open.
                requests: held,
                ..Row::default()
            });
        }
    }
    let rows = report::medians(&samples);
    let mut settings = serde_json::json!({
        "duration_s": opts.duration, "rounds": opts.rounds,
        "connections": opts.connections, "smoke": opts.smoke,
    });
    if !opts.smoke {
        settings["instructions"] = instructions()?;
    }
    report::write(&opts.out, "proxy", &rows, settings)?;
    eprintln!(
        "bench: {} measurements, results in {}",
        samples.len(),
        opts.out.display()
    );
    Ok(())
}

fn measure_once(
    sc: &Scenario,
    label: &str,
    running: &systems::Running,
    upstreams: &[tests::upstream::Upstream],
    opts: &Options,
    work: &std::path::Path,
) -> anyhow::Result<Row> {
    let scheme = if sc.transport == Transport::Http {
        "http"
    } else {
        "https"
    };
    let url = format!("{scheme}://{}{}", running.addr, sc.path);
    let load = |seconds| match sc.transport {
        Transport::Http | Transport::Https => {
            wrk(work, &url, opts.connections, seconds, &sc.headers)
        }
        Transport::H2 {
            connections,
            streams,
        } => h2load(&url, connections, streams, seconds),
    };
    // Warm-up: fill connection pools and caches before measuring.
    load(1)?;
    let pids = process_tree(running.pid);
    let opened = || {
        upstreams
            .iter()
            .map(|u| u.state.connections.load(SeqCst))
            .sum::<usize>()
    };
    let (cpu0, conn0) = (cpu_seconds(&pids), opened());
    let r = load(opts.duration)?;
    let (cpu1, conn1) = (cpu_seconds(&pids), opened());
    let requests = r.requests.max(1) as f64;
    Ok(Row {
        scenario: sc.name.to_owned(),
        system: label.to_owned(),
        threads: sc.threads,
        rps: r.requests as f64 / r.seconds.max(1e-9),
        p50_ms: r.p50_ms,
        p99_ms: r.p99_ms,
        p999_ms: r.p999_ms,
        cpu_s_per_100k: (cpu1 - cpu0) / requests * 100_000.0,
        rss_mb: memory_mb(&pids, "VmHWM"),
        upstream_reuse: (1.0 - (conn1 - conn0) as f64 / requests).max(0.0),
        requests: r.requests,
        errors: r.errors,
    })
}

/// A compression scenario measures compressed answers: check that `coding` comes back.
fn check_coding(running: &systems::Running, path: &str, coding: &str) -> anyhow::Result<()> {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "-H"])
        .arg(format!("Accept-Encoding: {coding}"))
        .arg(format!("http://{}{path}", running.addr))
        .output()?;
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    anyhow::ensure!(
        head.contains(&format!("content-encoding: {coding}")),
        "expected a {coding} answer, got:\n{head}"
    );
    Ok(())
}

/// Memory of `system` holding `count` idle keep-alive client connections.
/// Returns the memory and how many connections the proxy actually accepted.
fn idle_rss(system: System, count: usize, upstream: SocketAddr) -> anyhow::Result<(f64, u64)> {
    let running = systems::start(system, 1, &[upstream], None, None)?;
    let exe = std::env::current_exe()?;
    let mut client = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 70000 2>/dev/null || ulimit -n 20000; exec {} idle-client --target {} --count {count} --hold-secs 30",
                exe.display(),
                running.addr
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = client.stdout.take().expect("piped");
    let mut line = String::new();
    use std::io::Read as _;
    let mut byte = [0u8; 1];
    while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    let held: u64 = line
        .strip_prefix("READY ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("idle client failed: {line:?}"))?;
    std::thread::sleep(Duration::from_secs(1));
    let rss = memory_mb(&process_tree(running.pid), "VmRSS");
    let _ = client.kill();
    let _ = client.wait();
    Ok((rss, held))
}

/// User-space instructions per proxied request of the gateway and of nginx, counted by
/// callgrind (`bench/callgrind.sh --compare`, 15 s of load each): the figure that does not
/// move with the machine's noise.
fn instructions() -> anyhow::Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("callgrind.sh");
    eprintln!(
        "instructions per request: {} --compare (about a minute)",
        script.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .arg("--compare")
        .arg(systems::gateway_bin())
        .arg("15")
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "{} failed", script.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |proxy: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(2) == Some(proxy))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
    };
    let (Some(gateway), Some(nginx)) = (count("gateway"), count("nginx")) else {
        anyhow::bail!("unexpected output of {}: {text}", script.display());
    };
    Ok(serde_json::json!({ "gateway": gateway, "nginx": nginx }))
}
