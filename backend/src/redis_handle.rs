//! A Redis connection that is made lazily and re-made after failures, with a deadline on
//! every command, so that Redis being down slows nothing down and breaks nothing it need not.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError, RedisResult};

#[derive(Clone)]
pub struct RedisHandle {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// The shared auto-reconnecting connection, once one could be made.
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// When the last connection attempt started, to try at most every 250 ms.
    last_attempt: Mutex<Option<Instant>>,
    timeout: Duration,
}

fn timed_out() -> RedisError {
    RedisError::from((ErrorKind::IoError, "Redis did not answer in time"))
}

impl RedisHandle {
    pub fn new(url: &str, timeout: Duration) -> RedisResult<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                client: redis::Client::open(url)?,
                conn: tokio::sync::Mutex::new(None),
                last_attempt: Mutex::new(None),
                timeout,
            }),
        })
    }

    /// The client, for dedicated connections (blocking stream reads must not share one).
    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    async fn connection(&self) -> RedisResult<ConnectionManager> {
        let mut conn = self.inner.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        {
            let mut last = self
                .inner
                .last_attempt
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_millis(250)) {
                return Err(RedisError::from((
                    ErrorKind::IoError,
                    "Redis is unreachable",
                )));
            }
            *last = Some(Instant::now());
        }
        let made = tokio::time::timeout(
            self.inner.timeout,
            ConnectionManager::new(self.inner.client.clone()),
        )
        .await
        .map_err(|_| timed_out())??;
        *conn = Some(made.clone());
        Ok(made)
    }

    /// Run `f` on the shared connection with the handle's deadline.
    pub async fn run<T, F, Fut>(&self, f: F) -> RedisResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.connection().await?;
        let result = tokio::time::timeout(self.inner.timeout, f(conn))
            .await
            .map_err(|_| timed_out())
            .and_then(|r| r);
        if let Err(e) = &result {
            // A connection-level failure: start over with a fresh connection next time
            // rather than waiting out the manager's own reconnect backoff.
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
            {
                *self.inner.conn.lock().await = None;
            }
        }
        result
    }
}
