//! Closed-loop load generators that record every failure:
//! - [`Load`]: `concurrency` workers send one request back to back until stopped or until
//!   `max_requests`, recording which upstream answered.
//! - [`TodoTraffic`]: clients of the todo API that read and create todos, for the chaos
//!   tests' verdict that no request failed and no todo was lost or made twice.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::{TodoApi, User};

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: usize,
    /// One line per failed request: status or transport error.
    pub failures: Vec<String>,
    /// Successful responses per value of the identity header (`x-upstream` by default).
    pub by_upstream: HashMap<String, usize>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What a [`Load`] sends.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub url: String,
    pub concurrency: usize,
    /// Upper bound on requests in all; each worker stops after its share.
    pub max_requests: usize,
    /// Sent as `Authorization: Bearer ...` when set.
    pub bearer: Option<String>,
    /// The response header that names the server that answered.
    pub identity_header: &'static str,
}

impl Load {
    /// Start GET load on `url`. Bounded: each worker stops after `max_requests / concurrency`
    /// requests even if never stopped.
    pub fn start(url: &str, concurrency: usize, max_requests: usize) -> Self {
        Self::start_with(&LoadSpec {
            url: url.to_owned(),
            concurrency,
            max_requests,
            bearer: None,
            identity_header: "x-upstream",
        })
    }

    /// Start GET load as `spec` says.
    pub fn start_with(spec: &LoadSpec) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let per_worker = spec.max_requests.div_ceil(spec.concurrency);
        let workers = (0..spec.concurrency)
            .map(|_| {
                let (stop, report, client, spec) = (
                    Arc::clone(&stop),
                    Arc::clone(&report),
                    client.clone(),
                    spec.clone(),
                );
                tokio::spawn(async move {
                    for _ in 0..per_worker {
                        if stop.load(SeqCst) {
                            break;
                        }
                        let mut request = client.get(&spec.url);
                        if let Some(token) = &spec.bearer {
                            request = request.bearer_auth(token);
                        }
                        let outcome = request.send().await;
                        let mut r = report.lock().expect("report lock");
                        match outcome {
                            Ok(resp) if resp.status().is_success() => {
                                r.ok += 1;
                                let name = resp
                                    .headers()
                                    .get(spec.identity_header)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("?")
                                    .to_owned();
                                *r.by_upstream.entry(name).or_default() += 1;
                            }
                            Ok(resp) => r.failures.push(format!("status {}", resp.status())),
                            Err(e) => r.failures.push(format!("error {e}")),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            report,
            workers,
        }
    }

    /// What has been recorded so far.
    pub fn snapshot(&self) -> LoadReport {
        self.report.lock().expect("report lock").clone()
    }

    /// Let every worker finish its share, then return the report.
    pub async fn stop_when_done(self) -> LoadReport {
        for w in self.workers {
            let _ = w.await;
        }
        let report = self.report.lock().expect("report lock").clone();
        report
    }

    /// Stop the workers and return the final report.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, SeqCst);
        for w in self.workers {
            let _ = w.await;
        }
        let report = self.report.lock().expect("report lock").clone();
        report
    }
}

/// Panics with the first few failures unless `failures` is empty: `what` failed so many of
/// `ok + failures` requests.
pub fn assert_none_failed(what: &str, ok: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {} requests failed, first: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
}

impl LoadReport {
    /// Panics with the first failures unless no request failed.
    pub fn assert_no_failures(&self, what: &str) {
        assert_none_failed(what, self.ok, &self.failures);
    }
}

/// The replicas (identity header values) that answered between two snapshots of
/// `by_upstream` counts.
pub fn answered_since(
    before: &HashMap<String, usize>,
    now: &HashMap<String, usize>,
) -> HashSet<String> {
    now.iter()
        .filter(|(name, n)| **n > before.get(*name).copied().unwrap_or(0))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Closed-loop clients of the todo API, each alternating `GET /todos` and `POST /todos` with
/// an `Idempotency-Key`, spread over several users: the traffic of the chaos tests. Their
/// verdict is [`TodoTrafficReport`]: no request failed, and every accepted todo exists exactly
/// once.
pub struct TodoTraffic {
    stop: Arc<AtomicBool>,
    outcomes: Arc<TrafficOutcomes>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct TrafficOutcomes {
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
    accepted: Mutex<Vec<Accepted>>,
    /// 2xx answers per backend replica (`X-Instance`).
    by_instance: Mutex<HashMap<String, usize>>,
}

/// A `POST /todos` the API accepted (202).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Index of the user in the traffic's users.
    pub user: usize,
    pub title: String,
    pub status_url: String,
}

/// What a [`TodoTraffic`] saw, once stopped.
#[derive(Debug)]
pub struct TodoTrafficReport {
    pub ok: usize,
    pub failures: Vec<String>,
    pub accepted: Vec<Accepted>,
}

impl TodoTraffic {
    /// `clients` loops against `todos_url` (the gateway's `/todos`), as `users` in turn.
    pub fn start(todos_url: &str, users: &Arc<Vec<User>>, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(TrafficOutcomes::default());
        let clients = (0..clients)
            .map(|c| {
                let (stop, outcomes, users) =
                    (Arc::clone(&stop), Arc::clone(&outcomes), Arc::clone(users));
                let url = todos_url.to_owned();
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .expect("client");
                    let mut n = 0;
                    while !stop.load(SeqCst) {
                        n += 1;
                        let user = (c + n) % users.len();
                        outcomes.record(&http, &url, user, &users[user], c, n).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            clients,
        }
    }

    /// Requests answered with a 2xx so far.
    pub fn ok(&self) -> usize {
        self.outcomes.ok.load(SeqCst)
    }

    /// 2xx answers so far per backend replica (the `X-Instance` header).
    pub fn by_instance(&self) -> HashMap<String, usize> {
        self.outcomes.by_instance.lock().expect("lock").clone()
    }

    /// Every failure so far (status and body, or transport error), oldest first.
    pub fn failures(&self) -> Vec<String> {
        self.outcomes.failures.lock().expect("lock").clone()
    }

    /// Wait until `more` requests beyond those answered now were answered, for at most
    /// `limit`: whether they were.
    pub async fn progress(&self, more: usize, limit: Duration) -> bool {
        let target = self.ok() + more;
        crate::poll_until(limit, async || self.ok() >= target).await
    }

    pub async fn stop(self) -> TodoTrafficReport {
        self.stop.store(true, SeqCst);
        for client in self.clients {
            client.await.expect("a traffic client panicked");
        }
        let outcomes = &self.outcomes;
        TodoTrafficReport {
            ok: outcomes.ok.load(SeqCst),
            failures: outcomes.failures.lock().expect("lock").clone(),
            accepted: outcomes.accepted.lock().expect("lock").clone(),
        }
    }
}

impl TrafficOutcomes {
    /// Send the `n`th request of client `c`, as `user`, and record how it went.
    async fn record(
        &self,
        http: &reqwest::Client,
        url: &str,
        user_index: usize,
        user: &User,
        c: usize,
        n: usize,
    ) {
        let title = format!("client-{c}-{n}");
        let read = n.is_multiple_of(2);
        let sent = if read {
            http.get(url).bearer_auth(&user.token).send().await
        } else {
            http.post(url)
                .bearer_auth(&user.token)
                .header("idempotency-key", &title)
                .json(&serde_json::json!({ "title": title }))
                .send()
                .await
        };
        let what = if read { "GET" } else { title.as_str() };
        match sent {
            Ok(resp) if resp.status().is_success() => {
                if let Some(instance) = resp.headers().get("x-instance") {
                    let instance = String::from_utf8_lossy(instance.as_bytes()).into_owned();
                    *self
                        .by_instance
                        .lock()
                        .expect("lock")
                        .entry(instance)
                        .or_default() += 1;
                }
                if !read {
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    self.accepted.lock().expect("lock").push(Accepted {
                        user: user_index,
                        title: title.clone(),
                        status_url: body["status_url"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                self.ok.fetch_add(1, SeqCst);
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let line = format!("{what}: {status} {body}");
                self.failures.lock().expect("lock").push(line);
            }
            Err(e) => self
                .failures
                .lock()
                .expect("lock")
                .push(format!("{what}: {e}")),
        }
    }
}

impl TodoTrafficReport {
    /// Panics with the first failures unless no request failed.
    pub fn assert_no_failures(&self, what: &str) {
        assert_none_failed(what, self.ok, &self.failures);
    }

    /// Wait (at most `limit` per job) until every accepted job is done, then panic unless
    /// each user's todos are exactly the titles accepted for them: none lost, none twice.
    pub async fn assert_each_todo_once(&self, api: &TodoApi, users: &[User], limit: Duration) {
        for job in &self.accepted {
            let user = &users[job.user];
            let done = crate::poll_until(limit, async || {
                api.job_status(user, &job.status_url).await == "done"
            })
            .await;
            assert!(
                done,
                "job {} ({}) never finished",
                job.status_url, job.title
            );
        }
        for (u, user) in users.iter().enumerate() {
            let mut titles = api.all_titles(user).await.expect("list todos");
            titles.sort();
            let mut expected: Vec<String> = self
                .accepted
                .iter()
                .filter(|job| job.user == u)
                .map(|job| job.title.clone())
                .collect();
            expected.sort();
            assert_eq!(titles, expected, "user {u}'s todos");
        }
    }
}
