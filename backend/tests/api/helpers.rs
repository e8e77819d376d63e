//! `spawn_app()`: every test gets its own database (in a PostgreSQL started once per test
//! process), its own Redis key prefix and stream, and a backend on a random port.
//!
//! PostgreSQL and Redis are real servers started by the harness on free ports. A watchdog
//! shell stops each one (and removes its files) when the test process exits, since Rust
//! never runs destructors of statics.

use std::sync::{Arc, OnceLock};

use backend::config::Settings;
use backend::startup::Application;
use backend::state::AppState;
use serde_json::Value;
use tests::api::{TodoApi, User};
pub(crate) use tests::postgres::Postgres;
pub(crate) use tests::redis::RedisServer;
use uuid::Uuid;

fn shared_postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start(true))
}

pub(crate) async fn create_database(pg_admin_url: &str, name: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(pg_admin_url)
        .await
        .expect("connect to postgres");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
}

/// The world of one test.
pub(crate) struct TestApp {
    /// The todo API client shared with the harness, the compose test and the benchmark.
    pub(crate) api: TodoApi,
    pub(crate) state: Arc<AppState>,
    pub(crate) settings: Settings,
    /// Holds the signing key file.
    pub(crate) key_dir: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Knobs a test may turn before the app starts.
pub(crate) struct Options {
    pub(crate) trust_gateway_identity: bool,
    pub(crate) database_url: Option<String>,
    pub(crate) redis_url: Option<String>,
    pub(crate) visibility_timeout_seconds: u64,
    pub(crate) cache_ttl_seconds: u64,
    /// With `trust_gateway_identity`: the shared secret's file contents.
    pub(crate) gateway_secret: Option<String>,
    pub(crate) password_hash_concurrency: Option<usize>,
    pub(crate) header_read_timeout_seconds: u64,
    pub(crate) dead_letter_max_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            trust_gateway_identity: false,
            database_url: None,
            redis_url: None,
            visibility_timeout_seconds: 30,
            cache_ttl_seconds: 300,
            gateway_secret: None,
            password_hash_concurrency: None,
            header_read_timeout_seconds: 65,
            dead_letter_max_len: 10_000,
        }
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub(crate) async fn spawn_app_with(options: Options) -> TestApp {
    let (settings, key_dir) = test_settings(options).await;
    let app = Application::build(settings.clone())
        .await
        .expect("backend starts");
    let api = TodoApi::new(format!("http://127.0.0.1:{}", app.port()));
    let state = app.state();
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.changed().await;
    }));
    TestApp {
        api,
        state,
        settings,
        key_dir,
        stop,
    }
}

/// Settings for one test's world (a fresh database, key prefix and signing key), and the
/// directory that holds its key files.
pub(crate) async fn test_settings(options: Options) -> (Settings, tempfile::TempDir) {
    let database_url = match options.database_url {
        Some(url) => url,
        None => {
            let pg = shared_postgres();
            let name = format!("test_{}", Uuid::new_v4().simple());
            create_database(&pg.url("postgres"), &name).await;
            pg.url(&name)
        }
    };
    let redis_url = options
        .redis_url
        .unwrap_or_else(|| RedisServer::shared().url());
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("signing.pem");
    std::fs::write(&key_file, backend::auth::tokens::generate_ed25519_pem()).unwrap();
    let secret_file = options.gateway_secret.map(|secret| {
        let path = key_dir.path().join("gateway-secret");
        std::fs::write(&path, secret).unwrap();
        path
    });
    let settings = Settings {
        database_url,
        redis_url,
        bind: "127.0.0.1".parse().unwrap(),
        port: 0,
        jwt_private_key_file: key_file,
        jwt_issuer: "todo-backend".into(),
        jwt_audience: "todo-api".into(),
        token_ttl_seconds: 900,
        trust_gateway_identity: options.trust_gateway_identity,
        gateway_identity_secret_file: secret_file,
        gateway_identity_secret_header: "x-gateway-secret".into(),
        db_pool_size: 10,
        cache_ttl_seconds: options.cache_ttl_seconds,
        worker_concurrency: 2,
        job_batch_size: 64,
        instance_id: Some(format!(
            "test-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        )),
        redis_key_prefix: format!("test:{}:", Uuid::new_v4().simple()),
        job_visibility_timeout_seconds: options.visibility_timeout_seconds,
        job_max_attempts: 3,
        max_body_bytes: 64 * 1024,
        password_hash_concurrency: options.password_hash_concurrency,
        header_read_timeout_seconds: options.header_read_timeout_seconds,
        dead_letter_max_len: options.dead_letter_max_len,
        stream_trim_interval_seconds: 10,
    };
    (settings, key_dir)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl TestApp {
    /// Run the worker step on every queued entry until the stream has nothing left.
    pub(crate) async fn drain_jobs(&self) -> usize {
        let queue = &self.state.queue;
        queue.ensure_group().await.unwrap();
        let mut consumer = queue.consumer("test-drain");
        let mut handled = 0;
        loop {
            let batch = consumer
                .read_new(50, 100)
                .await
                .expect("read the job stream");
            if batch.is_empty() {
                return handled;
            }
            backend::worker::handle_all(&self.state, &batch).await;
            handled += batch.len();
        }
    }

    /// Create a todo through the queue and return its id.
    pub(crate) async fn create_todo_done(&self, user: &User, title: &str) -> String {
        let resp = self.api.create_todo(user, title).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let job: Value = resp.json().await.unwrap();
        self.drain_jobs().await;
        let status: Value = self
            .api
            .get(job["status_url"].as_str().unwrap(), user)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["status"], "done", "{status}");
        status["todo_id"].as_str().unwrap().to_owned()
    }

    /// The `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        self.api
            .http()
            .get(self.api.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POST `body` as JSON to `target` exactly as written (HTTP clients resolve `.` and `..`
    /// segments before sending), over a raw connection; returns the status code.
    pub(crate) async fn raw_post(&self, target: &str, body: &Value) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let base = self.api.url("");
        let addr = base.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = body.to_string();
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// A connection of its own to the test's Redis.
    pub(crate) async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        self.state
            .redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Entries in a Redis stream (the job stream or the dead-letter stream).
    pub(crate) async fn stream_len(&self, stream: &str) -> usize {
        let mut conn = self.redis_connection().await;
        redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// The signing key, to mint tokens the service did not issue.
    pub(crate) fn signing_pem(&self) -> String {
        std::fs::read_to_string(self.key_dir.path().join("signing.pem")).unwrap()
    }
}
