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
    /// Successful responses per `x-upstream`.
    pub by_upstream: HashMap<String, usize>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Start GET load on `url`. Bounded: each worker stops after `max_requests / concurrency`
    /// requests even if never stopped.
    pub fn start(url: &str, concurrency: usize, max_requests: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let per_worker = max_requests.div_ceil(concurrency);
        let workers = (0..concurrency)
            .map(|_| {
                let (stop, report, client, url) = (
                    Arc::clone(&stop),
                    Arc::clone(&report),
                    client.clone(),
                    url.to_owned(),
                );
                tokio::spawn(async move {
                    for _ in 0..per_worker {
                        if stop.load(SeqCst) {
                            break;
                        }
                        let outcome = client.get(&url).send().await;
                        let mut r = report.lock().expect("report lock");
                        match outcome {
                            Ok(resp) if resp.status().is_success() => {
                                r.ok += 1;
                                let name = resp
                                    .headers()
                                    .get("x-upstream")
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
