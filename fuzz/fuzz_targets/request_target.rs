//! A request line's method and target, parsed as Pingora does, normalized and routed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the method; the rest is the target.
    let Some((pick, target)) = data.split_first() else {
        return;
    };
    let methods: [&[u8]; 4] = [b"GET", b"POST", b"PUT", b"X-MADE-UP"];
    let method = methods[usize::from(*pick) % methods.len()];
    let _ = gateway::fuzzing::route_target(method, target);
});
