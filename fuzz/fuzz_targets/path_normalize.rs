//! Canonical request paths: any string, never a panic; a rewrite is stable and well-formed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    let _ = gateway::fuzzing::normalize_path(path);
});
