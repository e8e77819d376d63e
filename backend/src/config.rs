//! Settings from the environment (12-factor); `backend --help` lists every variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about = "Todo API: hyper, PostgreSQL (sqlx), Redis cache and Redis-stream job queue"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// Parse the command line. `keygen` and `openapi` need no settings, so they are
    /// recognised first.
    pub fn parse_args() -> Result<Self, Standalone> {
        match std::env::args().nth(1).as_deref() {
            Some("keygen") => Err(Standalone::Keygen),
            Some("openapi") => Err(Standalone::OpenApi),
            _ => Ok(<Self as Parser>::parse()),
        }
    }
}

/// The subcommands that need no settings: they print something and exit.
#[derive(Debug, Clone, Copy)]
pub enum Standalone {
    Keygen,
    OpenApi,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// The HTTP API and its job workers (the default).
    Serve,
    /// Job workers only, no HTTP listener.
    Worker,
    /// Print a new Ed25519 signing key (PKCS#8 PEM) for JWT_PRIVATE_KEY_FILE, and exit.
    Keygen,
    /// Print the API's OpenAPI document (backend/openapi.json is this output), and exit.
    Openapi,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Redis URL for the cache and the job queue.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// PEM private key (Ed25519 or P-256, PKCS#8) that signs access tokens.
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: PathBuf,
    #[arg(long, env = "JWT_ISSUER", default_value = "todo-backend")]
    pub jwt_issuer: String,
    #[arg(long, env = "JWT_AUDIENCE", default_value = "todo-api")]
    pub jwt_audience: String,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub token_ttl_seconds: u64,
    /// Take the user from the gateway's X-User-Id header instead of verifying tokens here, on
    /// requests that also carry the shared secret of GATEWAY_IDENTITY_SECRET_FILE (in
    /// GATEWAY_IDENTITY_SECRET_HEADER); others must send a valid bearer token.
    #[arg(long, env = "TRUST_GATEWAY_IDENTITY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_gateway_identity: bool,
    /// File holding the secret the gateway sends to this service (its pool's
    /// `forward_secret`); required with TRUST_GATEWAY_IDENTITY=true.
    #[arg(long, env = "GATEWAY_IDENTITY_SECRET_FILE")]
    pub gateway_identity_secret_file: Option<PathBuf>,
    /// The header that carries that secret (the gateway pool's `forward_secret.header`).
    #[arg(
        long,
        env = "GATEWAY_IDENTITY_SECRET_HEADER",
        default_value = "x-gateway-secret"
    )]
    pub gateway_identity_secret_header: String,
    /// Largest PostgreSQL connection pool.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 20)]
    pub db_pool_size: u32,
    /// How long a cached first page of todos lives, in seconds; 0 turns the cache off.
    #[arg(long, env = "CACHE_TTL_SECONDS", default_value_t = 300)]
    pub cache_ttl_seconds: u64,
    /// Job workers per process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,
    /// Most jobs a worker takes from the stream and runs together (one claim, one insert,
    /// one acknowledgement for all of them).
    #[arg(long, env = "JOB_BATCH_SIZE", default_value_t = 64)]
    pub job_batch_size: usize,
    /// Name in X-Instance and in queue consumer names (default: the host name).
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Prefix of every Redis key this service writes.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "todo:")]
    pub redis_key_prefix: String,
    /// A job delivered but not acknowledged for this long is taken over by another worker.
    #[arg(long, env = "JOB_VISIBILITY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub job_visibility_timeout_seconds: u64,
    /// Attempts before a job moves to the dead-letter stream.
    #[arg(long, env = "JOB_MAX_ATTEMPTS", default_value_t = 5)]
    pub job_max_attempts: u32,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Password hashes and verifications run at once (default: one per core); more wait in a
    /// short queue, and past that get 503 with Retry-After.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,
    /// Longest time a client may take to send a request header, in seconds. hyper also
    /// applies it to idle keep-alive connections, so keep it above the gateway's
    /// `timeouts.idle` for this pool (55 s in gateway.yaml).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 65)]
    pub header_read_timeout_seconds: u64,
    /// Entries kept in the dead-letter stream (older ones are trimmed).
    #[arg(long, env = "DEAD_LETTER_MAX_LEN", default_value_t = 10_000)]
    pub dead_letter_max_len: usize,
    /// How often acknowledged entries are trimmed from the job stream, in seconds.
    #[arg(long, env = "STREAM_TRIM_INTERVAL_SECONDS", default_value_t = 10)]
    pub stream_trim_interval_seconds: u64,
}

impl Settings {
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "backend".to_owned())
        })
    }

    /// Concurrent password hashes: the setting, else one per core.
    pub fn password_hash_concurrency(&self) -> usize {
        self.password_hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_seconds)
    }

    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.job_visibility_timeout_seconds)
    }

    /// The job stream, its consumer group and its dead-letter stream.
    pub fn stream(&self) -> String {
        format!("{}jobs", self.redis_key_prefix)
    }

    pub fn dead_letter_stream(&self) -> String {
        format!("{}jobs:dead", self.redis_key_prefix)
    }
}
