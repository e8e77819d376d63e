//! The compose stack on a real Docker engine: `docker-compose.yml` exactly as users run it,
//! with the public images swapped for local ones (`tests/compose/local.yml`) because this
//! project's machines have no image registry.
//!
//! It is its own test binary so that its image build (a release build inside Docker) never
//! competes with the timing-sensitive tests of the harness. Without a Docker engine it prints
//! a SKIP line and passes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use tests::gateway::free_port;
use tests::load::{Load, LoadReport, LoadSpec};

/// How long the stack may take to come up after its images are built.
const STARTUP: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// `docker compose` (v2) when present, else the `docker-compose` v1.29 that Debian ships.
fn compose_command() -> Vec<String> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if v2 {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// One compose project, torn down with `down -v` on drop, whatever happened.
struct Project {
    name: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
    http: String,
    admin: String,
    prometheus: String,
    /// The gateway.yaml the gateway container mounts: a copy the test edits.
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Project {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .args(["-p", &self.name])
            .args(["-f", "docker-compose.yml", "-f", "tests/compose/local.yml"])
            .args(args)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.output().expect("run docker compose")
    }

    /// Run and insist on success.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn scale(&self, replicas: usize) {
        self.ok(&[
            "up",
            "-d",
            "--no-recreate",
            "--scale",
            &format!("backend={replicas}"),
        ]);
    }

    /// Ids of the running backend containers.
    fn backend_containers(&self) -> Vec<String> {
        self.ok(&["ps", "-q", "backend"])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|id| docker(&["inspect", "-f", "{{.State.Running}}", id]).trim() == "true")
            .map(str::to_owned)
            .collect()
    }

    /// Every container, volume and network labelled with this project.
    fn leftovers(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.name);
        [
            docker(&["ps", "-aq", "--filter", &label]),
            docker(&["volume", "ls", "-q", "--filter", &label]),
            docker(&["network", "ls", "-q", "--filter", &label]),
        ]
        .concat()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Everything but the successful requests' access-log lines.
            let logs = self.run(&["logs", "--no-color"]);
            let text = String::from_utf8_lossy(&logs.stdout);
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !(l.contains("\"target\":\"access\"") && l.contains("\"status\":20")))
                .collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "--- compose logs (2xx access lines left out) ---\n{}",
                tail.join("\n")
            );
        }
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test's gateway config: the committed gateway.yaml without the per-user limits on
/// `/todos` and `/jobs`, so that a closed-loop load from one user measures failures, not
/// rate limiting. The reload step adds a limit back. The directory is mounted as the
/// container's config directory, so it must be readable by the gateway's user.
fn test_config(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(repo_root().join("gateway.yaml")).unwrap();
    let path = dir.join("gateway.yaml");
    std::fs::write(
        &path,
        tests::stack::without_rate_limits(&text, &["todos", "jobs"]).unwrap(),
    )
    .unwrap();
    path
}

/// This process' hard limit on open files, which the Docker engine on the same machine
/// usually shares.
fn nofile_limit() -> u64 {
    let out = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(65_536)
}

/// The first 16 hex digits of the SHA-256 of `text`, as the gateway logs applied configs.
fn content_hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Build (or reuse) the local stand-in images; their names in `local.yml`'s variables.
fn local_images() -> Vec<(String, String)> {
    let out = Command::new(repo_root().join("tests/compose/local-images.sh"))
        .output()
        .expect("run local-images.sh");
    assert!(
        out.status.success(),
        "local-images.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), 3, "local-images.sh printed {names:?}");
    vec![
        ("LOCAL_DEBIAN_IMAGE".into(), names[0].clone()),
        ("LOCAL_RUST_IMAGE".into(), names[1].clone()),
        ("LOCAL_POSTGRES_IMAGE".into(), names[2].clone()),
    ]
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    async fn post(&self, url: &str, body: &Value, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST")
    }

    async fn get(&self, url: &str, token: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// Register and log in; the access token.
    async fn user(&self, project: &Project, name: &str) -> String {
        let creds = json!({"username": name, "password": "correct horse battery"});
        let reg = self
            .post(&project.url("/auth/register"), &creds, None)
            .await;
        assert_eq!(reg.status(), 201, "{}", reg.text().await.unwrap());
        let login: Value = self
            .post(&project.url("/auth/login"), &creds, None)
            .await
            .json()
            .await
            .unwrap();
        login["access_token"].as_str().unwrap().to_owned()
    }

    /// POST /todos; the job's status URL.
    async fn create_todo(&self, project: &Project, token: &str, title: &str) -> String {
        let resp = self
            .post(
                &project.url("/todos"),
                &json!({"title": title}),
                Some(token),
            )
            .await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let job: Value = resp.json().await.unwrap();
        job["status_url"].as_str().unwrap().to_owned()
    }

    async fn job_status(&self, project: &Project, token: &str, status_url: &str) -> String {
        let job: Value = self
            .get(&project.url(status_url), token)
            .await
            .json()
            .await
            .unwrap_or_default();
        job["status"].as_str().unwrap_or("?").to_owned()
    }

    /// Every todo title of the user, following the cursor to the end.
    async fn all_titles(&self, project: &Project, token: &str) -> Vec<String> {
        let mut titles = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/todos?limit=200&cursor={c}"),
                None => "/todos?limit=200".to_owned(),
            };
            let page: Value = self
                .get(&project.url(&path), token)
                .await
                .json()
                .await
                .unwrap();
            for item in page["items"].as_array().unwrap() {
                titles.push(item["title"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return titles,
            }
        }
    }
}

fn instance_load(project: &Project, token: &str, concurrency: usize) -> Load {
    Load::start_with(&LoadSpec {
        url: project.url("/todos"),
        concurrency,
        max_requests: 2_000_000,
        bearer: Some(token.to_owned()),
        identity_header: "x-instance",
    })
}

fn assert_no_failures(report: &LoadReport, what: &str) {
    assert!(
        report.failures.is_empty(),
        "{what} failed {} of {} requests: {:?}",
        report.failures.len(),
        report.ok + report.failures.len(),
        &report.failures[..report.failures.len().min(10)]
    );
}

/// The replicas that answered between two snapshots of a load's report.
fn answered_since(
    before: &HashMap<String, usize>,
    now: &HashMap<String, usize>,
) -> HashSet<String> {
    now.iter()
        .filter(|(name, n)| **n > before.get(*name).copied().unwrap_or(0))
        .map(|(name, _)| name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_scales_survives_kills_reloads_live_and_is_scraped() {
    if !Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("SKIP: no Docker engine answers `docker info`; the compose test did not run");
        return;
    }

    // Arrange: local images, a project with its own name and free host ports.
    let images = local_images();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let (http_port, admin_port, prometheus_port) = (free_port(), free_port(), free_port());
    let mut env = images;
    env.extend([
        ("GATEWAY_HTTP_PORT".to_owned(), http_port.to_string()),
        ("GATEWAY_ADMIN_PORT".to_owned(), admin_port.to_string()),
        ("PROMETHEUS_PORT".to_owned(), prometheus_port.to_string()),
        (
            "GATEWAY_CONFIG_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        // Containers cannot get more descriptors than the engine has (20000 in this
        // project's sandboxes); compose asks for 65536 by default.
        (
            "GATEWAY_NOFILE".to_owned(),
            nofile_limit().min(65_536).to_string(),
        ),
    ]);
    let project = Project {
        name: format!("stacktest{}", std::process::id()),
        command: compose_command(),
        env,
        http: format!("http://127.0.0.1:{http_port}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
        prometheus: format!("http://127.0.0.1:{prometheus_port}"),
        config,
        _dir: dir,
    };
    project.ok(&["build"]);
    project.ok(&["up", "-d", "--scale", "backend=3"]);
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    wait_for("the gateway is ready", STARTUP, async || {
        client
            .http
            .get(format!("{}/readyz", project.admin))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // Act + Assert 1: the API through the published port.
    let token = client.user(&project, "alice").await;
    let status_url = client.create_todo(&project, &token, "first").await;
    wait_for(
        "the first job is done",
        Duration::from_secs(30),
        async || client.job_status(&project, &token, &status_url).await == "done",
    )
    .await;
    assert_eq!(client.all_titles(&project, &token).await, vec!["first"]);

    // 2: all three replicas answer.
    let load = instance_load(&project, &token, 4);
    wait_for(
        "all 3 replicas answer",
        Duration::from_secs(30),
        async || load.snapshot().by_upstream.len() >= 3,
    )
    .await;

    // 3: scale to 5; the new replicas get traffic within 10 s of their containers starting.
    project.scale(5);
    let (before, started) = (load.snapshot().by_upstream, Instant::now());
    wait_for(
        "5 replicas answer after scaling up",
        Duration::from_secs(10),
        async || answered_since(&before, &load.snapshot().by_upstream).len() >= 5,
    )
    .await;
    println!("scaled to 5: all answered after {:?}", started.elapsed());

    // 4: scale to 1 under the same load: no failed request.
    project.scale(1);
    let before = load.snapshot().by_upstream;
    wait_for(
        "only 1 replica answers",
        Duration::from_secs(40),
        async || {
            let later = load.snapshot().by_upstream;
            tokio::time::sleep(Duration::from_secs(3)).await;
            answered_since(&later, &load.snapshot().by_upstream).len() == 1
        },
    )
    .await;
    let report = load.stop().await;
    assert_no_failures(&report, "scaling 5 -> 1 under load");
    assert!(
        !answered_since(&before, &report.by_upstream).is_empty(),
        "the last replica answered"
    );

    // 5: back to 3; queue 100 jobs, SIGKILL one replica under GET load: no failed GET,
    // and every job applied exactly once.
    project.scale(3);
    let load = instance_load(&project, &token, 4);
    wait_for(
        "3 replicas answer again",
        Duration::from_secs(40),
        async || load.snapshot().by_upstream.len() >= 3,
    )
    .await;
    let mut jobs = Vec::new();
    for i in 0..100 {
        jobs.push(
            client
                .create_todo(&project, &token, &format!("job-{i}"))
                .await,
        );
    }
    let victim = project.backend_containers()[0].clone();
    docker(&["kill", &victim]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = load.stop().await;
    assert_no_failures(&report, "killing a replica under load");
    // A job the killed replica held is taken over after the visibility timeout (30 s).
    wait_for("every job is done", Duration::from_secs(120), async || {
        for url in &jobs {
            if client.job_status(&project, &token, url).await != "done" {
                return false;
            }
        }
        true
    })
    .await;
    let titles = client.all_titles(&project, &token).await;
    let unique: HashSet<&String> = titles.iter().collect();
    assert_eq!(titles.len(), 101, "one todo per job, and the first");
    assert_eq!(unique.len(), 101, "no job applied twice");

    // 6: add a rate limit to the mounted gateway.yaml, saved the way `sed -i`, vim and
    // `git checkout` save (a new file renamed over the old one): 429s, no restart, and the
    // log names the hash of the applied text.
    let gateway = project.ok(&["ps", "-q", "gateway"]).trim().to_owned();
    let started_before = docker(&["inspect", "-f", "{{.State.StartedAt}}", &gateway]);
    let text = std::fs::read_to_string(&project.config).unwrap();
    let mut doc: Yaml = serde_yaml::from_str(&text).unwrap();
    for route in doc["routes"].as_sequence_mut().unwrap() {
        if route["name"] == "todos" {
            route["rate_limits"] = serde_yaml::from_str(
                "[{ key: subject, rate: 1, per: 1m, burst: 1, scope: cluster }]",
            )
            .unwrap();
        }
    }
    let edited = serde_yaml::to_string(&doc).unwrap();
    let replacement = project.config.with_extension("yaml.new");
    std::fs::write(&replacement, &edited).unwrap();
    std::fs::rename(&replacement, &project.config).unwrap();
    wait_for("429s after the edit", Duration::from_secs(10), async || {
        client.get(&project.url("/todos"), &token).await.status() == 429
    })
    .await;
    let logs = project.ok(&["logs", "--no-color", "gateway"]);
    let hash = content_hash(&edited);
    assert!(
        logs.lines()
            .any(|l| l.contains("config reloaded") && l.contains(&hash)),
        "no reload of {hash} in the gateway's log:\n{logs}"
    );
    let started_after = docker(&["inspect", "-f", "{{.State.StartedAt}}", &gateway]);
    assert_eq!(
        started_before, started_after,
        "the gateway was not restarted"
    );

    // 7: Prometheus scrapes the gateway and every running backend replica.
    wait_for(
        "Prometheus sees the gateway and every replica up",
        Duration::from_secs(60),
        async || {
            let Ok(resp) = client
                .http
                .get(format!(
                    "{}/api/v1/targets?state=active",
                    project.prometheus
                ))
                .send()
                .await
            else {
                return false;
            };
            let body: Value = resp.json().await.unwrap_or_default();
            let targets = body["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let up = |job: &str| {
                targets
                    .iter()
                    .filter(|t| t["labels"]["job"] == job && t["health"] == "up")
                    .count()
            };
            let all_up = targets.iter().all(|t| t["health"] == "up");
            let replicas = project.backend_containers().len();
            all_up && up("gateway") == 1 && up("backend") == replicas
        },
    )
    .await;

    // 8: down -v leaves nothing of the project behind.
    project.ok(&["down", "-v", "--remove-orphans", "-t", "5"]);
    assert_eq!(
        project.leftovers().trim(),
        "",
        "containers, volumes or networks left"
    );
}
