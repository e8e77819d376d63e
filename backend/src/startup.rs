//! Wiring: settings -> pools, keys, cache, queue -> a running HTTP server and workers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;

use crate::auth::password::Hashing;
use crate::auth::tokens::{KeyError, TokenKeys};
use crate::config::Settings;
use crate::jobs::queue::Queue;
use crate::metrics::Metrics;
use crate::redis_handle::RedisHandle;
use crate::state::AppState;
use crate::todos::cache::TodoCache;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid DATABASE_URL")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("PostgreSQL did not become reachable to run migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("invalid REDIS_URL")]
    RedisUrl(#[source] redis::RedisError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
    #[error("TRUST_GATEWAY_IDENTITY=true needs GATEWAY_IDENTITY_SECRET_FILE: without a shared secret any client that can reach this port could claim to be any user")]
    IdentitySecretMissing,
    #[error("cannot read GATEWAY_IDENTITY_SECRET_FILE {path}")]
    IdentitySecret {
        path: String,
        source: std::io::Error,
    },
    #[error("GATEWAY_IDENTITY_SECRET_FILE {path} holds fewer than 16 bytes")]
    IdentitySecretTooShort { path: String },
}

/// Connect everything and run migrations (under PostgreSQL's advisory lock, so replicas
/// starting together do not race). Waits up to 30 s for PostgreSQL.
pub async fn build_state(settings: Settings) -> Result<Arc<AppState>, StartupError> {
    let tokens = TokenKeys::load(
        &settings.jwt_private_key_file,
        &settings.jwt_issuer,
        &settings.jwt_audience,
        Duration::from_secs(settings.token_ttl_seconds),
    )?;
    let gateway_secret = match (
        settings.trust_gateway_identity,
        &settings.gateway_identity_secret_file,
    ) {
        (false, _) => None,
        (true, None) => return Err(StartupError::IdentitySecretMissing),
        (true, Some(path)) => {
            let path_text = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|source| StartupError::IdentitySecret {
                path: path_text.clone(),
                source,
            })?;
            let secret = bytes.trim_ascii().to_vec();
            if secret.len() < 16 {
                return Err(StartupError::IdentitySecretTooShort { path: path_text });
            }
            Some(secret)
        }
    };
    let options: PgConnectOptions = settings
        .database_url
        .parse()
        .map_err(StartupError::DatabaseUrl)?;
    let db = PgPoolOptions::new()
        .max_connections(settings.db_pool_size)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options);
    let mut attempt = 0;
    loop {
        match sqlx::migrate!("./migrations").run(&db).await {
            Ok(()) => break,
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "migrations could not run yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(StartupError::Migrate(e)),
        }
    }
    let redis = RedisHandle::new(&settings.redis_url, Duration::from_secs(1))
        .map_err(StartupError::RedisUrl)?;
    let cache = TodoCache {
        redis: redis.clone(),
        prefix: settings.redis_key_prefix.clone(),
        ttl: settings.cache_ttl(),
    };
    let queue = Queue {
        redis: redis.clone(),
        stream: settings.stream(),
        dead_letter: settings.dead_letter_stream(),
        dead_letter_max_len: settings.dead_letter_max_len,
    };
    if let Err(e) = queue.ensure_group().await {
        tracing::warn!(error = %e, "job stream not ready yet; workers will retry");
    }
    let instance = settings.instance_id();
    let metrics = Metrics::new().map_err(StartupError::Metrics)?;
    let hashing = Hashing::new(
        settings.password_hash_concurrency(),
        metrics.password_hashes.clone(),
    );
    Ok(Arc::new(AppState {
        settings,
        db,
        redis,
        tokens,
        hashing,
        gateway_secret,
        cache,
        queue,
        instance,
        metrics,
    }))
}

/// The HTTP API, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let addr = std::net::SocketAddr::new(settings.bind, settings.port);
        let state = build_state(settings).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Self { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serve until `shutdown` completes, then stop accepting and give in-flight requests
    /// up to 8 s (Docker stops a container after 10).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = http1::Builder::new();
        // A client that trickles its header (slowloris) is cut off; hyper also counts idle
        // keep-alive time against this, hence a default above the gateway's idle timeout.
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(
                self.state.settings.header_read_timeout_seconds.max(1),
            ));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let state = Arc::clone(&self.state);
                    let service = service_fn(move |req| crate::routes::serve(Arc::clone(&state), req));
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(self.listener);
        if tokio::time::timeout(Duration::from_secs(8), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within 8 s");
        }
    }
}
