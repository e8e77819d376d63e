//! Logging: JSON lines on stdout, levels from `RUST_LOG` (default `info`).
//!
//! Access-log lines (target `access`, one per request) go through an in-process buffer that
//! a background thread flushes every 100 ms, and that [`flush`] empties before the process
//! exits, so the request path formats its line but makes no `write` syscall for it (the
//! access log cost 16% of the proxy's throughput on the benchmark machine, see
//! `bench/README.md`). Every other line (start-up, reloads, health,
//! errors) is written at once, so operators and tests see it immediately. An access line may
//! therefore appear up to 100 ms after lines logged later than it.

use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;
use tracing_subscriber::fmt::MakeWriter;

/// How long an access line may wait in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Past this many buffered bytes the logging thread writes them out itself, so a burst
/// cannot grow the buffer without bound between two timer ticks.
const HIGH_WATER: usize = 256 * 1024;

/// Access lines not yet written to stdout.
static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn lock() -> MutexGuard<'static, Vec<u8>> {
    BUFFER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Write `lines` to stdout.
fn write_out(lines: &[u8]) {
    if !lines.is_empty() {
        let _ = std::io::stdout().lock().write_all(lines);
    }
}

/// Write every buffered access line to stdout now (call before exiting).
pub fn flush() {
    let lines = std::mem::take(&mut *lock());
    write_out(&lines);
}

/// The writer the access-log layer formats each line into.
struct Buffered;

/// One locked use of the buffer: the fmt layer formats a line into its own scratch space,
/// then writes it here with one `write_all`, so the lock is held for a copy.
struct Locked(MutexGuard<'static, Vec<u8>>);

impl Write for Locked {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushing is the timer's job; the fmt layer asks after every line.
        Ok(())
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.0.len() >= HIGH_WATER {
            let lines = std::mem::take(&mut *self.0);
            write_out(&lines);
        }
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Locked;

    fn make_writer(&'a self) -> Self::Writer {
        Locked(lock())
    }
}

/// Install the subscriber and start the flush timer.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // One JSON layer; only the writer depends on the target.
    let writer = Buffered
        .with_filter(|meta: &Metadata<'_>| meta.target() == "access")
        .or_else(std::io::stdout);
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(writer)
        .init();
    std::thread::Builder::new()
        .name("access-log-flush".into())
        .spawn(|| loop {
            std::thread::sleep(FLUSH_INTERVAL);
            flush();
        })
        .map(drop)
        .unwrap_or_else(|e| eprintln!("gateway: no access-log flush thread: {e}"));
}
