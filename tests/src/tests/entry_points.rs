//! Every documented way to build or run the project selects packages the same way, so that a
//! second entry point reuses the first one's build (ARCHITECTURE.md, "One build selection").
//!
//! Cargo unifies dependency features over the packages a command selects. `-p gateway`
//! selects one package and so builds Pingora's tree with other features than `--workspace`
//! does: every `-p` entry point cost a rebuild of the heavy dependencies. `--workspace` and
//! `--bin NAME` (which resolves features over the whole workspace) share one build.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Scripts, docs, configs and sources a user or a script copies a cargo command from.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            // fuzz/ is a workspace of its own; target dirs and .git hold no commands of ours.
            if !matches!(name.as_str(), "target" | "fuzz" | ".git" | "vendor") {
                sources(&path, out);
            }
        } else if [".sh", ".md", ".rs", ".yaml", ".yml"]
            .iter()
            .any(|ext| name.ends_with(ext))
            && name != "RESULTS.md"
        {
            out.push(path);
        }
    }
}

/// `cargo build|run|test` commands that select single packages with `-p`/`--package`.
fn package_selections(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            let Some(at) = line.find("cargo ") else {
                return false;
            };
            let command = &line[at..];
            ["cargo build", "cargo run", "cargo test"]
                .iter()
                .any(|c| command.starts_with(c))
                && command
                    .split_whitespace()
                    .any(|word| word == "-p" || word == "--package")
        })
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn a_package_selection_is_found() {
    let found =
        package_selections("x\ncargo run --release -p gateway -- check\ncargo run --bin gateway\n");
    assert_eq!(found, ["cargo run --release -p gateway -- check"]);
}

#[test]
fn every_entry_point_builds_the_workspace_selection() {
    let mut files = Vec::new();
    sources(&root(), &mut files);
    assert!(
        files.len() > 50,
        "the walk found the project's files: {}",
        files.len()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| !path.ends_with("tests/src/tests/entry_points.rs"))
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            package_selections(&text)
                .into_iter()
                .map(move |line| format!("{}: {line}", path.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "use --workspace or --bin NAME instead of -p, so every entry point shares one build:\n{}",
        offenders.join("\n")
    );
}
