//! The backend's JSON request bodies and the domain checks behind them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    backend::fuzzing::bodies(body);
});
