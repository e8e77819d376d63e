//! A real `redis-server` (Debian package) on a free loopback port, without persistence,
//! stopped on drop. The one Redis launcher of the harness and the backend's tests.

use std::process::Command;
use std::sync::OnceLock;

use crate::process::Process;
use crate::{free_port, wait_for_port};

pub struct RedisServer {
    pub port: u16,
    process: Option<Process>,
}

impl RedisServer {
    /// Start a server and wait until it accepts connections.
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            process: None,
        };
        server.restart();
        server
    }

    /// One server for the whole test process, stopped when the process exits (a watchdog
    /// does it: statics are never dropped).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut server = Self {
                port: free_port(),
                process: None,
            };
            server.process = Some(
                server
                    .launch()
                    .watched()
                    .expect("watch the shared redis-server"),
            );
            wait_for_port(server.port, "redis-server");
            server
        })
    }

    fn launch(&self) -> Process {
        Process::spawn(
            "redis-server",
            Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"]),
            None,
        )
        .expect("redis-server is installed (Debian package redis-server)")
    }

    /// (Re)start on the same port, empty, and wait until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.process = Some(self.launch());
        wait_for_port(self.port, "redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Kill the server (as a crash would).
    pub fn stop(&mut self) {
        self.process = None;
    }
}
