//! Job workers: a loop (`run`) around a step (`handle_all`, a batch), so tests can drive the
//! step directly and the loop only adds waiting, reclaiming and backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use uuid::Uuid;

use crate::jobs::queue::{Delivery, ReadError};
use crate::jobs::repo;
use crate::state::AppState;
use crate::todos;

/// The `error` a client reads on `GET /jobs/{id}` for a dead-lettered job.
pub const FAILED_JOB_MESSAGE: &str = "the todo could not be created";

/// What one execution of a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionOutcome {
    /// The todo exists and the job is marked done (now or by an earlier delivery).
    Done,
    /// The job is unknown or already finished; nothing to do.
    Skipped,
    /// It failed and stays pending; it will be delivered again after the visibility timeout.
    WillRetry(String),
    /// It failed for the last time and went to the dead-letter stream.
    DeadLettered(String),
}

/// Run one delivered job. Never panics; errors become outcomes.
pub async fn try_execute_task(state: &AppState, job_id: Uuid) -> ExecutionOutcome {
    match repo::start_attempt(&state.db, job_id).await {
        Ok(Some(claimed)) => complete(state, &claimed).await,
        Ok(None) => ExecutionOutcome::Skipped,
        // The database is unreachable: no attempt was counted; try again later.
        Err(e) => ExecutionOutcome::WillRetry(format!("cannot start the job: {e}")),
    }
}

/// Run many delivered jobs together: one statement claims them, one transaction inserts
/// their todos, one round trip invalidates their owners' lists, one statement marks them
/// done. If that fails, each claimed job is run on its own (as [`try_execute_task`] would,
/// without counting a second attempt), so one bad job fails, retries and dead-letters alone.
/// Never panics; every id in `job_ids` gets an outcome.
pub async fn try_execute_tasks(
    state: &AppState,
    job_ids: &[Uuid],
) -> HashMap<Uuid, ExecutionOutcome> {
    let claimed = match repo::start_attempts(&state.db, job_ids).await {
        Ok(claimed) => claimed,
        Err(e) => {
            let why = format!("cannot start the job: {e}");
            return job_ids
                .iter()
                .map(|id| (*id, ExecutionOutcome::WillRetry(why.clone())))
                .collect();
        }
    };
    let mut outcomes: HashMap<Uuid, ExecutionOutcome> = job_ids
        .iter()
        .map(|id| (*id, ExecutionOutcome::Skipped))
        .collect();
    match insert_todos(state, &claimed).await {
        Ok(()) => outcomes.extend(claimed.iter().map(|c| (c.id, ExecutionOutcome::Done))),
        Err(e) => {
            tracing::debug!(
                jobs = claimed.len(),
                error = format!("{e:#}"),
                "a batch of jobs failed; running them one by one"
            );
            for job in &claimed {
                outcomes.insert(job.id, complete(state, job).await);
            }
        }
    }
    outcomes
}

/// Finish a claimed job: its todo inserted and the job done, or a failure that is retried
/// or, after the last attempt, dead-lettered.
async fn complete(state: &AppState, claimed: &repo::Claimed) -> ExecutionOutcome {
    let job_id = claimed.id;
    match insert_todos(state, std::slice::from_ref(claimed))
        .await
        .map_err(|e| format!("{e:#}"))
    {
        Ok(()) => ExecutionOutcome::Done,
        Err(error)
            if claimed.attempts
                >= i32::try_from(state.settings.job_max_attempts).unwrap_or(i32::MAX) =>
        {
            if let Err(e) = state.queue.dead_letter(job_id, &error).await {
                return ExecutionOutcome::WillRetry(format!(
                    "{error}; and the dead-letter stream failed: {e}"
                ));
            }
            // Clients see a fixed message; the cause (which may quote the database) stays in
            // the dead-letter stream and the log, for operators.
            if let Err(e) = repo::fail(&state.db, job_id, FAILED_JOB_MESSAGE).await {
                tracing::warn!(%job_id, error = %e, "could not mark a dead-lettered job failed");
            }
            ExecutionOutcome::DeadLettered(error)
        }
        Err(error) => ExecutionOutcome::WillRetry(error),
    }
}

/// Insert the jobs' todos (idempotent per job) and point each job at its todo, in one
/// transaction; invalidate the owners' cached lists; then mark the jobs done, in that order:
/// a client that sees "done" finds the todo in its next list.
async fn insert_todos(state: &AppState, jobs: &[repo::Claimed]) -> anyhow::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, Uuid, &str)> = jobs
        .iter()
        .map(|j| (j.id, j.user_id, j.title.as_str()))
        .collect();
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let mut tx = state
        .db
        .begin()
        .await
        .context("Failed to begin a transaction")?;
    todos::repo::insert_for_jobs(&mut tx, &rows)
        .await
        .context("Failed to insert the todos")?;
    let recorded = repo::record_todos(&mut tx, &ids)
        .await
        .context("Failed to record the todos on their jobs")?;
    anyhow::ensure!(
        recorded == ids.len() as u64,
        "{recorded} of {} jobs found their todo",
        ids.len()
    );
    tx.commit().await.context("Failed to commit")?;
    let mut owners: Vec<Uuid> = jobs.iter().map(|j| j.user_id).collect();
    owners.sort_unstable();
    owners.dedup();
    state.invalidate_todos_of(&owners).await;
    repo::finish_all(&state.db, &ids)
        .await
        .context("Failed to mark the jobs done")
}

/// Handle one delivery: [`handle_all`] of one.
pub async fn handle(state: &AppState, delivery: &Delivery) -> ExecutionOutcome {
    handle_all(state, std::slice::from_ref(delivery))
        .await
        .pop()
        .unwrap_or(ExecutionOutcome::Skipped)
}

/// Handle deliveries together ([`try_execute_tasks`]), count each, and acknowledge with one
/// `XACK` every one that must not be retried. Returns their outcomes, in order.
pub async fn handle_all(state: &AppState, deliveries: &[Delivery]) -> Vec<ExecutionOutcome> {
    let mut ids: Vec<Uuid> = deliveries.iter().filter_map(|d| d.job_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut outcomes = if ids.is_empty() {
        HashMap::new()
    } else {
        try_execute_tasks(state, &ids).await
    };
    let mut ack = Vec::with_capacity(deliveries.len());
    let mut results = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let outcome = delivery
            .job_id
            .and_then(|id| outcomes.get(&id).cloned())
            .unwrap_or(ExecutionOutcome::Skipped);
        let metric = match &outcome {
            ExecutionOutcome::Done => "processed",
            ExecutionOutcome::Skipped => "skipped",
            ExecutionOutcome::WillRetry(_) => "failed",
            ExecutionOutcome::DeadLettered(_) => "dead_lettered",
        };
        state.metrics.jobs.with_label_values(&[metric]).inc();
        if let ExecutionOutcome::WillRetry(error) | ExecutionOutcome::DeadLettered(error) = &outcome
        {
            tracing::warn!(job_id = ?delivery.job_id, error, outcome = metric, "job failed");
        }
        if !matches!(outcome, ExecutionOutcome::WillRetry(_)) {
            ack.push(delivery.entry_id.as_str());
        }
        // A job listed twice is run once; its second delivery is only acknowledged.
        if let Some(id) = delivery.job_id {
            if matches!(outcome, ExecutionOutcome::Done) {
                outcomes.insert(id, ExecutionOutcome::Skipped);
            }
        }
        results.push(outcome);
    }
    if !ack.is_empty() {
        if let Err(e) = state.queue.ack_all(&ack).await {
            tracing::warn!(entries = ack.len(), error = %e, "could not acknowledge jobs; they will run again (harmlessly)");
        }
    }
    results
}

/// One worker: reclaims stale entries, reads new ones, handles them as one batch, until
/// `stop` fires. A batch in progress when `stop` fires is finished first.
pub async fn run(
    state: Arc<AppState>,
    consumer: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let visibility_ms =
        u64::try_from(state.settings.visibility_timeout().as_millis()).unwrap_or(u64::MAX);
    let mut reader = state.queue.consumer(&consumer);
    let mut backoff = Duration::from_millis(100);
    let mut group_ready = false;
    while !*stop.borrow() {
        if !group_ready {
            group_ready = state.queue.ensure_group().await.is_ok();
        }
        // Entries a dead consumer left behind come first.
        let reclaimed: Vec<Delivery> = state
            .queue
            .reclaim(
                &consumer,
                visibility_ms,
                state.settings.job_batch_size.max(1),
            )
            .await
            .unwrap_or_default();
        if !reclaimed.is_empty() {
            state
                .metrics
                .jobs
                .with_label_values(&["retried"])
                .inc_by(reclaimed.len() as u64);
        }
        let read = tokio::select! {
            r = reader.read_new(state.settings.job_batch_size.max(1), 1000) => r,
            _ = stop.changed() => break,
        };
        let (fresh, connected) = match read {
            Ok(list) => (list, true),
            Err(ReadError::NotConnected) => (Vec::new(), false),
            Err(ReadError::Redis(e)) => {
                tracing::warn!(consumer, error = %e, "reading the job stream failed");
                group_ready = false;
                (Vec::new(), false)
            }
        };
        let batch: Vec<Delivery> = reclaimed.into_iter().chain(fresh).collect();
        if batch.is_empty() && !connected {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        backoff = Duration::from_millis(100);
        handle_all(&state, &batch).await;
    }
    tracing::info!(consumer, "worker stopped");
}

/// Every `STREAM_TRIM_INTERVAL_SECONDS` until `stop` fires: trim acknowledged entries from
/// the job stream, and enqueue keyed jobs that were committed but never enqueued (see
/// [`enqueue_orphans`]). Every replica runs one; both are safe to run concurrently.
pub async fn trim_stream(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_secs(state.settings.stream_trim_interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match state.queue.trim_acknowledged().await {
            Ok(0) => {}
            Ok(trimmed) => tracing::debug!(trimmed, "trimmed acknowledged job entries"),
            Err(e) => tracing::warn!(error = %e, "could not trim the job stream"),
        }
        enqueue_orphans(&state).await;
    }
}

/// Enqueue keyed jobs committed more than the visibility timeout ago whose stream entry was
/// never written: the replica that accepted one died between its commit and its enqueue,
/// and the client's retry (the gateway retries a POST with an `Idempotency-Key`) was
/// answered from the committed row while it was still too young to be called an orphan.
/// A job enqueued twice is harmless (a todo is unique per job).
pub async fn enqueue_orphans(state: &AppState) {
    let age = state.settings.visibility_timeout();
    let claimed = match crate::jobs::repo::claim_orphans(&state.db, age, 100).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for jobs that were never enqueued");
            return;
        }
    };
    for job_id in claimed {
        match state.queue.enqueue(job_id).await {
            Ok(()) => {
                tracing::info!(%job_id, "enqueued a job its first request never enqueued");
                state.metrics.jobs.with_label_values(&["enqueued"]).inc();
            }
            Err(e) => {
                tracing::warn!(%job_id, error = %e, "could not enqueue an orphaned job; the next sweep retries");
                if let Err(e) = crate::jobs::repo::unclaim(&state.db, job_id).await {
                    tracing::warn!(%job_id, error = %e, "could not release an orphaned job");
                }
            }
        }
    }
}

/// Start `state.settings.worker_concurrency` workers named after this instance, and the
/// stream trimmer.
pub fn spawn_workers(
    state: &Arc<AppState>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for n in 0..state.settings.worker_concurrency {
        let consumer = format!("{}-{n}", state.instance);
        set.spawn(run(Arc::clone(state), consumer, stop.clone()));
    }
    set.spawn(trim_stream(Arc::clone(state), stop.clone()));
    set
}
