//! Child processes of the harness (servers under test, their dependencies, the benchmark's
//! proxies): spawned with their output in a log file, signalled through `nix`, terminated
//! with grace, and killed on drop, so no test leaves a process behind.
//!
//! A process that backs a `static` (one PostgreSQL or Redis per test binary) is never
//! dropped: Rust runs no destructors of statics. [`Process::watched`] covers that case with a
//! watchdog shell that kills it once the test process is gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// A running child process, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: Option<PathBuf>,
    /// Whether the child leads a process group of its own, which signals then reach whole.
    group: bool,
}

impl Process {
    /// Spawn `command`, its stdout and stderr appended to `log` (or discarded without one).
    pub fn spawn(name: &str, command: &mut Command, log: Option<&Path>) -> anyhow::Result<Self> {
        Self::start(name, command, log, false)
    }

    /// Like [`Process::spawn`], in a new process group: for programs that start workers of
    /// their own (nginx, HAProxy, shells), so that signals and the kill on drop reach them all.
    pub fn spawn_group(
        name: &str,
        command: &mut Command,
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
        Self::start(name, command, log, true)
    }

    fn start(
        name: &str,
        command: &mut Command,
        log: Option<&Path>,
        group: bool,
    ) -> anyhow::Result<Self> {
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("Failed to open the log of {name}"))?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("Failed to start {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.map(Path::to_path_buf),
            group,
        })
    }

    /// Also kill this process when the test process exits, whether or not it is dropped.
    pub fn watched(self) -> anyhow::Result<Self> {
        let target = if self.group {
            format!("-s KILL -- -{}", self.pid())
        } else {
            format!("-s KILL {}", self.pid())
        };
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill {target} 2>/dev/null",
            parent = std::process::id()
        );
        // Detached from the test's process group, so that it outlives what it watches for.
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("Failed to start the watchdog of {}", self.name))?;
        Ok(self)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Send `signal` (to the whole group for [`Process::spawn_group`]). `ESRCH` once the
    /// process is gone and reaped.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid fits i32"));
        if self.group {
            killpg(pid, signal)
        } else {
            kill(pid, signal)
        }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Wait up to `limit` for the process to exit by itself.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, up to `grace` for a clean exit, then SIGKILL. `None` when it had to be killed.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let _ = self.signal(Signal::SIGTERM);
        let status = self.wait_exit(grace).await;
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// SIGKILL and reap, as a crash would end it.
    pub fn kill(&mut self) {
        // Only while it is unreaped: a reaped pid may belong to someone else by now.
        if self.exited().is_none() {
            let _ = self.signal(Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// Everything the process logged so far (empty without a log).
    pub fn log(&self) -> String {
        self.log
            .as_deref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
