//! gateway.yaml text: a config or errors with file and position, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = gateway::fuzzing::load_config(text);
});
