//! The Redis stream behind the job queue.

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands as _;
use uuid::Uuid;

use crate::redis_handle::RedisHandle;

/// The consumer group every replica's workers share.
pub const GROUP: &str = "workers";

pub struct Queue {
    pub(crate) redis: RedisHandle,
    pub stream: String,
    pub dead_letter: String,
    /// The dead-letter stream keeps about this many entries (trimmed on each add).
    pub dead_letter_max_len: usize,
}

/// Trims the job stream below the oldest entry the group still needs, atomically: the
/// oldest pending (delivered, unacknowledged) entry, or when nothing is pending, the group's
/// last delivered entry (kept itself; everything before it was acknowledged). Entries not
/// yet delivered are never touched. Done in one script so that no delivery can happen
/// between reading the group's state and trimming.
/// KEYS[1]: stream; ARGV[1]: group. Returns the number of entries removed.
const TRIM_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
local keep_from = nil
if pending[1] > 0 then
  keep_from = pending[2]
else
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then keep_from = fields['last-delivered-id'] end
  end
end
if keep_from == nil or keep_from == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', keep_from)
";

/// One delivered entry: the stream id to acknowledge and the job it names.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub entry_id: String,
    pub job_id: Option<Uuid>,
}

fn deliveries(ids: Vec<redis::streams::StreamId>) -> Vec<Delivery> {
    ids.into_iter()
        .map(|entry| {
            let job_id = entry
                .get::<String>("job_id")
                .and_then(|s| Uuid::parse_str(&s).ok());
            Delivery {
                entry_id: entry.id,
                job_id,
            }
        })
        .collect()
}

impl Queue {
    /// Create the stream and the group if missing (from the start of the stream, so nothing
    /// enqueued before the first worker started is skipped).
    pub async fn ensure_group(&self) -> redis::RedisResult<()> {
        let stream = self.stream.clone();
        let created: redis::RedisResult<()> = self
            .redis
            .run(|mut c| async move { c.xgroup_create_mkstream(stream, GROUP, "0").await })
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    pub async fn enqueue(&self, job_id: Uuid) -> redis::RedisResult<()> {
        let stream = self.stream.clone();
        let _: String = self
            .redis
            .run(
                |mut c| async move { c.xadd(stream, "*", &[("job_id", job_id.to_string())]).await },
            )
            .await?;
        Ok(())
    }

    /// The reading end of the stream for one worker named `name`.
    pub fn consumer(&self, name: &str) -> Consumer<'_> {
        Consumer {
            queue: self,
            name: name.to_owned(),
            conn: None,
        }
    }

    /// Take over entries pending longer than `min_idle_ms` with other (dead) consumers.
    pub async fn reclaim(
        &self,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> redis::RedisResult<Vec<Delivery>> {
        let (stream, consumer) = (self.stream.clone(), consumer.to_owned());
        let reply: StreamAutoClaimReply = self
            .redis
            .run(|mut c| async move {
                c.xautoclaim_options(
                    stream,
                    GROUP,
                    consumer,
                    min_idle_ms,
                    "0-0",
                    StreamAutoClaimOptions::default().count(count),
                )
                .await
            })
            .await?;
        Ok(deliveries(reply.claimed))
    }

    pub async fn ack(&self, entry_id: &str) -> redis::RedisResult<()> {
        self.ack_all(&[entry_id]).await
    }

    /// Acknowledge many entries with one `XACK`.
    pub async fn ack_all(&self, entry_ids: &[&str]) -> redis::RedisResult<()> {
        let stream = self.stream.clone();
        let ids: Vec<String> = entry_ids.iter().map(|id| (*id).to_owned()).collect();
        let _: u64 = self
            .redis
            .run(|mut c| async move { c.xack(stream, GROUP, &ids).await })
            .await?;
        Ok(())
    }

    /// Record a job that failed for good, with its cause, keeping the stream bounded.
    pub async fn dead_letter(&self, job_id: Uuid, error: &str) -> redis::RedisResult<()> {
        let (stream, error) = (self.dead_letter.clone(), error.to_owned());
        let max_len = redis::streams::StreamMaxlen::Approx(self.dead_letter_max_len.max(1));
        let _: String = self
            .redis
            .run(|mut c| async move {
                c.xadd_maxlen(
                    stream,
                    max_len,
                    "*",
                    &[("job_id", job_id.to_string()), ("error", error)],
                )
                .await
            })
            .await?;
        Ok(())
    }

    /// Remove acknowledged entries from the job stream (see `TRIM_SCRIPT`); returns how many.
    pub async fn trim_acknowledged(&self) -> redis::RedisResult<u64> {
        let stream = self.stream.clone();
        self.redis
            .run(|mut c| async move {
                redis::Script::new(TRIM_SCRIPT)
                    .key(stream)
                    .arg(GROUP)
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    /// `(pending entries, lag)` of the group, for metrics.
    pub async fn backlog(&self) -> redis::RedisResult<(u64, u64)> {
        let stream = self.stream.clone();
        let pending: redis::streams::StreamPendingReply = self
            .redis
            .run(|mut c| async move { c.xpending(stream, GROUP).await })
            .await?;
        let stream = self.stream.clone();
        let groups: redis::streams::StreamInfoGroupsReply = self
            .redis
            .run(|mut c| async move { c.xinfo_groups(stream).await })
            .await?;
        let lag = groups
            .groups
            .iter()
            .find(|g| g.name == GROUP)
            .and_then(|g| g.lag)
            .unwrap_or(0);
        Ok((pending.count() as u64, lag as u64))
    }
}

/// Why a consumer read no entries.
#[derive(Debug)]
pub enum ReadError {
    /// No connection to Redis could be made (yet); try again after a pause.
    NotConnected,
    /// The read failed; the connection was dropped and is re-made on the next read.
    Redis(redis::RedisError),
}

/// One worker's reading end of the stream. A blocking `XREADGROUP` holds its connection
/// for up to the block time, so each consumer owns a connection of its own (not the
/// shared handle's), made on first use and re-made after an error.
pub struct Consumer<'q> {
    queue: &'q Queue,
    name: String,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl Consumer<'_> {
    /// The consumer's name in the group.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// New entries for this consumer, waiting up to `block_ms` for some.
    pub async fn read_new(
        &mut self,
        count: usize,
        block_ms: usize,
    ) -> Result<Vec<Delivery>, ReadError> {
        if self.conn.is_none() {
            let client = self.queue.redis.client();
            let made = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                client.get_multiplexed_async_connection(),
            )
            .await;
            self.conn = Some(
                made.ok()
                    .and_then(Result::ok)
                    .ok_or(ReadError::NotConnected)?,
            );
        }
        let conn = self.conn.as_mut().ok_or(ReadError::NotConnected)?;
        let opts = StreamReadOptions::default()
            .group(GROUP, &self.name)
            .count(count)
            .block(block_ms);
        let reply: Result<Option<StreamReadReply>, _> = conn
            .xread_options(&[&self.queue.stream], &[">"], &opts)
            .await;
        match reply {
            Ok(reply) => Ok(reply
                .map(|r| r.keys.into_iter().flat_map(|k| deliveries(k.ids)).collect())
                .unwrap_or_default()),
            Err(e) => {
                self.conn = None;
                Err(ReadError::Redis(e))
            }
        }
    }
}
