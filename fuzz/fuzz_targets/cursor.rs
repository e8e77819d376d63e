//! The backend's pagination cursor (a query parameter).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = backend::fuzzing::cursor(text);
});
