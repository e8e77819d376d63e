-- The keyed jobs whose enqueue never happened (the replica that committed one died before
-- writing its stream entry): the housekeeping sweep finds them here without a scan.
CREATE INDEX jobs_never_enqueued ON jobs (created_at)
    WHERE status = 'queued' AND enqueued_at IS NULL AND idempotency_key IS NOT NULL;
