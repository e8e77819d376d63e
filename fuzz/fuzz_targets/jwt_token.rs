//! Arbitrary bearer tokens through the verifier (header, key choice, signature, claims).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    let _ = gateway::fuzzing::verify_token(token);
});
