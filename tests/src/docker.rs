//! The Docker engine, for the tests that run the stack as users do (`tests/tests/compose.rs`,
//! `tests/tests/swarm.rs`): whether an engine answers, the local stand-in images, the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether a Docker engine answers `docker info`. Without one a test prints a SKIP line
/// naming `what` and passes, except under CI (`CI` set), where that is a failure: the stack
/// would go untested.
pub fn engine_answers(what: &str) -> bool {
    if Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI is set but no Docker engine answers `docker info`"
    );
    println!("SKIP: no Docker engine answers `docker info`; {what} did not run");
    false
}

/// The workspace root, where `docker-compose.yml` is.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Run `docker` with `args`: its standard output, whether or not it succeeded.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `docker` with `args` and insist on success: its standard output.
pub fn docker_ok(args: &[&str]) -> String {
    crate::run_ok(
        Command::new("docker").args(args),
        &format!("docker {args:?}"),
    )
}

/// Build (or reuse) the local stand-in images (`tests/compose/local-images.sh`): their
/// names in the variables `tests/compose/local.yml` reads.
pub fn local_images() -> Vec<(String, String)> {
    let out = crate::run_ok(
        &mut Command::new(repo_root().join("tests/compose/local-images.sh")),
        "local-images.sh",
    );
    let names: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(names.len(), 3, "local-images.sh printed {names:?}");
    vec![
        ("LOCAL_DEBIAN_IMAGE".into(), names[0].clone()),
        ("LOCAL_RUST_IMAGE".into(), names[1].clone()),
        ("LOCAL_POSTGRES_IMAGE".into(), names[2].clone()),
    ]
}

/// `docker compose` (v2) when present, else the `docker-compose` v1.29 that Debian ships.
pub fn compose_command() -> Vec<String> {
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

/// This process' hard limit on open files, which the Docker engine on the same machine
/// usually shares.
pub fn nofile_limit() -> u64 {
    let out = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(65_536)
}

/// The first 16 hex digits of the SHA-256 of `text`, as the gateway logs applied configs
/// (and `deploy/swarm/deploy.sh` names config versions).
pub fn content_hash(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
