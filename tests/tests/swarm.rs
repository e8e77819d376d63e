//! The stack on a real Docker Swarm, deployed as `deploy/README.md` tells users to:
//! `deploy/swarm/deploy.sh` (docker-compose.yml with deploy/swarm/stack.yml), the gateway
//! config a Swarm config, the signing key a Swarm secret, and the public images swapped for
//! local ones (`tests/compose/local-swarm.yml`) because this project's machines have no image
//! registry.
//!
//! Clients reach the node's gateway through the load balancer users put in front of a swarm
//! (HAProxy with `deploy/swarm/haproxy.cfg`). Under steady traffic (reads, and creates
//! carrying an `Idempotency-Key`) it scales the
//! backend 3 -> 6 -> 2, rolls the backend's tasks over (`docker service update --force`),
//! rolls out an edited gateway config and kills a backend task. No request may fail in any
//! phase, and every accepted todo must exist exactly once. The stack, its secret and its
//! volumes are removed at the end, and the engine leaves the swarm if the test made it join.
//!
//! Its own test binary, like the compose test: its image build must never compete with the
//! timing-sensitive tests of the harness (`.config/nextest.toml` also keeps the two Docker
//! tests apart).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_yaml::Value as Yaml;
use tests::api::{TodoApi, User};
use tests::docker::{
    compose_command, content_hash, docker, docker_ok, local_images, nofile_limit, repo_root,
};
use tests::load::{answered_since, assert_none_failed, TodoTraffic};
use tests::{assert_eventually, free_port, poll_until, run_ok};

/// How long the stack may take to come up once its images exist.
const STARTUP: Duration = Duration::from_secs(180);
/// How long a scale or a rollout may take to converge.
const CONVERGE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_stack_scales_rolls_out_and_loses_a_task_without_failing_a_request() {
    if !tests::docker::engine_answers("the swarm test") {
        return;
    }

    // Arrange: images, a swarm (joined for the test if the engine is in none), a secret, the
    // stack deployed with a config of the test's own.
    let images = local_images();
    build_images(&images);
    let _swarm = Swarm::join();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let (http_port, https_port) = (free_port(), free_port());
    // Declared after the swarm, so dropped (removed) before the engine leaves it.
    let stack = Deployed::new(images, dir, http_port, https_port);
    stack.create_secret();
    stack.deploy();
    let balancer = LoadBalancer::start(http_port, https_port);

    let api = TodoApi::with_client(
        format!("http://127.0.0.1:{}", balancer.http_port),
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    let users = Arc::new(stack.users(&api).await);
    let traffic = TodoTraffic::start(&api.url("/todos"), &users, 4);
    let phase_ok = |phase: &str| assert_none_failed(phase, traffic.ok(), &traffic.failures());
    assert_eventually!(
        within = Duration::from_secs(60),
        traffic.by_instance().len() >= 3,
        "not all 3 replicas answered within 60 s: {:?}",
        traffic.by_instance()
    );
    phase_ok("steady traffic on 3 replicas");
    // Prometheus runs with the stack's alert rules (a config of their own).
    assert_eventually!(
        within = Duration::from_secs(60),
        stack
            .prometheus_rules()
            .contains("\"HighServerErrorRatio\""),
        "Prometheus has not loaded config/prometheus/alerts.yml: {}",
        stack.prometheus_rules()
    );

    // Act + Assert 1: scale the backend 3 -> 6; every new task gets traffic.
    stack.scale("backend", 6).await;
    let before = traffic.by_instance();
    assert_eventually!(
        within = Duration::from_secs(30),
        answered_since(&before, &traffic.by_instance()).len() >= 6,
        "not all 6 replicas answered within 30 s of converging"
    );
    phase_ok("scaling the backend 3 -> 6");

    // 2: scale 6 -> 2; only two replicas answer afterwards.
    stack.scale("backend", 2).await;
    assert_eventually!(
        within = Duration::from_secs(40),
        answering_now(&traffic).await.len() == 2,
        "more than 2 replicas still answered 40 s after scaling down"
    );
    phase_ok("scaling the backend 6 -> 2");

    // 3: replace every backend task (a new image rolls out the same way), start-first.
    let old = answering_now(&traffic).await;
    let old_tasks = stack.running_containers("backend");
    docker_ok(&[
        "service",
        "update",
        "--detach",
        "--force",
        &stack.service("backend"),
    ]);
    stack.converged("backend", 2, &old_tasks).await;
    assert_eventually!(
        within = Duration::from_secs(30),
        {
            let now = answering_now(&traffic).await;
            now.len() == 2 && now.is_disjoint(&old)
        },
        "the rolled-over backend tasks did not take the traffic within 30 s"
    );
    phase_ok("rolling the backend's tasks over");

    // 4: roll out an edited gateway config: a new Swarm config, the node's gateway replaced
    // (stop-first: it holds the node's ports) while the balancer retries refused
    // connections; afterwards every answer carries the edit.
    let edited = add_config_marker(&config);
    let old_tasks = stack.running_containers("gateway");
    stack.deploy();
    stack.converged("gateway", 1, &old_tasks).await;
    let mut marked = 0;
    let fresh = reqwest::Client::new();
    for _ in 0..20 {
        let user = &users[0];
        let resp = fresh
            .get(api.url("/todos?limit=1"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        if resp.headers().get("x-config-version").map(|v| v.as_bytes()) == Some(b"2") {
            marked += 1;
        }
    }
    assert_eq!(marked, 20, "answers without the edited config's header");
    let logs = stack.logs("gateway");
    let starts: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("gateway starting"))
        .collect();
    let hash = content_hash(&edited);
    assert!(
        starts.iter().any(|l| l.contains(&hash)),
        "no gateway started with config {hash}:\n{}",
        starts.join("\n")
    );
    phase_ok("rolling out an edited gateway config");

    // 5: SIGKILL a backend task; Swarm replaces it, the gateway retries around it.
    let victim = stack.running_containers("backend")[0].clone();
    docker_ok(&["kill", &victim]);
    assert!(
        traffic.progress(200, Duration::from_secs(60)).await,
        "traffic stalled after the kill"
    );
    stack.converged("backend", 2, &[victim]).await;
    phase_ok("killing a backend task");

    // Assert: no failure at all, and every accepted todo exists exactly once.
    let report = traffic.stop().await;
    report.assert_no_failures("the whole run");
    println!(
        "swarm: {} requests answered, {} todos accepted",
        report.ok,
        report.accepted.len()
    );
    assert!(
        report.accepted.len() >= 100,
        "only {} todos were accepted",
        report.accepted.len()
    );
    report
        .assert_each_todo_once(&api, &users, Duration::from_secs(60))
        .await;

    // The stack goes with everything it made.
    stack.remove();
}

/// The replicas that answered the next 200 requests of the traffic (4 clients spread them
/// over every replica the gateway still sends to).
async fn answering_now(traffic: &TodoTraffic) -> HashSet<String> {
    let before = traffic.by_instance();
    assert!(
        traffic.progress(200, Duration::from_secs(30)).await,
        "traffic stalled"
    );
    answered_since(&before, &traffic.by_instance())
}

/// The gateway and backend images, built with compose from the local base images (nothing
/// else builds them: Swarm only runs images).
fn build_images(images: &[(String, String)]) {
    let compose = compose_command();
    run_ok(
        Command::new(&compose[0])
            .args(&compose[1..])
            .args([
                "-f",
                "docker-compose.yml",
                "-f",
                "docker-compose.override.yml",
            ])
            .args([
                "-f",
                "tests/compose/local.yml",
                "build",
                "gateway",
                "backend",
            ])
            .current_dir(repo_root())
            .envs(images.iter().map(|(k, v)| (k, v))),
        "compose build",
    );
}

/// The test's gateway config: the committed gateway.yaml without the rate limits of the
/// routes the test uses. Through the routing mesh every client has the same address, and
/// one user's closed-loop traffic must measure failures, not limits.
fn test_config(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("gateway.yaml")).unwrap();
    let path = dir.join("gateway.yaml");
    let routes = ["login", "register", "auth", "todos", "jobs"];
    std::fs::write(
        &path,
        tests::stack::without_rate_limits(&text, &routes).unwrap(),
    )
    .unwrap();
    path
}

/// Edit `config` so that the todos route answers `X-Config-Version: 2`: the edited text.
fn add_config_marker(config: &Path) -> String {
    let mut doc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    for route in doc["routes"].as_sequence_mut().unwrap() {
        if route["name"] == "todos" {
            route["response_headers"] =
                serde_yaml::from_str("{ set: { X-Config-Version: \"2\" } }").unwrap();
        }
    }
    let edited = serde_yaml::to_string(&doc).unwrap();
    std::fs::write(config, &edited).unwrap();
    edited
}

/// The engine's swarm for the test: joined (on loopback) if the engine was in none, and left
/// again on drop; this node labelled for the stack's data services, and unlabelled on drop
/// if the label was the test's.
struct Swarm {
    joined: bool,
    /// Whether joining made the `docker_gwbridge` network, which leaving does not remove.
    made_gwbridge: bool,
    node: String,
    labelled: bool,
}

impl Swarm {
    fn join() -> Self {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let had_gwbridge = docker(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"]);
        let joined = match state.trim() {
            "inactive" => {
                let listen = format!("127.0.0.1:{}", free_port());
                docker_ok(&[
                    "swarm",
                    "init",
                    "--advertise-addr",
                    "127.0.0.1",
                    "--listen-addr",
                    &listen,
                ]);
                true
            }
            "active" => false,
            other => panic!("the engine's swarm is {other:?}, neither inactive nor active"),
        };
        let node = docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"])
            .trim()
            .to_owned();
        let label = docker(&[
            "node",
            "inspect",
            "--format",
            "{{index .Spec.Labels \"todo-stack.data\"}}",
            &node,
        ]);
        let labelled = label.trim() != "true";
        if labelled {
            docker_ok(&[
                "node",
                "update",
                "--label-add",
                "todo-stack.data=true",
                &node,
            ]);
        }
        Self {
            joined,
            made_gwbridge: joined && had_gwbridge.trim().is_empty(),
            node,
            labelled,
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.joined {
            docker(&["swarm", "leave", "--force"]);
            if self.made_gwbridge {
                docker(&["network", "rm", "docker_gwbridge"]);
            }
        } else if self.labelled {
            docker(&[
                "node",
                "update",
                "--label-rm",
                "todo-stack.data",
                &self.node,
            ]);
        }
    }
}

/// One deployed stack, removed on drop whatever happened.
struct Deployed {
    name: String,
    env: Vec<(String, String)>,
    secret: String,
    /// The gateway.yaml the stack's config is made from, and a compose file of the test's.
    dir: tempfile::TempDir,
    removed: std::cell::Cell<bool>,
}

impl Deployed {
    fn new(images: Vec<(String, String)>, dir: tempfile::TempDir, http: u16, https: u16) -> Self {
        let name = format!("swarmtest{}", std::process::id());
        let secret = format!("{name}-jwt-signing-key");
        let mut env = images;
        env.extend([
            ("GATEWAY_HTTP_PORT".to_owned(), http.to_string()),
            ("GATEWAY_HTTPS_PORT".to_owned(), https.to_string()),
            (
                "GATEWAY_CONFIG_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
            (
                "GATEWAY_NOFILE".to_owned(),
                nofile_limit().min(65_536).to_string(),
            ),
            ("JWT_SIGNING_KEY_SECRET".to_owned(), secret.clone()),
            // The images exist on this node only.
            ("RESOLVE_IMAGE".to_owned(), "never".to_owned()),
        ]);
        // A job a killed replica held is taken over after the visibility timeout: shorter
        // than the default, so the test's last check does not wait 30 s.
        std::fs::write(
            dir.path().join("test.yml"),
            "version: \"3.9\"\nservices:\n  backend:\n    environment:\n      \
             JOB_VISIBILITY_TIMEOUT_SECONDS: \"5\"\n",
        )
        .unwrap();
        Self {
            name,
            env,
            secret,
            dir,
            removed: std::cell::Cell::new(false),
        }
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.name)
    }

    /// The signing key, made by the backend image and handed to Swarm on standard input, as
    /// deploy/README.md does it.
    fn create_secret(&self) {
        let key = docker_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "backend",
            "todo-stack/backend:dev",
            "keygen",
        ]);
        let mut create = Command::new("docker")
            .args(["secret", "create", &self.secret, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run docker secret create");
        use std::io::Write as _;
        create
            .stdin
            .take()
            .unwrap()
            .write_all(key.as_bytes())
            .unwrap();
        assert!(create.wait().unwrap().success(), "docker secret create");
    }

    /// `deploy/swarm/deploy.sh`, as a user runs it, plus the local images and the test's file.
    fn deploy(&self) {
        let test_file = self.dir.path().join("test.yml");
        run_ok(
            Command::new(repo_root().join("deploy/swarm/deploy.sh"))
                .arg(&self.name)
                .arg(repo_root().join("tests/compose/local-swarm.yml"))
                .arg(&test_file)
                .envs(self.env.iter().map(|(k, v)| (k, v))),
            "deploy.sh",
        );
    }

    /// Register and log in three users once the stack answers.
    async fn users(&self, api: &TodoApi) -> Vec<User> {
        let served = poll_until(STARTUP, async || {
            let jwks = api
                .http()
                .get(api.url("/.well-known/jwks.json"))
                .send()
                .await;
            jwks.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(
            served,
            "the stack did not serve within {STARTUP:?}:\n{}",
            self.logs("gateway")
        );
        let mut users = Vec::new();
        for i in 0..3 {
            users.push(api.user(&format!("swarm-{i}")).await.unwrap());
        }
        users
    }

    /// `docker service scale`, then wait until the service has converged.
    async fn scale(&self, service: &str, replicas: usize) {
        let spec = format!("{}={replicas}", self.service(service));
        docker_ok(&["service", "scale", "--detach", &spec]);
        self.converged(service, replicas, &[]).await;
    }

    /// Wait until `service` runs exactly `replicas` tasks, all healthy, none of them in
    /// `replaced` (containers an update or a kill ends), and no update is in progress.
    async fn converged(&self, service: &str, replicas: usize, replaced: &[String]) {
        let name = self.service(service);
        let done = poll_until(CONVERGE, async || {
            let update = docker(&[
                "service",
                "inspect",
                "--format",
                "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                &name,
            ]);
            let updating = matches!(update.trim(), "updating" | "rollback_started");
            let running = self.running_containers(service);
            let gone = running.iter().all(|id| !replaced.contains(id));
            let healthy = running.iter().all(|id| {
                docker(&["inspect", "--format", "{{.State.Health.Status}}", id]).trim() == "healthy"
            });
            !updating && running.len() == replicas && gone && healthy
        })
        .await;
        let update = docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .UpdateStatus}}",
            &name,
        ]);
        assert!(
            done,
            "{name} did not converge to {replicas} healthy tasks within {CONVERGE:?} \
             (update status {update}):\n{}",
            docker(&["service", "ps", "--no-trunc", &name])
        );
        assert!(
            !update.contains("rollback"),
            "{name}'s update was rolled back: {update}"
        );
    }

    /// The rule groups the stack's Prometheus has loaded (`/api/v1/rules`), asked from inside
    /// its container (its port is not published on Swarm); empty while it is not up.
    fn prometheus_rules(&self) -> String {
        let Some(container) = self.running_containers("prometheus").into_iter().next() else {
            return String::new();
        };
        let ask = "exec 3<>/dev/tcp/127.0.0.1/9090 && \
                   printf 'GET /api/v1/rules HTTP/1.0\r\n\r\n' >&3 && cat <&3";
        docker(&["exec", &container, "bash", "-c", ask])
    }

    /// Ids of the running containers of `service`'s tasks.
    fn running_containers(&self, service: &str) -> Vec<String> {
        let label = format!(
            "label=com.docker.swarm.service.name={}",
            self.service(service)
        );
        docker(&["ps", "-q", "--filter", &label, "--filter", "status=running"])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The logs of every container `service` ran, running or not (`docker service
    /// logs` can hang on this engine once a task is gone).
    fn logs(&self, service: &str) -> String {
        let label = format!(
            "label=com.docker.swarm.service.name={}",
            self.service(service)
        );
        let mut logs = String::new();
        for id in docker(&["ps", "-aq", "--filter", &label]).lines() {
            let out = Command::new("docker")
                .args(["logs", id])
                .output()
                .expect("run docker logs");
            logs.push_str(&String::from_utf8_lossy(&out.stdout));
            logs.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        logs
    }

    /// Everything of the stack still in the engine: services, containers, networks,
    /// configs, volumes, and the secret.
    fn leftovers(&self) -> String {
        let label = format!("label=com.docker.stack.namespace={}", self.name);
        let secret = format!("name={}", self.secret);
        [
            docker(&["service", "ls", "-q", "--filter", &label]),
            docker(&["ps", "-aq", "--filter", &label]),
            docker(&["network", "ls", "-q", "--filter", &label]),
            docker(&["config", "ls", "-q", "--filter", &label]),
            docker(&["volume", "ls", "-q", "--filter", &label]),
            docker(&["secret", "ls", "-q", "--filter", &secret]),
        ]
        .concat()
    }

    /// `docker stack rm`, then its volumes and the secret once its containers are gone:
    /// whether nothing is left within a minute.
    fn remove_all(&self) -> bool {
        let label = format!("label=com.docker.stack.namespace={}", self.name);
        docker(&["stack", "rm", &self.name]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let volumes = docker(&["volume", "ls", "-q", "--filter", &label]);
            for volume in volumes.lines() {
                docker(&["volume", "rm", volume]);
            }
            docker(&["secret", "rm", &self.secret]);
            if self.leftovers().trim().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Containers stop asynchronously after `stack rm`: poll.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Remove the stack and insist nothing of it is left.
    fn remove(&self) {
        self.removed.set(true);
        assert!(
            self.remove_all(),
            "left behind after docker stack rm:\n{}",
            self.leftovers()
        );
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        if self.removed.get() {
            return;
        }
        if std::thread::panicking() {
            for service in ["gateway", "backend"] {
                let logs = self.logs(service);
                let lines: Vec<&str> = logs
                    .lines()
                    .filter(|l| {
                        !(l.contains("\"target\":\"access\"") && l.contains("\"status\":20"))
                    })
                    .collect();
                let tail = &lines[lines.len().saturating_sub(80)..];
                eprintln!(
                    "--- {service} logs (2xx access lines left out) ---\n{}",
                    tail.join("\n")
                );
            }
        }
        self.remove_all();
    }
}

/// This node's address as a balancer on another machine would reach it: the host's end of
/// `docker_gwbridge`. Not loopback, which Docker serves through its userland proxy, unlike
/// the traffic of an external balancer (which the kernel forwards to the task, and which a
/// node with no gateway listening refuses outright).
fn node_address() -> String {
    docker_ok(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
    ])
    .trim()
    .to_owned()
}

/// HAProxy with `deploy/swarm/haproxy.cfg`, in front of this one node's gateway.
struct LoadBalancer {
    http_port: u16,
    process: tests::process::Process,
    _dir: tempfile::TempDir,
}

impl LoadBalancer {
    fn start(node_http: u16, node_https: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (http_port, https_port) = (free_port(), free_port());
        let mut command = Command::new("haproxy");
        command
            .args(["-db", "-f"])
            .arg(repo_root().join("deploy/swarm/haproxy.cfg"))
            .env("LB_HTTP", format!("127.0.0.1:{http_port}"))
            .env("LB_HTTPS", format!("127.0.0.1:{https_port}"))
            .env("NODE_1", node_address())
            .env("NODE_HTTP_PORT", node_http.to_string())
            .env("NODE_HTTPS_PORT", node_https.to_string());
        let process = tests::process::Process::spawn_group(
            "haproxy",
            &mut command,
            Some(&dir.path().join("haproxy.log")),
        )
        .expect("start haproxy");
        tests::wait_for_port(http_port, "haproxy");
        Self {
            http_port,
            process,
            _dir: dir,
        }
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.process.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains(" 200 ") && !l.contains(" 202 "))
                .collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "--- haproxy log (200 and 202 left out) ---\n{}",
                tail.join("\n")
            );
        }
    }
}
