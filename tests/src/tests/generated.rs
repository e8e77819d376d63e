//! Files generated from the code and committed, so that editors, API clients and reviewers
//! read them without building anything: each must be exactly what its command prints from
//! the code of this commit.

use std::process::Command;

use crate::run_ok;
use crate::stack::sibling_binaries;

#[test]
fn every_committed_generated_file_is_what_its_command_prints_now() {
    let (gateway, backend) = sibling_binaries().expect("the gateway and backend binaries");
    let repo = crate::docker::repo_root();
    let files = [
        ("config/gateway.schema.json", &gateway, &["schema"][..]),
        (
            "config/status.schema.json",
            &gateway,
            &["schema", "status"][..],
        ),
        ("backend/openapi.json", &backend, &["openapi"][..]),
    ];
    let mut stale = Vec::new();
    for (file, binary, args) in files {
        let printed = run_ok(
            Command::new(binary).args(args),
            &format!("{binary:?} {args:?}"),
        );
        let committed = std::fs::read_to_string(repo.join(file)).unwrap_or_default();
        if printed != committed {
            let name = binary.file_name().unwrap_or_default().to_string_lossy();
            stale.push(format!(
                "{file} is out of date; regenerate it with\n  cargo run --bin {name} -- {} > {file}",
                args.join(" ")
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}
