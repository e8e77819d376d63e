//! JWKS documents as an upstream might serve them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = gateway::fuzzing::parse_jwks(body);
});
