-- The request an Idempotency-Key was first used with (a SHA-256 of it): the same key with a
-- different request is refused (422) instead of silently answering with the first job.
ALTER TABLE jobs ADD COLUMN request_hash TEXT;
-- When the job's stream entry was written. NULL for a committed job whose enqueue never
-- happened (the replica died in between); only such a job may be enqueued by a replay.
ALTER TABLE jobs ADD COLUMN enqueued_at TIMESTAMPTZ;
-- Jobs accepted before this migration were enqueued by the code of the time.
UPDATE jobs SET enqueued_at = created_at;
