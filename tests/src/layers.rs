//! The module layers of the gateway and the backend, read from their sources.
//!
//! [`imports`] lists, for each top-level module of a crate (`src/x.rs` or `src/x/`), the other
//! top-level modules it names through `crate::`. The tests below hold the gateway to the
//! table of allowed edges in ARCHITECTURE.md ("Module layers") and both crates to an import
//! graph without cycles, so a new back edge fails the build of the test suite, not a
//! review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules of the same crate it imports.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The import graph of the crate whose sources are in `src`.
pub fn imports(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in std::fs::read_dir(src).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name")
            .to_owned();
        if name == "lib" || name == "main" || name == "bin" {
            continue;
        }
        let mut files = Vec::new();
        collect_rs(&path, &mut files);
        if files.is_empty() {
            continue;
        }
        let mut deps = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            deps.extend(crate_paths(&text));
        }
        deps.remove(&name);
        graph.insert(name, deps);
    }
    graph
}

fn collect_rs(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            collect_rs(&entry.expect("dir entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// The first segment of every `crate::` path in `text`, including each item of a
/// `crate::{a, b::C}` group.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        out.extend(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                item.push(c);
            }
            out.extend(first_segment(&item));
        } else {
            out.extend(first_segment(rest));
        }
    }
    out
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .then_some(name)
}

/// A cycle in `graph`, if there is one, as the modules along it.
pub fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The allowed edges of a crate, from the table under `heading` in ARCHITECTURE.md: rows of
/// "| `module` | `a`, `b` |".
pub fn allowed_edges(architecture: &str, heading: &str) -> Graph {
    let section = architecture
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {heading:?} section"));
    let mut graph = Graph::new();
    for line in section.lines().skip(1) {
        if line.starts_with('#') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, module, allowed, ..] = cells[..] else {
            continue;
        };
        let Some(module) = module.strip_prefix('`').and_then(|m| m.strip_suffix('`')) else {
            continue;
        };
        let targets = allowed
            .split(',')
            .filter_map(|t| t.trim().strip_prefix('`')?.strip_suffix('`'))
            .map(str::to_owned)
            .collect();
        graph.insert(module.to_owned(), targets);
    }
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn crate_paths_are_found_in_plain_and_grouped_imports() {
        let text = "use crate::config::X;\nuse crate::{metrics, policy::{a, B}};\nlet _ = crate::path::normalize(p);";
        let found: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(found, ["config", "metrics", "path", "policy"]);
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        let mut g = Graph::new();
        g.insert("a".into(), ["b".to_owned()].into());
        g.insert("b".into(), ["c".to_owned()].into());
        g.insert("c".into(), ["a".to_owned()].into());
        assert_eq!(
            find_cycle(&g),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        g.get_mut("c").unwrap().clear();
        assert_eq!(find_cycle(&g), None);
    }

    #[test]
    fn the_gateway_imports_only_what_architecture_md_allows() {
        check_layers("gateway", "### Gateway module layers");
    }

    #[test]
    fn the_backend_imports_only_what_architecture_md_allows() {
        check_layers("backend", "### Backend module layers");
    }

    fn check_layers(krate: &str, heading: &str) {
        // Arrange
        let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
        let allowed = allowed_edges(&architecture, heading);
        let actual = imports(&root().join(krate).join("src"));

        // Assert: every module is in the table, and imports nothing the table does not allow.
        let mut problems = Vec::new();
        for (module, deps) in &actual {
            let Some(ok) = allowed.get(module) else {
                problems.push(format!("`{module}` is not in the table"));
                continue;
            };
            for dep in deps.difference(ok) {
                problems.push(format!(
                    "`{module}` imports `{dep}`, which the table does not allow"
                ));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert_eq!(find_cycle(&allowed), None, "the table itself has a cycle");
    }
}
