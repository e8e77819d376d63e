//! X-Forwarded-For lines from a peer that is or is not a trusted proxy.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((flags, rest)) = data.split_first() else {
        return;
    };
    let peer: std::net::IpAddr = if flags & 1 == 0 {
        "10.0.0.1".parse().unwrap()
    } else {
        "2001:db8::1".parse().unwrap()
    };
    let trusted: Vec<ipnet::IpNet> = if flags & 2 == 0 {
        Vec::new()
    } else {
        vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()]
    };
    // Header lines are separated by newlines in the input.
    let lines: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    let _ = gateway::fuzzing::client_address(peer, &trusted, &lines);
});
