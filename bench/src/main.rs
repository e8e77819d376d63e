//! Load benchmarks: the gateway side by side with nginx and HAProxy, in one run, on one
//! machine, with interleaved repetitions (A B C A B C ...), reporting medians.
//!
//! How to run (installs nothing; `scripts/install-deps.sh test` brings nginx-light, haproxy, wrk):
//! ```text
//! cargo build --profile dist --workspace --bins && target/dist/bench proxy   # what ships
//! target/dist/bench e2e           # the stack end to end (gateway and backend beside it)
//! cargo run --bin bench -- proxy --smoke --out /tmp/bench-smoke    # seconds, numbers not kept
//! ```
//! Results go to `bench/results.json` and `bench/RESULTS.md` (or `--out DIR`); each command
//! replaces its own rows and keeps the other's.

mod e2e;
mod idle;
mod measure;
mod proxy;
mod report;
mod systems;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Gateway benchmarks against nginx and HAProxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How long and how hard each benchmark measures, and where its results go.
#[derive(clap::Args)]
struct RunArgs {
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Interleaved repetitions per scenario.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// A seconds-long run of the smallest scenarios, to keep the harness working.
    #[arg(long)]
    smoke: bool,
    /// Where results.json and RESULTS.md go.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// The proxy benchmark: passthrough, policy_chain, three_upstreams,
    /// new_connection_per_request, idle_connections.
    Proxy {
        #[command(flatten)]
        run: RunArgs,
    },
    /// The stack end to end through the gateway: GET /todos with and without the cache,
    /// POST /todos accept rate, job drain rate.
    E2e {
        /// Backend replicas.
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Internal: hold N idle keep-alive connections to a proxy (run with a raised fd limit).
    IdleClient {
        #[arg(long)]
        target: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Proxy { run } => proxy::run(&proxy::Options {
            duration: if run.smoke { 1 } else { run.duration },
            rounds: if run.smoke { 1 } else { run.rounds },
            connections: run.connections,
            smoke: run.smoke,
            out: run.out,
        }),
        Command::E2e { replicas, run } => {
            let opts = e2e::Options {
                backlog: if run.smoke { 200 } else { 20_000 },
                replicas: if run.smoke { 1 } else { replicas },
                duration: if run.smoke { 1 } else { run.duration },
                rounds: if run.smoke { 1 } else { run.rounds },
                connections: if run.smoke { 8 } else { run.connections },
            };
            let rows = report::medians(&e2e::run(&opts)?);
            let settings = serde_json::json!({
                "replicas": opts.replicas, "duration_s": opts.duration,
                "rounds": opts.rounds, "connections": opts.connections, "smoke": run.smoke,
                "backlog_jobs": opts.backlog,
            });
            report::write(&run.out, "e2e", &rows, settings)?;
            eprintln!("bench: e2e results in {}", run.out.display());
            Ok(())
        }
        Command::IdleClient {
            target,
            count,
            hold_secs,
        } => idle::client(&target, count, hold_secs),
    }
}
