//! `config/gateway.schema.json` and `gateway check` agree: on every committed config both
//! accept, and on a table of broken files the schema refuses exactly the mistakes it can see
//! (keys, types, enumerations, units, bounds), while `gateway check` refuses them all.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::gateway::gateway_bin;
use crate::schema::schema_errors;

/// What the schema should say of a file `gateway check` refuses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Schema {
    /// A shape mistake: the schema refuses it too (an editor underlines it as you type).
    Refuses,
    /// Only the whole file or the disk shows it (a missing pool, a missing key file, an
    /// overlap): the schema accepts it.
    CannotSee,
}

/// A minimal valid config with `extra` lines inserted (top-level keys) or `pool`/`route`
/// replaced.
fn config(top: &str, pool: &str, route: &str) -> String {
    format!(
        "{top}\npools:\n  app:\n    endpoints: [\"127.0.0.1:9\"]\n{pool}\nroutes:\n  - match: {{ path_prefix: /api }}\n    pool: app\n{route}\n"
    )
}

/// (name, file, what the schema says): every file here fails `gateway check`.
fn broken_files() -> Vec<(&'static str, String, Schema)> {
    use Schema::{CannotSee, Refuses};
    vec![
        ("a misspelt top-level key", config("listener: { http: \"0.0.0.0:80\" }", "", ""), Refuses),
        ("a misspelt pool key", config("", "    endpoint: [\"127.0.0.1:8\"]", ""), Refuses),
        ("a misspelt route key", config("", "", "    strip_prefx: true"), Refuses),
        ("a duration without a unit", config("", "    resolve_interval: 5", ""), Refuses),
        ("a duration with an unknown unit", config("", "    resolve_interval: 5 parsecs", ""), Refuses),
        ("an unknown balance", config("", "    balance: least_conn", ""), Refuses),
        ("a number that is text", config("server: { threads: many }", "", ""), Refuses),
        ("zero threads", config("server: { threads: 0 }", "", ""), Refuses),
        ("a size with an unknown unit", config("", "", "    body_limit: 10 megabytes"), Refuses),
        ("TLS 1.1", config("tls: { min_version: 1.1, self_signed: { names: [localhost], storage: tls } }", "", ""), Refuses),
        ("a status class that does not exist", config("", "    circuit_breaker: { failure_statuses: [6xx] }", ""), Refuses),
        ("a rate limit without its period", config("", "", "    rate_limits: [{ rate: 10 }]"), Refuses),
        ("a redirect status that is not one", "routes:\n  - match: { path: /old }\n    redirect: { to: /new, status: 200 }\n".to_owned(), Refuses),
        ("compression neither off nor settings", config("", "", "    compression: on"), Refuses),
        ("an endpoint weight of 0", "pools:\n  app:\n    endpoints: [{ address: \"127.0.0.1:9\", weight: 0 }]\nroutes:\n  - match: { path_prefix: / }\n    pool: app\n".to_owned(), Refuses),
        ("an IPv6 prefix past 128 bits", config("rate_limiting: { ipv6_prefix: 129 }", "", ""), Refuses),
        ("a route without match", "pools:\n  app: { endpoints: [\"127.0.0.1:9\"] }\nroutes:\n  - pool: app\n".to_owned(), Refuses),
        ("an auth mode that does not exist", config("", "", "    auth: always"), Refuses),
        ("a route to a pool that does not exist", "pools:\n  app: { endpoints: [\"127.0.0.1:9\"] }\nroutes:\n  - match: { path_prefix: / }\n    pool: ghost\n".to_owned(), CannotSee),
        ("a path that is not canonical", config("", "", "").replace("path_prefix: /api", "path_prefix: /api/../admin"), CannotSee),
        ("two routes for the same path", config("", "", "  - match: { path_prefix: /api }\n    pool: app"), CannotSee),
        ("a key file that is not there", config("jwt: { issuers: [a], audiences: [b], keys: [{ alg: EdDSA, pem_file: missing.pem }] }", "", ""), CannotSee),
        ("an address that is not one", config("listeners: { http: \"localhost:eighty\" }", "", ""), CannotSee),
    ]
}

fn gateway_check(file: &Path) -> (bool, String) {
    let out = Command::new(gateway_bin())
        .arg("check")
        .arg(file)
        .output()
        .expect("gateway check runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_schema_and_gateway_check_agree_on_valid_and_broken_files() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let minimal = dir.path().join("minimal.yaml");
    std::fs::write(&minimal, config("", "", "")).unwrap();
    let cases = broken_files();
    let mut files = vec![minimal.clone()];
    for (i, (_, text, _)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("broken-{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }

    // Act
    let schema = schema_errors(&files);

    // Assert: the minimal file passes both.
    assert_eq!(schema[&minimal], Vec::<String>::new());
    let (ok, errors) = gateway_check(&minimal);
    assert!(ok, "{errors}");
    // Every broken file fails gateway check; the schema refuses the shape mistakes.
    let mut disagreements = Vec::new();
    for ((name, text, expected), file) in cases.iter().zip(&files[1..]) {
        let (ok, check_errors) = gateway_check(file);
        if ok {
            disagreements.push(format!("{name}: gateway check accepted\n{text}"));
        }
        let refused = !schema[file].is_empty();
        if refused != (*expected == Schema::Refuses) {
            disagreements.push(format!(
                "{name}: the schema {} it (expected {expected:?}); gateway check said: {check_errors}\nschema: {:?}\n{text}",
                if refused { "refused" } else { "accepted" },
                schema[file]
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}

/// What CI runs on the committed configs (`scripts/test.sh` too): both accept each one.
#[test]
fn every_committed_gateway_config_passes_the_schema_and_gateway_check() {
    let repo = crate::docker::repo_root();
    let files: Vec<PathBuf> = [
        "gateway.yaml",
        "config/gateway/local.yaml",
        "deploy/kubernetes/base/gateway.yaml",
    ]
    .iter()
    .map(|f| repo.join(f))
    .collect();
    let schema = schema_errors(&files);
    for file in &files {
        assert_eq!(schema[file], Vec::<String>::new(), "{}", file.display());
        let (ok, errors) = gateway_check(file);
        assert!(ok, "{}: {errors}", file.display());
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.starts_with("# yaml-language-server: $schema=")),
            "{} does not name its schema for editors on its first line",
            file.display()
        );
    }
}
