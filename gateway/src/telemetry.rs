//! Logging: JSON lines on stdout, levels from `RUST_LOG` (default `info`).
//!
//! Access-log lines (target `access`, one per request) go through an in-process buffer that
//! a background thread flushes every 100 ms, and that [`flush`] empties before the process
//! exits, so the request path formats its line but makes no `write` syscall for it (the
//! access log cost 16% of the proxy's throughput on the benchmark machine, see
//! `bench/README.md`). Only the flush thread writes, outside the buffer's lock, so a request
//! thread never waits for stdout; if stdout stops draining, the buffer stops at 16 MiB and
//! further access lines are dropped and counted (`gateway_access_log_dropped_total`).
//! Every other line (start-up, reloads, health, errors) is written at once, so operators and
//! tests see it immediately. An access line may therefore appear up to 100 ms after lines
//! logged later than it.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;
use tracing_subscriber::fmt::MakeWriter;

/// How long an access line may wait in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Past this many buffered bytes the flush thread is woken early, so a burst does not wait
/// for the timer.
const HIGH_WATER: usize = 256 * 1024;

/// Past this many buffered bytes (stdout is not being drained: a stuck log collector, a
/// full pipe) new access lines are dropped and counted in
/// `gateway_access_log_dropped_total`: request threads never wait for stdout.
const HARD_CAP: usize = 16 * 1024 * 1024;

/// Access lines not yet written, and the flush thread's wake-up call.
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

/// Write every buffered access line to stdout now (call before exiting).
pub fn flush() {
    write_out(&ACCESS.take());
}

/// The writer the access-log layer formats each line into.
struct Buffered;

/// One locked use of the buffer: the fmt layer formats a line into its own scratch space,
/// then writes it here with one `write_all`, so the lock is held for a copy, never for I/O.
struct Locked<'a> {
    buffer: &'a AccessBuffer,
    lines: MutexGuard<'a, Vec<u8>>,
}

impl Write for Locked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.lines.len() + buf.len() > self.buffer.cap {
            crate::metrics::ACCESS_LOG_DROPPED.inc();
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
        if self.lines.len() >= HIGH_WATER {
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
        }
    }
}

/// The flush thread: every `FLUSH_INTERVAL`, or when woken at the high-water mark, take the
/// buffer under the lock and write it out without it.
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
        let dropped_before = crate::metrics::ACCESS_LOG_DROPPED.get();

        // Act: 50 lines into room for 10; each write returns at once.
        for _ in 0..50 {
            let mut w = Locked {
                buffer: &SMALL,
                lines: SMALL.lock(),
            };
            w.write_all(&line).unwrap();
        }

        // Assert
        assert_eq!(SMALL.take().len(), 1000, "ten lines kept, whole");
        assert_eq!(
            crate::metrics::ACCESS_LOG_DROPPED.get() - dropped_before,
            40
        );
    }
}
