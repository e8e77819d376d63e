//! Idle keep-alive clients: open N connections, make one request on each so the proxy keeps
//! a live client session, then hold them open while the parent measures memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub(crate) fn client(target: &str, count: usize, hold_secs: u64) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(count);
    let mut buf = [0u8; 4096];
    for _ in 0..count {
        let Ok(mut s) = TcpStream::connect(target) else {
            break;
        };
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        // The upstream answers with a small body; one read holds all of it. A proxy at its
        // connection limit does not answer: stop there and report how many are held.
        match s.read(&mut buf) {
            Ok(n) if n > 0 => held.push(s),
            _ => break,
        }
    }
    println!("READY {}", held.len());
    std::thread::sleep(Duration::from_secs(hold_secs));
    Ok(())
}
