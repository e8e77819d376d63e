//! Wiring: a validated [`Config`] becomes a running Pingora server.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::{AdminApp, Sampler, Traffic};
use crate::config::Config;
use crate::error::StartupError;
use crate::metrics;
use crate::proxy::connection::Connections;
use crate::proxy::Gateway;
use crate::reload::{publish_runtime_info, ReloadHistory, Reloader};
use crate::runtime::Runtime;
use crate::upstream::discovery;

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

/// Build the server for `config` and run it until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), StartupError> {
    metrics::init();
    let config = Arc::new(config);
    let resolver =
        Arc::new(discovery::resolver(&config.dns_nameservers).map_err(StartupError::Resolver)?);
    let started = (std::time::SystemTime::now(), std::time::Instant::now());
    let initial = Runtime::build(Arc::clone(&config), &resolver, None);
    publish_runtime_info(&initial);
    let history = Arc::new(ReloadHistory::default());
    history.record("started", config.source_hash.clone(), Vec::new());
    let traffic = Arc::new(Traffic::default());
    let runtime = Arc::new(ArcSwap::from_pointee(initial));

    let mut server = Server::new_with_opt_and_conf(None, pingora_server_conf(&config));
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy(
        &server.configuration,
        Gateway {
            runtime: Arc::clone(&runtime),
        },
    );
    // An HTTP/2 connection with no stream open closes after `limits.idle_timeout`, as an
    // idle HTTP/1 connection does (Pingora's default is never). Set at start: a reload does
    // not change it for HTTP/2.
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(config.limits.idle_timeout);
    proxy.server_options = Some(options);
    let connections = Connections::new(proxy, Arc::clone(&runtime));
    // No per-connection read buffer by default (`server.downstream_read_buffer`): idle
    // keep-alive clients are the common case, and the buffer would be most of their memory.
    let listener = |addr: std::net::SocketAddr| {
        ListenerConfig::tcp(addr.to_string())
            .l4_buffer(L4BufferSettings::default().read(config.server.downstream_read_buffer_bytes))
    };
    // HTTPS is plain TCP to Pingora: the TLS handshake runs in `Connections`, with the
    // certificates of the live runtime (see `tls`).
    let https = config.listeners.https.map(|addr| {
        let mut service = Service::new("gateway-https".to_owned(), connections.https());
        service.add_listener(listener(addr));
        service
    });
    let mut proxy = Service::new("gateway".to_owned(), connections);
    proxy.add_listener(listener(config.listeners.http));

    let mut admin = Service::new(
        "admin".to_owned(),
        HttpServer::new_app(AdminApp {
            runtime: Arc::clone(&runtime),
            history: Arc::clone(&history),
            traffic: Arc::clone(&traffic),
            started,
        }),
    );
    admin.add_tcp(&config.listeners.admin.to_string());

    server.add_service(proxy);
    if let Some(https) = https {
        server.add_service(https);
    }
    server.add_service(admin);
    // The reloader also owns the pools' and the JWKS refresher's timers, starting and stopping
    // them as reloads add and remove pools.
    server.add_service(background_service(
        "config",
        Reloader {
            history,
            path: config.source.clone(),
            runtime: Arc::clone(&runtime),
            resolver,
        },
    ));

    // Samples the request counters for the status page's per-route rates.
    server.add_service(background_service("status", Sampler(traffic)));

    exit_when_drained(&server);
    tracing::info!(
        http = %config.listeners.http, admin = %config.listeners.admin,
        https = config.listeners.https.map(|a| a.to_string()),
        file = %config.source.display(), hash = %config.source_hash, "gateway starting"
    );
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
                crate::telemetry::flush();
                std::process::exit(0);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    });
}
