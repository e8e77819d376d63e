//! Wiring: a validated [`Config`] becomes a running Pingora server.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::config::Config;
use crate::error::StartupError;
use crate::metrics;
use crate::policy::jwt::Verifier;
use crate::proxy::discovery;
use crate::proxy::upstream::Pool;
use crate::proxy::{Gateway, Runtime};

/// Pingora's process settings, derived from our `server:` section.
pub(crate) fn pingora_server_conf(config: &Config) -> ServerConf {
    let grace = config.server.shutdown_grace.as_secs().max(1);
    ServerConf {
        threads: config.server.threads,
        // Pingora sleeps the whole grace period on SIGTERM; `exit_when_drained` cuts it
        // short once nothing is in flight.
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        // Our retry policy bounds attempts per pool (at most 10 retries); this is only the
        // outer guard.
        max_retries: 16,
        ..ServerConf::default()
    }
}

/// Runs every pool's discovery and health-check loop, and the JWKS refresh.
struct Timers {
    pools: Vec<Arc<Pool>>,
    verifier: Option<Arc<Verifier>>,
}

#[async_trait]
impl BackgroundService for Timers {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks: Vec<_> = self
            .pools
            .iter()
            .map(|pool| tokio::spawn(Arc::clone(pool).run(stop_rx.clone())))
            .collect();
        if let Some(verifier) = &self.verifier {
            tasks.push(tokio::spawn(Arc::clone(verifier).run(stop_rx.clone())));
        }
        let _ = shutdown.changed().await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Build the server for `config` and run it until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), StartupError> {
    metrics::init();
    let config = Arc::new(config);
    let resolver =
        Arc::new(discovery::resolver(&config.dns_nameservers).map_err(StartupError::Resolver)?);
    let pools: Vec<Arc<Pool>> = config
        .pools
        .iter()
        .map(|p| Arc::new(Pool::new(p.clone(), Arc::clone(&resolver))))
        .collect();
    metrics::CONFIG_INFO
        .with_label_values(&[
            &config.source.display().to_string(),
            &config.routes.len().to_string(),
            &config.pools.len().to_string(),
        ])
        .set(1);
    let initial = Runtime::new(Arc::clone(&config), pools.clone()).map_err(StartupError::Jwt)?;
    let verifier = initial.verifier.clone();
    let runtime = Arc::new(ArcSwap::from_pointee(initial));

    let mut server = Server::new_with_opt_and_conf(None, pingora_server_conf(&config));
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway {
            runtime: Arc::clone(&runtime),
        },
        "gateway",
    );
    proxy.add_tcp(&config.listeners.http.to_string());

    let mut admin = Service::new(
        "admin".to_owned(),
        HttpServer::new_app(AdminApp {
            runtime: Arc::clone(&runtime),
        }),
    );
    admin.add_tcp(&config.listeners.admin.to_string());

    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(background_service("timers", Timers { pools, verifier }));

    exit_when_drained(&server);
    tracing::info!(http = %config.listeners.http, admin = %config.listeners.admin, "gateway starting");
    server.run(RunArgs::default());
    Ok(())
}

/// During the shutdown grace period, exit as soon as no request is in flight instead of
/// sleeping out the whole period (Pingora's grace period is a fixed sleep).
fn exit_when_drained(server: &Server) {
    let mut phases = server.watch_execution_phase();
    std::thread::spawn(move || loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => {
                let mut idle_polls = 0;
                // Two quiet polls in a row, so a request accepted just before the listener
                // closed has time to register.
                while idle_polls < 2 {
                    std::thread::sleep(Duration::from_millis(50));
                    if metrics::IN_FLIGHT.get() == 0 {
                        idle_polls += 1;
                    } else {
                        idle_polls = 0;
                    }
                }
                tracing::info!("drained: no request in flight, exiting");
                std::process::exit(0);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    });
}
