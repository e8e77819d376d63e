//! The compose stack on a real Docker engine: `docker-compose.yml` exactly as users run it,
//! with the public images swapped for local ones (`tests/compose/local.yml`) because this
//! project's machines have no image registry.
//!
//! It is its own test binary so that its image build (a release build inside Docker) never
//! competes with the timing-sensitive tests of the harness. Without a Docker engine it prints
//! a SKIP line and passes, except under CI (`CI` set), where that is a failure.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml::Value as Yaml;
use tests::api::TodoApi;
use tests::docker::{compose_command, content_hash, docker, local_images, nofile_limit};
use tests::load::answered_since;
use tests::{assert_eventually, free_port};

#[path = "compose/support.rs"]
mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_scales_survives_kills_reloads_live_and_is_scraped() {
    if !tests::docker::engine_answers("the compose test") {
        return;
    }

    // Arrange: local images, a project with its own name and free host ports.
    let images = local_images();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let (http_port, admin_port, prometheus_port) = (free_port(), free_port(), free_port());
    let https_port = free_port();
    let mut env = images;
    env.extend([
        ("GATEWAY_HTTP_PORT".to_owned(), http_port.to_string()),
        ("GATEWAY_HTTPS_PORT".to_owned(), https_port.to_string()),
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
    let api = TodoApi::with_client(
        project.http.clone(),
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    assert_eventually!(
        within = STARTUP,
        {
            api.http()
                .get(format!("{}/readyz", project.admin))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
        "the gateway was not ready within {STARTUP:?}"
    );

    // Act + Assert 1: the API through the published port.
    let user = api.user("alice").await.unwrap();
    let status_url = api.accepted_todo(&user, "first").await.unwrap();
    assert_eventually!(
        within = Duration::from_secs(30),
        api.job_status(&user, &status_url).await == "done",
        "the first job was not done within 30 s"
    );
    assert_eq!(api.all_titles(&user).await.unwrap(), vec!["first"]);
    // The same over HTTPS (HTTP/2), with the self-signed localhost certificate the gateway
    // made in its volume on first start.
    let auth = format!("Authorization: Bearer {}", user.token);
    let (version, body) =
        tests::certs::curl_https(https_port, "localhost", "/todos", &["--http2", "-H", &auth])
            .await;
    assert_eq!(version, "2", "{body}");
    assert!(body.contains("\"first\""), "{body}");
    let cn = tests::certs::presented_cn(https_port, Some("localhost"), &[]).await;
    assert_eq!(cn.as_deref(), Some("localhost"));

    // 2: all three replicas answer.
    let load = instance_load(&project, &user.token, 4);
    assert_eventually!(
        within = Duration::from_secs(30),
        load.snapshot().by_upstream.len() >= 3,
        "not all 3 replicas answered within 30 s"
    );

    // 3: scale to 5; the new replicas get traffic within 10 s of their containers starting.
    project.scale(5);
    let (before, started) = (load.snapshot().by_upstream, Instant::now());
    assert_eventually!(
        within = Duration::from_secs(10),
        answered_since(&before, &load.snapshot().by_upstream).len() >= 5,
        "not all 5 replicas answered within 10 s of scaling up"
    );
    println!("scaled to 5: all answered after {:?}", started.elapsed());

    // 4: scale to 1 under the same load: no failed request.
    project.scale(1);
    let before = load.snapshot().by_upstream;
    assert_eventually!(
        within = Duration::from_secs(40),
        {
            let later = load.snapshot().by_upstream;
            tokio::time::sleep(Duration::from_secs(3)).await;
            answered_since(&later, &load.snapshot().by_upstream).len() == 1
        },
        "more than 1 replica still answered 40 s after scaling down"
    );
    let report = load.stop().await;
    report.assert_no_failures("scaling 5 -> 1 under load");
    assert!(
        !answered_since(&before, &report.by_upstream).is_empty(),
        "the last replica answered"
    );

    // 5: back to 3; queue 100 jobs, SIGKILL one replica under GET load: no failed GET,
    // and every job applied exactly once.
    project.scale(3);
    let load = instance_load(&project, &user.token, 4);
    assert_eventually!(
        within = Duration::from_secs(40),
        load.snapshot().by_upstream.len() >= 3,
        "3 replicas did not answer again within 40 s"
    );
    let mut jobs = Vec::new();
    for i in 0..100 {
        jobs.push(api.accepted_todo(&user, &format!("job-{i}")).await.unwrap());
    }
    let victim = project.backend_containers()[0].clone();
    docker(&["kill", &victim]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = load.stop().await;
    report.assert_no_failures("killing a replica under load");
    // A job the killed replica held is taken over after the visibility timeout (30 s).
    assert_eventually!(
        within = Duration::from_secs(120),
        {
            for url in &jobs {
                if api.job_status(&user, url).await != "done" {
                    return false;
                }
            }
            true
        },
        "not every job was done within 120 s"
    );
    let titles = api.all_titles(&user).await.unwrap();
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
    assert_eventually!(
        within = Duration::from_secs(10),
        { api.get("/todos", &user).await.status() == 429 },
        "no 429 within 10 s of the edit"
    );
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
    assert_eventually!(
        within = Duration::from_secs(60),
        {
            let Ok(resp) = api
                .http()
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
        "Prometheus did not see the gateway and every replica up within 60 s"
    );

    // 8: down -v leaves nothing of the project behind.
    project.ok(&["down", "-v", "--remove-orphans", "-t", "5"]);
    assert_eq!(
        project.leftovers().trim(),
        "",
        "containers, volumes or networks left"
    );
}
