//! The backend's OpenAPI document (`backend/openapi.json`, built from the code) against
//! real clients: openapi-spec-validator accepts it as OpenAPI 3.1, the gateway serves it at
//! `/openapi.json`, and schemathesis, through the gateway of the native stack and with a real
//! bearer token, finds no server error, no response its schema does not describe and no
//! undocumented status code; the health operations are run against a replica directly.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run_ok;
use crate::schema::python_tool;
use crate::stack::{without_rate_limits, Stack, StackOptions};

fn committed() -> PathBuf {
    crate::docker::repo_root().join("backend/openapi.json")
}

#[test]
fn the_committed_document_is_valid_openapi_3_1() {
    let out = run_ok(
        Command::new(python_tool("openapi-spec-validator")).arg(committed()),
        "openapi-spec-validator",
    );
    assert!(out.contains("OK"), "{out}");
}

/// What schemathesis checks: the three, and that each body has its declared type.
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance";

/// `st run` on `location` with `args`: its output, which must report success.
async fn schemathesis(location: &str, args: &[&str], report: &Path) -> String {
    let out = tokio::process::Command::new(python_tool("st"))
        .args([
            "run",
            location,
            "--checks",
            CHECKS,
            "--no-color",
            "--seed",
            "20261130",
        ])
        // A fixed seed and no example database: the same cases on every run.
        .args(["--generation-database", "none"])
        .arg("--report")
        .arg("junit")
        .arg("--report-junit-path")
        .arg(report)
        .args(args)
        // Its cache directory goes beside the report, not into the checkout.
        .current_dir(report.parent().expect("the report is in a directory"))
        .output()
        .await
        .expect("schemathesis starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis {location} failed:\n{text}"
    );
    text
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_schema_violation_or_undocumented_status() {
    // Arrange: the committed config without its rate limits (the run is the contract, not
    // the limiter; a 429 would still be a documented answer), and a user with a token.
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(crate::docker::repo_root().join("gateway.yaml")).unwrap();
    let routes = ["login", "register", "auth", "todos", "jobs"];
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, without_rate_limits(&source, &routes).unwrap()).unwrap();
    let stack = Stack::start(&StackOptions::for_tests(config))
        .await
        .expect("the stack starts");
    let api = stack.api();
    let user = api.user("contract").await.unwrap();
    api.accepted_todo(&user, "a todo to find").await.unwrap();

    // Assert: the gateway serves the committed document.
    let served = api
        .http()
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.text().await.unwrap(),
        std::fs::read_to_string(committed()).unwrap()
    );

    // Act and assert: every routed operation through the gateway, authenticated...
    let bearer = format!("Authorization: Bearer {}", user.token);
    let through_gateway = schemathesis(
        &stack.url("/openapi.json"),
        &[
            "--exclude-tag",
            "health",
            "--max-examples",
            "50",
            "--workers",
            "2",
            "--header",
            &bearer,
        ],
        &dir.path().join("gateway-junit.xml"),
    )
    .await;
    // ...and the health operations on a replica, which the gateway does not route.
    let replica = format!("http://{}/openapi.json", stack.backends[0]);
    let on_replica = schemathesis(
        &replica,
        &["--include-tag", "health", "--max-examples", "5"],
        &dir.path().join("replica-junit.xml"),
    )
    .await;
    for (run, output) in [("gateway", &through_gateway), ("replica", &on_replica)] {
        println!("schemathesis, {run}:\n{output}");
        assert!(
            !output.contains("No operations"),
            "the {run} run tested nothing:\n{output}"
        );
    }
    stack.shutdown().await;
}
