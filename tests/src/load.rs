//! A closed-loop load generator: `concurrency` workers send requests back to back until
//! stopped or until `max_requests`, recording which upstream answered and every failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
