//! The compose stack on a real Docker engine: `docker-compose.yml` exactly as users run it,
//! with the public images swapped for local ones (`tests/compose/local.yml`) because this
//! project's machines have no image registry.
//!
//! It is its own test binary so that its image build (a release build inside Docker) never
//! competes with the timing-sensitive tests of the harness. Without a Docker engine it prints
//! a SKIP line and passes, except under CI (`CI` set), where that is a failure.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml::Value as Yaml;
use tests::gateway::free_port;

#[path = "compose/support.rs"]
mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_scales_survives_kills_reloads_live_and_is_scraped() {
    if !Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        // In CI a missing engine is a failure, not a pass: the stack would go untested.
        assert!(
            std::env::var("CI").is_err(),
            "CI is set but no Docker engine answers `docker info`"
        );
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
