//! The backend's canonical-path check.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    let _ = backend::fuzzing::path_segments(path);
});
