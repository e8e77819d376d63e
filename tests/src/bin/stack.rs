//! `stack`: the whole stack without Docker, for development. Starts an ephemeral PostgreSQL
//! and Redis, N backend replicas and the gateway with the root `gateway.yaml` (listener
//! addresses, the backend pool's endpoints and the Redis URL replaced), follows edits of
//! that file, and stops everything it started on Ctrl-C or SIGTERM.
//!
//! How to run:
//! ```text
//! cargo run --release --bin stack -- --replicas 3 --port 8080 --https-port 8443
//! curl -s -XPOST localhost:8080/auth/register -H 'content-type: application/json' \
//!   -d '{"username":"alice","password":"correct horse"}'
//! curl -sk --http2 https://localhost:8443/.well-known/jwks.json   # self-signed localhost
//! curl -s localhost:9091/metrics | head
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tests::stack::{Stack, StackOptions};

#[derive(Parser)]
#[command(about = "Run PostgreSQL, Redis, N backend replicas and the gateway on loopback")]
struct Cli {
    /// Backend replicas behind the gateway.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// The gateway's HTTP port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The gateway's admin port (`/metrics`, `/healthz`, `/readyz`) on 127.0.0.1.
    #[arg(long, default_value_t = 9091)]
    admin_port: u16,
    /// The gateway's HTTPS port on 127.0.0.1, serving the config's certificates (the root
    /// `gateway.yaml`: a self-signed one for localhost).
    #[arg(long, default_value_t = 8443)]
    https_port: u16,
    /// Where `tls.self_signed` keeps the certificate it makes on first start, reused by
    /// later runs (so a browser's exception for it lasts).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("todo-stack-tls"))]
    tls_dir: PathBuf,
    /// The gateway config; edits are applied while the stack runs.
    #[arg(long, default_value = "gateway.yaml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = StackOptions {
        replicas: cli.replicas,
        port: cli.port,
        admin_port: cli.admin_port,
        https_port: cli.https_port,
        tls_dir: Some(cli.tls_dir),
        config: cli.config,
        backend_env: Vec::new(),
    };
    let stack = match Stack::start(&options).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("stack: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("gateway ready at http://{}", stack.http);
    if let Some(https) = stack.https {
        println!("and at https://{https} (curl -k: a self-signed certificate)");
    }
    println!("metrics at http://{}/metrics", stack.admin);
    for (i, addr) in stack.backends.iter().enumerate() {
        println!("backend-{} at http://{addr}", i + 1);
    }
    println!("logs in {}", stack.log_dir().display());
    println!(
        "edits of {} are applied live; Ctrl-C stops everything",
        options.config.display()
    );
    stack.follow_config(shutdown_signal()).await;
    println!("stopping");
    stack.shutdown().await;
    ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
