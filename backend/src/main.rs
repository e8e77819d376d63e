//! The `backend` binary: read settings, start the API and/or workers, stop on SIGTERM.
//!
//! How to run (PostgreSQL and Redis running, a PKCS#8 Ed25519 or P-256 key in key.pem):
//! ```text
//! DATABASE_URL=postgres://localhost/todo REDIS_URL=redis://127.0.0.1 \
//!   JWT_PRIVATE_KEY_FILE=key.pem cargo run --bin backend
//! curl -s -XPOST localhost:8080/auth/register -H 'content-type: application/json' \
//!   -d '{"username":"alice","password":"correct horse"}'
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use backend::config::{Cli, Command, Standalone};
use backend::startup::{build_state, Application};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(Standalone::Keygen) => {
            print!("{}", backend::auth::tokens::generate_ed25519_pem());
            return ExitCode::SUCCESS;
        }
        Err(Standalone::OpenApi) => {
            print!("{}", backend::routes::openapi::render());
            return ExitCode::SUCCESS;
        }
    };
    backend::telemetry::init();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match Application::build(cli.settings).await {
            Ok(app) => {
                tracing::info!(port = app.port(), "backend listening");
                let state = app.state();
                let mut workers = backend::worker::spawn_workers(&state, &stop_rx);
                app.run_until_stopped(shutdown_signal()).await;
                let _ = stop_tx.send(true);
                while workers.join_next().await.is_some() {}
                Ok(())
            }
            Err(e) => Err(e),
        },
        Command::Worker => match build_state(cli.settings).await {
            Ok(state) => {
                let mut workers = backend::worker::spawn_workers(&Arc::clone(&state), &stop_rx);
                shutdown_signal().await;
                let _ = stop_tx.send(true);
                while workers.join_next().await.is_some() {}
                Ok(())
            }
            Err(e) => Err(e),
        },
        Command::Keygen | Command::Openapi => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, error.message = %e, "backend failed to start");
            eprintln!("backend: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (Docker's stop) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}
