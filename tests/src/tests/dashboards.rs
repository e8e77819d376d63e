//! The Grafana dashboard and the Prometheus rules, without Grafana: `promtool` checks and
//! unit-tests the rules, then a real Prometheus scrapes the native stack (the committed
//! `gateway.yaml`, two backend replicas, PostgreSQL, Redis) and evaluates every expression of
//! the dashboard and of the rules through its HTTP API; finally the stack loses its backends
//! and the two alerts that should fire do.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::docker::repo_root;
use crate::process::Process;
use crate::stack::{Stack, StackOptions};
use crate::{assert_eventually, free_port, poll_until, run_ok, wait_for_port};

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let rules = repo_root().join("config/prometheus");
    let checked = run_ok(
        Command::new("promtool")
            .args(["check", "rules", "alerts.yml"])
            .current_dir(&rules),
        "promtool check rules",
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_ok(
        Command::new("promtool")
            .args(["test", "rules", "alerts.test.yml"])
            .current_dir(&rules),
        "promtool test rules",
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Each alert of `alerts.yml` has at least one `alert_rule_test` in `alerts.test.yml`.
#[test]
fn every_alert_has_a_unit_test() {
    let rules = rule_file();
    let tests: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("config/prometheus/alerts.test.yml")).unwrap(),
    )
    .unwrap();
    let tested: Vec<&str> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().into_iter().flatten())
        .filter_map(|t| t["alertname"].as_str())
        .collect();
    let alerts: Vec<String> = rules.alerts.iter().map(|(name, _)| name.clone()).collect();
    assert!(alerts.len() >= 5, "{alerts:?}");
    for alert in &alerts {
        assert!(tested.contains(&alert.as_str()), "{alert} has no unit test");
    }
}

/// The rules as (name, expression): recording rules and alerts apart.
struct Rules {
    recorded: Vec<(String, String)>,
    alerts: Vec<(String, String)>,
}

fn rule_file() -> Rules {
    let text = std::fs::read_to_string(repo_root().join("config/prometheus/alerts.yml")).unwrap();
    let file: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut rules = Rules {
        recorded: Vec::new(),
        alerts: Vec::new(),
    };
    for group in file["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap().to_owned();
            if let Some(name) = rule["record"].as_str() {
                rules.recorded.push((name.to_owned(), expr));
            } else {
                let name = rule["alert"].as_str().unwrap().to_owned();
                rules.alerts.push((name, expr));
            }
        }
    }
    rules
}

/// Every panel query of the dashboard, with Grafana's variables as "All" would set them.
fn dashboard_queries() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo_root().join("config/grafana/dashboards/todo-stack.json"))
            .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$route", ".*")
                .replace("$pool", ".*");
            assert!(
                !expr.contains('$'),
                "a variable the test does not set: {expr}"
            );
            let title = panel["title"].as_str().unwrap();
            queries.push((format!("{title} ({})", target["refId"]), expr));
        }
    }
    queries
}

/// A Prometheus on a free port, scraping `targets` every second with the committed rules.
struct Prometheus {
    _process: Process,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(gateway: &str, backends: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rules = repo_root().join("config/prometheus/alerts.yml");
        let config = serde_json::json!({
            "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
            "rule_files": [rules.canonicalize().unwrap()],
            "scrape_configs": [
                { "job_name": "gateway", "static_configs": [{ "targets": [gateway] }] },
                { "job_name": "backend", "static_configs": [{ "targets": backends }] },
            ],
        });
        // JSON is YAML.
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let port = free_port();
        let process = Process::spawn(
            "prometheus",
            Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
            Some(&dir.path().join("prometheus.log")),
        )
        .expect("prometheus starts (Debian package prometheus)");
        wait_for_port(port, "prometheus");
        Self {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// `/api/v1/query`: the result vector, or the error Prometheus gave.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The alerts Prometheus holds now (pending or firing), as (name, labels).
    async fn alerts(&self) -> Vec<(String, Value)> {
        let Ok(response) = reqwest::get(format!("{}/api/v1/alerts", self.url)).await else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn every_dashboard_query_and_rule_returns_a_series_and_alerts_fire_on_a_real_stack() {
    // Arrange: the stack with its committed config, and a Prometheus scraping it.
    let mut stack = Stack::start(&StackOptions::for_tests(repo_root().join("gateway.yaml")))
        .await
        .expect("the stack starts");
    let backends: Vec<String> = stack.backends.iter().map(ToString::to_string).collect();
    let prometheus = Prometheus::start(&stack.admin.to_string(), &backends);
    let api = stack.api();
    let client = api.http().clone();

    // Act: traffic that moves every panel: a user, a todo through the queue, a cache miss
    // then hits, a bad token, and logins past their limit.
    let user = api.user("grafana").await.unwrap();
    let status_url = api.accepted_todo(&user, "dashboards").await.unwrap();
    assert_eventually!(
        api.job_status(&user, &status_url).await == "done",
        "the job never finished"
    );
    for _ in 0..3 {
        assert_eq!(api.get("/todos", &user).await.status(), 200);
    }
    let forged = client
        .get(stack.url("/todos"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let mut limited = false;
    for _ in 0..30 {
        if api.login("grafana", crate::api::PASSWORD).await.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the login route's limit never answered 429");

    // Assert: every dashboard query and every recording rule returns at least one series
    // (a counter needs two scrapes before its rate has one, hence the wait).
    let rules = rule_file();
    let mut expressions = dashboard_queries();
    expressions.extend(rules.recorded.iter().cloned());
    assert!(expressions.len() > 25, "{expressions:?}");
    for (name, expr) in &expressions {
        let mut last = Err(String::new());
        let answered = poll_until(Duration::from_secs(30), async || {
            last = prometheus.query(expr).await;
            last.as_ref().is_ok_and(|series| !series.is_empty())
        })
        .await;
        assert!(answered, "{name}: `{expr}` gave no series: {last:?}");
    }
    // Alerts compare a recorded quantity with a threshold: a healthy stack gives no series,
    // but each one must parse and run.
    for (name, expr) in &rules.alerts {
        let result = prometheus.query(expr).await;
        assert!(result.is_ok(), "alert {name}: `{expr}`: {result:?}");
    }

    // Act 2: every backend replica dies, and then Redis, while clients keep asking.
    for i in 0..stack.backends.len() {
        stack.kill_backend(i);
    }
    stack.redis.stop();
    // Assert 2: the pool empties, the todos route's 5xx ratio crosses 5% and the gateway's
    // cluster rate limits lose Redis, so those three alerts become pending (their `for:`
    // keeps them from firing within a test's time). The certificate and queue-lag alerts
    // need days or a backlog; their unit tests (alerts.test.yml) drive them.
    let mut seen = Vec::new();
    let fired = poll_until(Duration::from_secs(60), async || {
        let _ = api.get("/todos", &user).await;
        seen = prometheus.alerts().await;
        let has = |alert: &str, label: &str, value: &str| {
            seen.iter()
                .any(|(name, labels)| name == alert && labels[label] == value)
        };
        has("NoHealthyEndpoint", "pool", "backend")
            && has("HighServerErrorRatio", "route", "todos")
            && has("RedisErrors", "component", "gateway_rate_limits")
    })
    .await;
    assert!(fired, "alerts after the backends and Redis died: {seen:?}");
    stack.shutdown().await;
}
