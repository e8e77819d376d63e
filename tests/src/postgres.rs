//! A real PostgreSQL server (Debian's server binaries under `/usr/lib/postgresql`) in a temp
//! dir on a free loopback port, stopped and removed on drop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::process::Process;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions
        .last()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(tool)
}

/// `sh -c script`, as the `postgres` user when we are root (the server refuses root).
fn as_pg_user(script: &str) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// A PostgreSQL server in a temp dir. With `watchdog`, a shell watching this process stops
/// the server and removes its files once the process is gone, since Rust never runs the
/// destructors of statics.
pub struct Postgres {
    /// The loopback port the server listens on.
    pub port: u16,
    /// Data dir, socket dir and pid file; removed on drop.
    dir: PathBuf,
    process: Option<Process>,
}

impl Postgres {
    pub fn start(watchdog: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("harness-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if is_root() {
            // The server refuses to run as root, so its files belong to `postgres`.
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the PostgreSQL dir failed");
        }
        let data = dir.join("data");
        let init = format!(
            "{} -D {} -U postgres --auth=trust -E UTF8 >/dev/null",
            pg_bin("initdb").display(),
            data.display()
        );
        assert!(
            as_pg_user(&init).status().expect("run initdb").success(),
            "initdb failed"
        );
        let port = free_port();
        let mut pg = Self {
            port,
            dir,
            process: None,
        };
        pg.run(watchdog);
        pg
    }

    fn run(&mut self, watchdog: bool) {
        let data = self.dir.join("data");
        let server = format!(
            "{} -D {} -p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=300",
            pg_bin("postgres").display(),
            data.display(),
            self.port,
            self.dir.display()
        );
        let process = if watchdog {
            // The watchdog runs as the test's user so that it may watch the test process;
            // it stops the server through its pid file once the test process is gone.
            let launch = if is_root() {
                format!("runuser -u postgres -- {server}")
            } else {
                server
            };
            let script = format!(
                "{launch} >/dev/null 2>&1 & while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
                 kill -INT $(head -1 {pid}) 2>/dev/null; sleep 2; rm -rf {dir}",
                parent = std::process::id(),
                pid = data.join("postmaster.pid").display(),
                dir = self.dir.display()
            );
            Process::spawn(
                "PostgreSQL watchdog",
                Command::new("sh").args(["-c", &script]),
                None,
            )
        } else {
            Process::spawn("postgres", &mut as_pg_user(&format!("exec {server}")), None)
        };
        self.process = Some(process.expect("start PostgreSQL"));
        // Not just the port: it opens before the server takes sessions ("the database
        // system is starting up"); pg_isready asks the server itself.
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = self.port.to_string();
        while !Command::new(pg_bin("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL never accepted sessions"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the server, as a crash would; [`Postgres::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            // The postmaster is a child of `runuser` or of the watchdog shell: its pid file
            // names it.
            let pid_file = self.dir.join("data").join("postmaster.pid");
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            drop(process);
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Start again on the same data and port (without a watchdog).
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("data").join("postmaster.pid"));
        self.run(false);
    }

    /// The process started for the server (a watchdog shell or `runuser`), if running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// The URL of database `db`, as the superuser `postgres` (trust auth on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
