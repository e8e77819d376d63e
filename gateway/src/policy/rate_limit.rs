//! Rate limits: GCRA (the token bucket expressed as one "theoretical arrival time" per key).
//!
//! A limit of `rate` per `per` with `burst` lets a key send `burst` requests back to back and
//! then one every `per / rate`; any window of length `per` admits at most `rate + burst`.
//! Example: `rate: 10, per: 1m, burst: 5` allows 5 at once, then one every 6 s.
//!
//! `scope: local` keeps the state in this process (bounded: full buckets are forgotten
//! first). `scope: cluster` keeps it in Redis, decided by one Lua script per request using
//! Redis' clock, so every gateway replica shares one bucket per key.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{LimitScope, RateLimit, RateLimiting};

/// The outcome of one decision, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) allowed: bool,
    /// The bucket size (`burst`).
    pub(crate) limit: u64,
    /// Requests still allowed right now.
    pub(crate) remaining: u64,
    /// Seconds until the bucket is full again.
    pub(crate) reset_secs: u64,
    /// Seconds until the next request is allowed (0 when allowed).
    pub(crate) retry_after_secs: u64,
}

/// GCRA parameters in microseconds.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// Time one request "costs": `per / rate`.
    emission: u64,
    /// How far ahead of now the arrival time may run: `(burst - 1) * emission`.
    tolerance: u64,
    burst: u64,
}

impl Gcra {
    fn new(limit: &RateLimit) -> Self {
        let per = u64::try_from(limit.per.as_micros()).unwrap_or(u64::MAX);
        let emission = (per / limit.rate).max(1);
        Self {
            emission,
            tolerance: emission.saturating_mul(limit.burst.saturating_sub(1)),
            burst: limit.burst,
        }
    }

    /// Decide at `now` given the stored arrival time; returns the decision and the new time.
    fn decide(&self, stored: Option<u64>, now: u64) -> (Decision, u64) {
        let tat = stored.unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            let wait = ahead - self.tolerance;
            let decision = Decision {
                allowed: false,
                limit: self.burst,
                remaining: 0,
                reset_secs: secs_ceil(ahead),
                retry_after_secs: secs_ceil(wait).max(1),
            };
            return (decision, tat);
        }
        let new_tat = tat + self.emission;
        let used = new_tat - now;
        let remaining = (self.tolerance + self.emission).saturating_sub(used) / self.emission;
        let decision = Decision {
            allowed: true,
            limit: self.burst,
            remaining,
            reset_secs: secs_ceil(used),
            retry_after_secs: 0,
        };
        (decision, new_tat)
    }
}

fn secs_ceil(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

/// In-process state for one limit, sharded to keep lock hold times short.
struct LocalBuckets {
    gcra: Gcra,
    shards: Vec<Mutex<HashMap<String, u64>>>,
    max_keys_per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

const SHARDS: usize = 16;

impl LocalBuckets {
    fn new(gcra: Gcra, max_keys: usize) -> Self {
        Self {
            gcra,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_keys_per_shard: (max_keys / SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn decide(&self, key: &str) -> Decision {
        let now = self.now();
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[usize::try_from(hash % SHARDS as u64).unwrap_or(0)];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let (decision, tat) = self.gcra.decide(map.get(key).copied(), now);
        if decision.allowed {
            if map.len() >= self.max_keys_per_shard && !map.contains_key(key) {
                // A key whose arrival time has passed has a full bucket: forgetting it loses
                // nothing. Only a flood of distinct busy keys forgets live state.
                map.retain(|_, tat| *tat > now);
                if map.len() >= self.max_keys_per_shard {
                    map.clear();
                }
            }
            map.insert(key.to_owned(), tat);
        }
        decision
    }
}

/// Shared Redis access for every cluster limit.
pub(crate) struct RedisStore {
    client: redis::Client,
    /// The live connection, re-made after an error (at most once per second).
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    last_connect: Mutex<Option<Instant>>,
    timeout: Duration,
    prefix: String,
    script: redis::Script,
}

/// GCRA in Redis with Redis' own clock, so replicas with skewed clocks agree.
/// KEYS[1]: bucket; ARGV: emission_us, tolerance_us. Returns {allowed, new_or_current_tat - now}.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
-- These settings never put a bucket further ahead than tolerance + emission; state from
-- other settings or a clock step is clamped to that.
if tat - now > tolerance + emission then tat = now + tolerance + emission end
local ahead = tat - now
if ahead > tolerance then
  return {0, ahead}
end
local new_tat = tat + emission
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, new_tat - now}
";

impl RedisStore {
    pub(crate) fn new(settings: &RateLimiting) -> Option<Arc<Self>> {
        let url = settings.redis_url.as_ref()?;
        let client = redis::Client::open(url.as_str()).ok()?;
        // Every kind exists from the start at 0, so a rate over it is a series, not nothing.
        for kind in ["connect", "timeout", "script"] {
            crate::metrics::RATE_LIMIT_REDIS_ERRORS.with_label_values(&[kind]);
        }
        Some(Arc::new(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            last_connect: Mutex::new(None),
            timeout: settings.redis_timeout,
            prefix: settings.key_prefix.clone(),
            script: redis::Script::new(GCRA_SCRIPT),
        }))
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Some(c.clone());
        }
        {
            let mut last = self.last_connect.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
            .await
        {
            Ok(Ok(c)) => {
                *conn = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot connect to Redis for rate limits");
                redis_error("connect");
                None
            }
            Err(_) => {
                tracing::warn!("connecting to Redis for rate limits timed out");
                redis_error("timeout");
                None
            }
        }
    }

    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    /// `None` when Redis could not decide in time.
    async fn decide(&self, gcra: &Gcra, key: &str) -> Option<Decision> {
        let mut conn = self.connection().await?;
        let full_key = format!("{}{key}", self.prefix);
        let mut invocation = self.script.key(full_key);
        invocation.arg(gcra.emission).arg(gcra.tolerance);
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((allowed, ahead))) => {
                let ahead = u64::try_from(ahead).unwrap_or(0);
                Some(if allowed == 1 {
                    Decision {
                        allowed: true,
                        limit: gcra.burst,
                        remaining: (gcra.tolerance + gcra.emission).saturating_sub(ahead)
                            / gcra.emission,
                        reset_secs: secs_ceil(ahead),
                        retry_after_secs: 0,
                    }
                } else {
                    Decision {
                        allowed: false,
                        limit: gcra.burst,
                        remaining: 0,
                        reset_secs: secs_ceil(ahead),
                        retry_after_secs: secs_ceil(ahead - gcra.tolerance).max(1),
                    }
                })
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis rate-limit script failed");
                redis_error("script");
                self.forget_connection().await;
                None
            }
            Err(_) => {
                // A connection that stops answering may be wedged (a half-open TCP
                // connection, a stuck proxy); start over with a fresh one (reconnects are
                // limited to one a second).
                tracing::warn!("Redis rate-limit decision timed out; reconnecting");
                redis_error("timeout");
                self.forget_connection().await;
                None
            }
        }
    }
}

fn redis_error(kind: &str) {
    crate::metrics::RATE_LIMIT_REDIS_ERRORS
        .with_label_values(&[kind])
        .inc();
}

/// One configured limit of one route, with its state.
pub(crate) struct Limiter {
    pub(crate) spec: RateLimit,
    gcra: Gcra,
    /// Local buckets: the whole state for `scope: local`, the fallback for `cluster`.
    local: LocalBuckets,
    redis: Option<Arc<RedisStore>>,
    /// Distinguishes this limit's keys in Redis: route name, position and a hash of the
    /// settings, so a limit changed by a reload starts with fresh buckets (as local limits
    /// do) instead of inheriting state written under other settings.
    redis_scope: String,
}

/// A short, stable (same on every gateway) hash of a limit's settings.
fn settings_hash(spec: &RateLimit) -> String {
    use sha2::Digest as _;
    let text = format!("{}/{}us/{}", spec.rate, spec.per.as_micros(), spec.burst);
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a limiter answered.
pub(crate) enum Verdict {
    Decided(Decision),
    /// A cluster limit with `fail_open: false` could not reach Redis.
    Unavailable,
}

impl Limiter {
    pub(crate) fn new(
        spec: &RateLimit,
        settings: &RateLimiting,
        redis: Option<Arc<RedisStore>>,
        redis_scope: &str,
    ) -> Self {
        let gcra = Gcra::new(spec);
        Self {
            spec: spec.clone(),
            gcra,
            local: LocalBuckets::new(gcra, settings.max_local_keys),
            redis: if spec.scope == LimitScope::Cluster {
                redis
            } else {
                None
            },
            redis_scope: format!("{redis_scope}:{}", settings_hash(spec)),
        }
    }

    pub(crate) async fn check(&self, key: &str) -> Verdict {
        if let Some(redis) = &self.redis {
            let bucket = format!("{}:{key}", self.redis_scope);
            if let Some(decision) = redis.decide(&self.gcra, &bucket).await {
                return Verdict::Decided(decision);
            }
            if !self.spec.fail_open {
                return Verdict::Unavailable;
            }
        }
        Verdict::Decided(self.local.decide(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitKey;

    fn gcra(rate: u64, per_secs: u64, burst: u64) -> Gcra {
        Gcra::new(&RateLimit {
            key: LimitKey::Route,
            rate,
            per: Duration::from_secs(per_secs),
            burst,
            scope: LimitScope::Local,
            fail_open: true,
        })
    }

    #[test]
    fn a_fresh_key_gets_its_burst_back_to_back_then_waits() {
        let g = gcra(10, 60, 5);
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..5 {
            let (d, t) = g.decide(tat, 0);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = Some(t);
        }
        let (denied, _) = g.decide(tat, 0);

        assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_secs, 6, "one request every 6 s");
    }

    #[test]
    fn no_window_of_one_period_admits_more_than_rate_plus_burst() {
        // Requests every 100 ms for 10 periods of 1 s; count admissions per sliding window.
        let g = gcra(10, 1, 5);
        let mut tat = None;
        let mut admitted = Vec::new();
        for step in 0..100u64 {
            let now = step * 100_000;
            let (d, t) = g.decide(tat, now);
            if d.allowed {
                admitted.push(now);
                tat = Some(t);
            }
        }
        for (i, start) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|t| **t < start + 1_000_000)
                .count();
            assert!(
                in_window <= 15,
                "{in_window} admitted in the second from {start}"
            );
        }
        assert!(admitted.len() >= 95, "the steady rate is still served");
    }

    #[test]
    fn changed_settings_give_other_redis_keys_and_equal_ones_the_same() {
        let spec = |rate, burst| RateLimit {
            key: LimitKey::Route,
            rate,
            per: Duration::from_secs(60),
            burst,
            scope: LimitScope::Cluster,
            fail_open: true,
        };
        assert_eq!(settings_hash(&spec(10, 5)), settings_hash(&spec(10, 5)));
        assert_ne!(settings_hash(&spec(10, 5)), settings_hash(&spec(11, 5)));
        assert_ne!(settings_hash(&spec(10, 5)), settings_hash(&spec(10, 6)));
    }

    #[tokio::test]
    async fn a_redis_that_stops_answering_is_reconnected_to() {
        // Arrange: a "Redis" that answers the connection handshake but never a script, like
        // a connection wedged behind a stuck proxy.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let scripts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&scripts);
        let _server = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(wedged_redis(conn, Arc::clone(&seen)));
            }
        });
        let settings = RateLimiting {
            redis_url: Some(url),
            redis_timeout: Duration::from_millis(50),
            key_prefix: "t:".into(),
            headers_on_success: true,
            max_local_keys: 10,
            ipv6_prefix: 64,
        };
        let store = RedisStore::new(&settings).unwrap();
        let g = gcra(1, 60, 1);

        // Act: the connection may or may not be made in time; the script call cannot answer.
        let decided = store.decide(&g, "k").await;

        // Assert: the script was sent, got no answer, and the connection was dropped.
        assert!(decided.is_none());
        assert!(
            scripts.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "the script was sent"
        );
        assert!(store.conn.lock().await.is_none());
    }

    /// Reads RESP commands; answers `+OK` to all but scripts (`EVAL`, `EVALSHA`), which it
    /// counts and leaves unanswered.
    async fn wedged_redis(
        conn: tokio::net::TcpStream,
        scripts: Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        let mut conn = tokio::io::BufReader::new(conn);
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let Some(n) = line
                .trim()
                .strip_prefix('*')
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let mut words = Vec::new();
            for _ in 0..n {
                let mut len = String::new();
                conn.read_line(&mut len).await.unwrap_or(0);
                let len: usize = len.trim().trim_start_matches('$').parse().unwrap_or(0);
                let mut word = vec![0; len + 2];
                if conn.read_exact(&mut word).await.is_err() {
                    return;
                }
                words.push(String::from_utf8_lossy(&word[..len]).to_ascii_uppercase());
            }
            if words.first().is_some_and(|w| w.starts_with("EVAL")) {
                scripts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            } else {
                let _ = conn.get_mut().write_all(b"+OK\r\n").await;
            }
        }
    }

    #[test]
    fn local_buckets_forget_full_buckets_first_when_over_capacity() {
        let buckets = LocalBuckets::new(gcra(1, 3600, 1), SHARDS);
        assert!(buckets.decide("a").allowed);
        assert!(!buckets.decide("a").allowed, "a is limited");
        for k in 0..100 {
            buckets.decide(&format!("k{k}"));
        }
        let total: usize = buckets.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * 2, "memory stays bounded: {total} keys");
    }
}
