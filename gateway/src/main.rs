//! The `gateway` binary: parse the command line, load the config, run.
//!
//! How to run:
//! ```text
//! cargo run --release --bin gateway -- --config gateway.yaml
//! cargo run --release --bin gateway -- check gateway.yaml
//! cargo run --release --bin gateway -- explain --config gateway.yaml GET http://localhost/todos -H 'Authorization: Bearer ...'
//! cargo run --release --bin gateway -- schema > config/gateway.schema.json
//! cargo run --release --bin gateway -- schema status > config/status.schema.json
//! curl -i http://127.0.0.1:80/todos
//! curl -s http://127.0.0.1:9091/metrics
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the proxy allocates and frees small buffers on every
/// request, and glibc's allocator was 17% of CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Reverse proxy and API gateway on Pingora")]
struct Cli {
    /// The gateway config to run with (or to explain a request with).
    #[arg(
        long,
        short,
        default_value = "gateway.yaml",
        env = "GATEWAY_CONFIG",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file, print a summary, and exit (1 on any error).
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Explain what the gateway would do with a request, without sending it: the route (and
    /// near misses), each policy in order, the upstream request or the gateway's own answer.
    /// Exit status 0: it would be proxied; 1: the gateway answers it; 2: a usage or config
    /// error.
    Explain {
        /// The method, e.g. GET.
        method: String,
        /// The URL as a client would send it, e.g. https://api.example.com/todos/42.
        url: String,
        /// A request header, `Name: value`; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The client's address, for ip_allow/ip_deny and rate-limit keys.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: std::net::IpAddr,
        /// A running gateway's admin listener (http://127.0.0.1:9091): show the live state
        /// of the pool's endpoints.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Print a JSON Schema: of gateway.yaml (config/gateway.schema.json), or with `status`
    /// of the admin listener's /status.json (config/status.schema.json).
    Schema {
        /// `config` (the default) or `status`.
        #[arg(default_value = "config", value_parser = ["config", "status"])]
        of: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema { of }) = &cli.command {
        match of.as_str() {
            "status" => print!("{}", gateway::status_schema()),
            _ => print!("{}", gateway::config::schema()),
        }
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Explain {
        method,
        url,
        headers,
        client_ip,
        admin,
    }) = &cli.command
    {
        let status = gateway::explain::run(
            &cli.config,
            method,
            url,
            headers,
            *client_ip,
            admin.as_deref(),
        );
        return ExitCode::from(status);
    }
    if let Some(Command::Check { file }) = cli.command {
        return match gateway::config::load(&file) {
            Ok(config) => {
                print!("{}", config.summary());
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", file.display(), errors.errors.len());
                ExitCode::FAILURE
            }
        };
    }

    gateway::telemetry::init();
    let config = match gateway::config::load(&cli.config) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    match gateway::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
