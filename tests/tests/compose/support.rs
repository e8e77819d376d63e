//! The compose test's helpers: the project under test, the API client, loads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::load::{Load, LoadReport, LoadSpec};

/// How long the stack may take to come up after its images are built.
pub(crate) const STARTUP: Duration = Duration::from_secs(180);

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// `docker compose` (v2) when present, else the `docker-compose` v1.29 that Debian ships.
pub(crate) fn compose_command() -> Vec<String> {
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
pub(crate) struct Project {
    pub(crate) name: String,
    pub(crate) command: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) http: String,
    pub(crate) admin: String,
    pub(crate) prometheus: String,
    /// The gateway.yaml the gateway container mounts: a copy the test edits.
    pub(crate) config: PathBuf,
    pub(crate) _dir: tempfile::TempDir,
}

impl Project {
    pub(crate) fn run(&self, args: &[&str]) -> Output {
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
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn scale(&self, replicas: usize) {
        self.ok(&[
            "up",
            "-d",
            "--no-recreate",
            "--scale",
            &format!("backend={replicas}"),
        ]);
    }

    /// Ids of the running backend containers.
    pub(crate) fn backend_containers(&self) -> Vec<String> {
        self.ok(&["ps", "-q", "backend"])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|id| docker(&["inspect", "-f", "{{.State.Running}}", id]).trim() == "true")
            .map(str::to_owned)
            .collect()
    }

    /// Every container, volume and network labelled with this project.
    pub(crate) fn leftovers(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.name);
        [
            docker(&["ps", "-aq", "--filter", &label]),
            docker(&["volume", "ls", "-q", "--filter", &label]),
            docker(&["network", "ls", "-q", "--filter", &label]),
        ]
        .concat()
    }

    pub(crate) fn url(&self, path: &str) -> String {
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

pub(crate) fn docker(args: &[&str]) -> String {
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
pub(crate) fn test_config(dir: &Path) -> PathBuf {
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
pub(crate) fn nofile_limit() -> u64 {
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
pub(crate) fn content_hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Build (or reuse) the local stand-in images; their names in `local.yml`'s variables.
pub(crate) fn local_images() -> Vec<(String, String)> {
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

pub(crate) async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
}

impl Client {
    pub(crate) async fn post(
        &self,
        url: &str,
        body: &Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST")
    }

    pub(crate) async fn get(&self, url: &str, token: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// Register and log in; the access token.
    pub(crate) async fn user(&self, project: &Project, name: &str) -> String {
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
    pub(crate) async fn create_todo(&self, project: &Project, token: &str, title: &str) -> String {
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

    pub(crate) async fn job_status(
        &self,
        project: &Project,
        token: &str,
        status_url: &str,
    ) -> String {
        let job: Value = self
            .get(&project.url(status_url), token)
            .await
            .json()
            .await
            .unwrap_or_default();
        job["status"].as_str().unwrap_or("?").to_owned()
    }

    /// Every todo title of the user, following the cursor to the end.
    pub(crate) async fn all_titles(&self, project: &Project, token: &str) -> Vec<String> {
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

pub(crate) fn instance_load(project: &Project, token: &str, concurrency: usize) -> Load {
    Load::start_with(&LoadSpec {
        url: project.url("/todos"),
        concurrency,
        max_requests: 2_000_000,
        bearer: Some(token.to_owned()),
        identity_header: "x-instance",
    })
}

pub(crate) fn assert_no_failures(report: &LoadReport, what: &str) {
    assert!(
        report.failures.is_empty(),
        "{what} failed {} of {} requests: {:?}",
        report.failures.len(),
        report.ok + report.failures.len(),
        &report.failures[..report.failures.len().min(10)]
    );
}

/// The replicas that answered between two snapshots of a load's report.
pub(crate) fn answered_since(
    before: &HashMap<String, usize>,
    now: &HashMap<String, usize>,
) -> HashSet<String> {
    now.iter()
        .filter(|(name, n)| **n > before.get(*name).copied().unwrap_or(0))
        .map(|(name, _)| name.clone())
        .collect()
}
