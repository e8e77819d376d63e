//! The stack end to end: the gateway with the committed `gateway.yaml` in front of N backend
//! replicas, real PostgreSQL and Redis (the native runner, `tests::stack`).
//!
//! Two stacks run side by side, one with the list cache and one without
//! (`CACHE_TTL_SECONDS=0`), and are measured in interleaved rounds:
//! - `e2e_get_todos`: `GET /todos` (first page, 20 todos) by one user, cached or not;
//! - `e2e_post_todos`: `POST /todos` accept rate (202s per second);
//! - `e2e_job_drain`: jobs per second the replicas' workers take off a backlog. The workers
//!   keep up with the POST load as it comes, so the backlog is made at once: job rows
//!   committed in one statement, then their stream entries in one pipeline, exactly what
//!   `POST /todos` writes for each, and the clock runs until every one is processed.
//!
//! The per-user rate limits of `/todos` and `/jobs` are removed from the config (one user
//! would otherwise measure the limiter); everything else is the committed file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tests::stack::{Stack, StackOptions};

use crate::measure::{cpu_seconds, memory_mb, process_tree, wrk_with};
use crate::report::Row;

pub(crate) struct Options {
    /// Jobs in the backlog of the drain scenario.
    pub(crate) backlog: usize,
    pub(crate) replicas: usize,
    pub(crate) duration: u64,
    pub(crate) rounds: usize,
    pub(crate) connections: usize,
}

const POST_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.body = '{"title":"bench"}'
wrk.headers["Content-Type"] = "application/json"
"#;

/// The committed gateway.yaml without the per-user limits on `/todos` and `/jobs`.
fn bench_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.yaml");
    let text =
        tests::stack::without_rate_limits(&std::fs::read_to_string(root)?, &["todos", "jobs"])?;
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One stack under test and its seeded user.
struct Target {
    label: &'static str,
    stack: Stack,
    token: String,
    pids: Vec<u32>,
}

async fn seed(stack: &Stack) -> anyhow::Result<String> {
    let api = stack.api();
    let user = api.user("bench").await?;
    for i in 0..20 {
        api.accepted_todo(&user, &format!("seed {i}")).await?;
    }
    Ok(user.token)
}

/// `(enqueued, processed)`: `jobs_total` summed over every replica's `/metrics`.
async fn job_counts(stack: &Stack) -> (f64, f64) {
    let counter = |text: &str, event: &str| {
        let line = format!("jobs_total{{event=\"{event}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (mut enqueued, mut processed) = (0.0, 0.0);
    for addr in &stack.backends {
        let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
            continue;
        };
        let text = resp.text().await.unwrap_or_default();
        enqueued += counter(&text, "enqueued");
        processed += counter(&text, "processed");
    }
    (enqueued, processed)
}

/// Wait until every enqueued job was processed.
async fn settle(stack: &Stack, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let (enqueued, processed) = job_counts(stack).await;
        if processed >= enqueued {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < limit, "jobs did not drain in {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One command in Redis's wire protocol, for `redis-cli --pipe`.
fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out
}

/// Jobs per second the workers take off a backlog of `count` jobs of the seeded user, made
/// as `POST /todos` makes each job (the row committed, then its stream entry) but all at
/// once: one `INSERT .. SELECT` and one pipeline of `XADD`s (psql and redis-cli).
async fn backlog_drain(stack: &Stack, count: usize, limit: Duration) -> anyhow::Result<f64> {
    let (_, before) = job_counts(stack).await;
    let sql = format!(
        "INSERT INTO jobs (id, user_id, title, status, enqueued_at) \
         SELECT gen_random_uuid(), (SELECT id FROM users ORDER BY created_at LIMIT 1), \
         'backlog ' || g, 'queued', now() FROM generate_series(1, {count}) g RETURNING id"
    );
    let out = std::process::Command::new("psql")
        .args([&stack.postgres.url("postgres"), "-Atq", "-c", &sql])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = String::from_utf8(out.stdout)?;
    let commands: String = ids
        .lines()
        .filter(|l| !l.trim().is_empty())
        // The backend's stream under its default REDIS_KEY_PREFIX (the stack sets none).
        .map(|id| resp(&["XADD", "todo:jobs", "*", "job_id", id.trim()]))
        .collect();
    let start = Instant::now();
    let mut pipe = std::process::Command::new("redis-cli")
        .args(["-u", &stack.redis.url(), "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::io::Write::write_all(&mut pipe.stdin.take().expect("piped"), commands.as_bytes())?;
    anyhow::ensure!(pipe.wait()?.success(), "redis-cli --pipe failed");
    loop {
        let (_, processed) = job_counts(stack).await;
        if processed - before >= count as f64 {
            return Ok(count as f64 / start.elapsed().as_secs_f64().max(1e-3));
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "the backlog did not drain in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn run(opts: &Options) -> anyhow::Result<Vec<Row>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let config = bench_config(work.path())?;
    let mut targets = Vec::new();
    for (label, ttl) in [("cached", "300"), ("uncached", "0")] {
        let stack = rt.block_on(Stack::start(&StackOptions {
            replicas: opts.replicas,
            port: 0,
            admin_port: 0,
            https_port: 0,
            tls_dir: None,
            config: config.clone(),
            backend_env: vec![
                ("CACHE_TTL_SECONDS".into(), ttl.into()),
                ("RUST_LOG".into(), "warn".into()),
            ],
        }))?;
        let token = rt.block_on(seed(&stack))?;
        rt.block_on(settle(&stack, Duration::from_secs(60)))?;
        targets.push(Target {
            label,
            stack,
            token,
            pids: Vec::new(),
        });
    }
    for t in &mut targets {
        t.pids = stack_pids(&t.stack);
    }

    let mut samples = Vec::new();
    for round in 0..opts.rounds {
        for t in &targets {
            let auth = vec![format!("Authorization: Bearer {}", t.token)];
            let get_url = t.stack.url("/todos");
            wrk_with(work.path(), &get_url, opts.connections, 1, &auth, "")?;
            let row = measured(&format!("e2e_get_todos_{}", t.label), &t.pids, opts, || {
                wrk_with(
                    work.path(),
                    &get_url,
                    opts.connections,
                    opts.duration,
                    &auth,
                    "",
                )
            })?;
            eprintln!(
                "e2e round {} GET /todos {:<8} {:>8.0} req/s p99 {:.2} ms",
                round + 1,
                t.label,
                row.rps,
                row.p99_ms
            );
            samples.push(row);
        }
        // Writes go to one stack only: the cache does not change the write path.
        let t = &targets[0];
        let auth = vec![format!("Authorization: Bearer {}", t.token)];
        let post_url = t.stack.url("/todos");
        let row = measured("e2e_post_todos", &t.pids, opts, || {
            wrk_with(
                work.path(),
                &post_url,
                opts.connections,
                opts.duration,
                &auth,
                POST_SCRIPT,
            )
        })?;
        eprintln!(
            "e2e round {} POST /todos {:>8.0} req/s p99 {:.2} ms",
            round + 1,
            row.rps,
            row.p99_ms
        );
        samples.push(row);
        rt.block_on(settle(&t.stack, Duration::from_secs(300)))?;
        let rate = rt.block_on(backlog_drain(
            &t.stack,
            opts.backlog,
            Duration::from_secs(300),
        ))?;
        eprintln!(
            "e2e round {} drain of {} queued jobs: {rate:.0} jobs/s",
            round + 1,
            opts.backlog
        );
        samples.push(Row {
            scenario: "e2e_job_drain".into(),
            system: "stack".into(),
            threads: opts.replicas,
            rps: rate,
            requests: opts.backlog as u64,
            ..Row::default()
        });
    }
    for t in targets {
        rt.block_on(t.stack.shutdown());
    }
    Ok(samples)
}

/// Every process of a stack: gateway, replicas, PostgreSQL and Redis.
fn stack_pids(stack: &Stack) -> Vec<u32> {
    let mut pids = Vec::new();
    for pid in stack.pids() {
        pids.extend(process_tree(pid));
    }
    pids
}

/// Run `load` once and turn its result into a row (CPU and memory over the whole stack).
fn measured(
    scenario: &str,
    pids: &[u32],
    opts: &Options,
    load: impl FnOnce() -> anyhow::Result<crate::measure::WrkResult>,
) -> anyhow::Result<Row> {
    let cpu0 = cpu_seconds(pids);
    let r = load()?;
    let cpu = cpu_seconds(pids) - cpu0;
    let requests = r.requests.max(1) as f64;
    Ok(Row {
        scenario: scenario.to_owned(),
        system: "stack".into(),
        // For the end-to-end rows, `threads` is the number of backend replicas.
        threads: opts.replicas,
        rps: r.requests as f64 / r.seconds.max(1e-9),
        p50_ms: r.p50_ms,
        p99_ms: r.p99_ms,
        p999_ms: r.p999_ms,
        cpu_s_per_100k: cpu / requests * 100_000.0,
        rss_mb: memory_mb(pids, "VmHWM"),
        upstream_reuse: 0.0,
        requests: r.requests,
        errors: r.errors,
    })
}
