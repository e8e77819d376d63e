//! Logging: JSON lines on stdout, levels from `RUST_LOG` (default `info`).
//!
//! Every line goes through an in-process buffer that a background thread writes out, and
//! that [`flush`] empties before the process exits: the request path formats its line but
//! never makes a `write` syscall (the access log cost 16% of the proxy's throughput on the
//! benchmark machine, see `bench/README.md`) and never waits for stdout. Access lines
//! (target `access`, one per request) are written every 100 ms; any other line (start-up,
//! reloads, health, errors) wakes the writer at once, so operators and tests see it
//! immediately, in order. If stdout stops draining, the buffer stops at 16 MiB and further
//! lines are dropped and counted (`gateway_log_dropped_total`).

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// How long an access line may wait in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Past this many buffered bytes the flush thread is woken early, so a burst does not wait
/// for the timer.
const HIGH_WATER: usize = 256 * 1024;

/// Past this many buffered bytes (stdout is not being drained: a stuck log collector, a
/// full pipe) new lines are dropped and counted in `gateway_log_dropped_total`: request
/// threads never wait for stdout.
const HARD_CAP: usize = 16 * 1024 * 1024;

/// Lines not yet written, and the flush thread's wake-up call.
struct AccessBuffer {
    lines: Mutex<Vec<u8>>,
    wake: Condvar,
    cap: usize,
}

impl AccessBuffer {
    const fn new(cap: usize) -> Self {
        Self {
            lines: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everything buffered so far, leaving the buffer empty (for the flush thread, which
    /// writes it out after releasing the lock).
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }
}

static ACCESS: AccessBuffer = AccessBuffer::new(HARD_CAP);

/// Write `lines` to stdout. Only the flush thread and [`flush`] do this.
fn write_out(lines: &[u8]) {
    if !lines.is_empty() {
        let _ = std::io::stdout().lock().write_all(lines);
    }
}

/// Write every buffered line to stdout now (call before exiting).
pub fn flush() {
    write_out(&ACCESS.take());
}

/// The writer the log layer formats each line into.
struct Buffered;

/// One locked use of the buffer: the fmt layer formats a line into its own scratch space,
/// then writes it here with one `write_all`, so the lock is held for a copy, never for I/O.
struct Locked<'a> {
    buffer: &'a AccessBuffer,
    lines: MutexGuard<'a, Vec<u8>>,
    /// Not an access line: wake the writer now rather than at its next tick.
    urgent: bool,
}

impl Write for Locked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.lines.len() + buf.len() > self.buffer.cap {
            crate::metrics::LOG_DROPPED.inc();
        } else {
            self.lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushing is the flush thread's job; the fmt layer asks after every line.
        Ok(())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.urgent || self.lines.len() >= HIGH_WATER {
            self.buffer.wake.notify_one();
        }
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Locked<'static>;

    fn make_writer(&'a self) -> Self::Writer {
        Locked {
            buffer: &ACCESS,
            lines: ACCESS.lock(),
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Locked {
            buffer: &ACCESS,
            lines: ACCESS.lock(),
            urgent: meta.target() != "access",
        }
    }
}

/// The flush thread: every `FLUSH_INTERVAL`, or when woken (an urgent line, the high-water
/// mark), take the buffer under the lock and write it out without it.
fn flush_loop(buffer: &'static AccessBuffer) {
    loop {
        let lines = {
            let guard = buffer.lock();
            let (mut guard, _) = buffer
                .wake
                .wait_timeout(guard, FLUSH_INTERVAL)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *guard)
        };
        write_out(&lines);
    }
}

/// Install the subscriber and start the flush thread.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(Buffered)
        .init();
    std::thread::Builder::new()
        .name("access-log-flush".into())
        .spawn(|| flush_loop(&ACCESS))
        .map(drop)
        .unwrap_or_else(|e| eprintln!("gateway: no access-log flush thread: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_lines_instead_of_waiting_for_stdout() {
        // Arrange: a small buffer and no flush thread, as if stdout were blocked for good.
        static SMALL: AccessBuffer = AccessBuffer::new(1024);
        let line = [b'x'; 100];
        let dropped_before = crate::metrics::LOG_DROPPED.get();

        // Act: 50 lines into room for 10; each write returns at once.
        for _ in 0..50 {
            let mut w = Locked {
                buffer: &SMALL,
                lines: SMALL.lock(),
                urgent: false,
            };
            w.write_all(&line).unwrap();
        }

        // Assert
        assert_eq!(SMALL.take().len(), 1000, "ten lines kept, whole");
        assert_eq!(crate::metrics::LOG_DROPPED.get() - dropped_before, 40);
    }
}
