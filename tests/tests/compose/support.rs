//! The compose test's helpers: the project under test, the API client, loads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tests::docker::{docker, repo_root};
use tests::load::{Load, LoadSpec};
use tests::run_ok;

/// How long the stack may take to come up after its images are built.
pub(crate) const STARTUP: Duration = Duration::from_secs(180);

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
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .args(["-p", &self.name])
            .args(["-f", "docker-compose.yml"])
            .args(["-f", "docker-compose.override.yml"])
            .args(["-f", "tests/compose/local.yml"])
            .args(args)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run docker compose")
    }

    /// Run and insist on success.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args), &format!("compose {args:?}"))
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

pub(crate) fn instance_load(project: &Project, token: &str, concurrency: usize) -> Load {
    Load::start_with(&LoadSpec {
        url: project.url("/todos"),
        concurrency,
        max_requests: 2_000_000,
        bearer: Some(token.to_owned()),
        identity_header: "x-instance",
    })
}
