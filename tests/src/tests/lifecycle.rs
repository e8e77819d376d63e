use std::process::Command;
use std::time::{Duration, Instant};

use super::proxy_all;
use crate::config::Pool;
use crate::gateway;
use crate::upstream::Upstream;

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits() {
    // Arrange
    let up = Upstream::spawn("a").await;
    let mut gw = proxy_all(Pool::upstreams(&[&up])).await;
    gw.wait_ready().await;
    let slow = tokio::spawn(reqwest::get(gw.url("/slow/1500")));
    crate::assert_eventually!(
        up.requests() == 1,
        "the slow request never reached the upstream"
    );

    // Act
    let signalled = Instant::now();
    gw.terminate();
    let response = slow.await.unwrap().expect("in-flight request completes");
    let status = gw.wait_exit(Duration::from_secs(10)).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit: {status:?}\n{}",
        gw.log()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(gw.http).await.is_err(),
        "still accepting"
    );
    // Access lines are buffered; the drained request's line is written before the exit.
    assert!(
        gw.log()
            .lines()
            .any(|l| l.contains("\"target\":\"access\"") && l.contains("/slow/1500")),
        "the in-flight request's access line was lost:\n{}",
        gw.log()
    );
}

#[test]
fn check_accepts_the_committed_configs_and_lists_every_error_of_a_broken_one() {
    // Arrange
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "pools:\n  backend:\n    endpoints: [\"backend:8080\"]\n    timeouts: { connect: 0s }\n\
         routes:\n  - match: { path_prefix: /todos }\n    pool: todo\n",
    )
    .unwrap();

    // Act
    let good = Command::new(gateway::gateway_bin())
        .arg("check")
        .arg(root.join("gateway.yaml"))
        .output()
        .unwrap();
    let bad = Command::new(gateway::gateway_bin())
        .arg("check")
        .arg(&broken)
        .output()
        .unwrap();

    // Assert
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("routes:"));
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let path = broken.display();
    assert!(
        stderr.contains(&format!(
            "{path}:4:17: pools.backend.timeouts.connect: must be greater than 0, got 0s"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}:7:5: routes[0].pool: unknown pool \"todo\" (known: backend)"
        )),
        "{stderr}"
    );
}
