//! Logging: JSON lines on stdout, levels from `RUST_LOG` (default `info`).
//!
//! Access-log lines (target `access`, one per request) go through an in-process buffer that
//! a background thread flushes every 100 ms, and that [`flush`] empties before the process
//! exits: writing each line at once cost a `write` syscall per request, 16% of the proxy's
//! throughput on the benchmark machine. Every other line (start-up, reloads, health,
//! errors) is written at once, so operators and tests see it immediately. An access line may
//! therefore appear up to 100 ms after lines logged later than it.

use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

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

/// Write out `lines` (taken from the buffer, so no lock is held during the syscall).
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
    let access = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_writer(Buffered)
        .with_filter(filter_fn(|meta| meta.target() == "access"));
    let other = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_writer(std::io::stdout)
        .with_filter(filter_fn(|meta| meta.target() != "access"));
    tracing_subscriber::registry()
        .with(filter)
        .with(access)
        .with(other)
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
