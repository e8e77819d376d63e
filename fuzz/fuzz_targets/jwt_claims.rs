//! Arbitrary claims, validly signed, through the claims checks and header forwarding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|claims: &[u8]| {
    let _ = gateway::fuzzing::verify_claims(claims);
});
