//! `config/gateway.schema.json` as an editor or CI applies it: `check-jsonschema` (PyPI, in
//! the venv of `scripts/python-tools.txt`) validates gateway configs against it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A tool of `scripts/python-tools.txt`: `$GATEWAY_VENV/bin/<name>` (default venv
/// `/var/tmp/gateway-venv`, which `scripts/install-deps.sh test` fills).
pub fn python_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("GATEWAY_VENV").unwrap_or_else(|| "/var/tmp/gateway-venv".into());
    let tool = Path::new(&venv).join("bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run scripts/install-deps.sh test",
        tool.display()
    );
    tool
}

/// A committed schema of `config/` (`gateway.schema.json`, `status.schema.json`).
pub fn schema_path(name: &str) -> PathBuf {
    crate::docker::repo_root().join("config").join(name)
}

/// Validate gateway configs against `config/gateway.schema.json` (see [`validate`]).
pub fn schema_errors(files: &[PathBuf]) -> HashMap<PathBuf, Vec<String>> {
    validate(&schema_path("gateway.schema.json"), files)
}

/// Validate `files` (YAML or JSON) against `schema` in one run of check-jsonschema: each
/// file's errors as `path: message` (an empty list for a valid file).
pub fn validate(schema: &Path, files: &[PathBuf]) -> HashMap<PathBuf, Vec<String>> {
    let out = Command::new(python_tool("check-jsonschema"))
        .args(["--output-format", "json", "--schemafile"])
        .arg(schema)
        .args(files)
        .output()
        .expect("check-jsonschema starts");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-jsonschema printed no JSON report ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let parse_errors = report["parse_errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        parse_errors.is_empty(),
        "files it could not read: {parse_errors:?}"
    );
    let mut errors: HashMap<PathBuf, Vec<String>> =
        files.iter().map(|f| (f.clone(), Vec::new())).collect();
    for error in report["errors"].as_array().into_iter().flatten() {
        let file = PathBuf::from(error["filename"].as_str().unwrap_or_default());
        let line = format!(
            "{}: {}",
            error["path"].as_str().unwrap_or("?"),
            error["message"]
        );
        errors.entry(file).or_default().push(line);
    }
    errors
}
