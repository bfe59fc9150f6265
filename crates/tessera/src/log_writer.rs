//! The server's log writer: lines gathered in memory and written to stdout in batches by one
//! thread, so that a request never waits on stdout and a busy server makes few system calls.
//!
//! Why not `tracing_appender::non_blocking`, which this replaces: it hands each line to its
//! thread through a channel and wakes the thread for it, so every access-log line cost a thread
//! wake-up and a `write` — measured, the access log took 11–25 % of the proxy's throughput
//! (`bench/proxy_overhead.sh`), most of it in those wake-ups. Here a line is appended to a
//! buffer under a mutex; the first line of a batch wakes the thread, which waits [`GATHER`]
//! for more and writes them all in one call (as nginx's `access_log … buffer=… flush=…`).
//! A warning or an error is not kept waiting: it ends the gathering at once, so such a line is
//! in the log as soon as it was before (an operator watching a reload, say, sees its refusal).
//!
//! Bounded: beyond [`MAX_PENDING`] bytes waiting (stdout blocked or far too slow), lines are
//! dropped and counted in `tessera_log_lines_dropped_total`, not queued without end. At exit,
//! [`Flush`] writes what is left (waiting at most [`EXIT_WAIT`] for a blocked stdout).

use prometheus::IntCounter;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long the thread gathers lines after the first of a batch: how late a line may appear.
pub const GATHER: Duration = Duration::from_millis(20);
/// Bytes waiting to be written beyond which new lines are dropped.
pub const MAX_PENDING: usize = 16 << 20;
/// How long the exit waits for the last lines to be written.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// A written batch's buffer is kept for the next one unless it grew beyond this.
const KEEP_CAPACITY: usize = 1 << 20;

static DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    let counter = IntCounter::new(
        "tessera_log_lines_dropped_total",
        "Log lines dropped because stdout took them slower than they came.",
    )
    .expect("a valid metric");
    let _ = tessera_proxy::metrics::registry().register(Box::new(counter.clone()));
    counter
});

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// A warning or an error is among them: write now.
    urgent: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves whole lines behind: keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `line` (whole lines), or drop and count it beyond [`MAX_PENDING`].
    fn push(&self, line: &[u8], urgent: bool) {
        let mut pending = self.lock();
        if pending.lines.len() + line.len() > MAX_PENDING {
            drop(pending);
            DROPPED.inc();
            return;
        }
        let wake = pending.lines.is_empty() || urgent;
        pending.urgent |= urgent;
        pending.lines.extend_from_slice(line);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// Where the log's lines go: the `MakeWriter` of the log layers, and [`BatchWriter::write_line`]
/// for lines formed elsewhere (the access log's).
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is left when dropped (at exit).
pub struct Flush {
    shared: Arc<Shared>,
    done: mpsc::Receiver<()>,
}

impl BatchWriter {
    /// A writer whose lines go to `out`, from a thread of its own.
    pub fn spawn(out: impl Write + Send + 'static) -> std::io::Result<(Self, Flush)> {
        LazyLock::force(&DROPPED);
        let shared = Arc::new(Shared::default());
        let (done_tx, done) = mpsc::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("tessera-log".into())
            .spawn(move || {
                write_batches(&thread_shared, out);
                let _ = done_tx.send(());
            })?;
        let flush = Flush {
            shared: shared.clone(),
            done,
        };
        Ok((Self { shared }, flush))
    }

    /// Queue one whole line that needs no haste (an access-log line).
    pub fn write_line(&self, line: &[u8]) {
        self.shared.push(line, false);
    }
}

/// The writer thread: wait for a first line, gather for a moment (unless a warning or an error
/// came, or the process is ending), write the batch.
fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && !pending.closed {
            pending = shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
        }
        if !pending.urgent && !pending.closed {
            pending = match shared
                .wake
                .wait_timeout_while(pending, GATHER, |p| !p.urgent && !p.closed)
            {
                Ok((pending, _)) => pending,
                Err(e) => e.into_inner().0,
            };
        }
        let closing = pending.closed;
        pending.urgent = false;
        let mut batch = std::mem::replace(&mut pending.lines, std::mem::take(&mut spare));
        drop(pending);
        // Nowhere to report a failed write but the log itself: the lines are lost.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        if closing && shared.lock().lines.is_empty() {
            return;
        }
        batch.clear();
        if batch.capacity() <= KEEP_CAPACITY {
            spare = batch;
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        let _ = self.done.recv_timeout(EXIT_WAIT);
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// One log line on its way: the layer writes it whole, with one `write_all`.
pub struct Line<'a> {
    shared: &'a Shared,
    /// A warning or an error: written without waiting for more lines.
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shared.push(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read, and hold up.
    #[derive(Clone, Default)]
    struct Captured {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_come_out_whole_in_order_and_in_few_writes() {
        let out = Captured::default();
        let (writer, flush) = BatchWriter::spawn(out.clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(flush);
        assert_eq!(
            String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap(),
            expected
        );
        assert!(*out.writes.lock().unwrap() < 10, "one write per batch");
    }

    #[test]
    fn a_quiet_writer_still_writes_soon() {
        let out = Captured::default();
        let (writer, _flush) = BatchWriter::spawn(out.clone()).unwrap();
        writer.make_writer().write_all(b"one\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.bytes.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*out.bytes.lock().unwrap(), b"one\n");
    }

    #[test]
    fn a_warning_ends_the_gathering() {
        let out = Captured::default();
        let (writer, _flush) = BatchWriter::spawn(out.clone()).unwrap();
        // An info line starts a batch; a warning right after is written without the wait.
        writer.make_writer().write_all(b"info\n").unwrap();
        let mut warning = Line {
            shared: &writer.shared,
            urgent: true,
        };
        let asked = std::time::Instant::now();
        warning.write_all(b"warning\n").unwrap();
        while out.bytes.lock().unwrap().len() < b"info\nwarning\n".len() {
            assert!(asked.elapsed() < Duration::from_secs(5), "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*out.bytes.lock().unwrap(), b"info\nwarning\n");
        assert!(
            !writer.shared.lock().urgent,
            "the writer took the urgent batch"
        );
    }

    #[test]
    fn a_blocked_output_drops_lines_instead_of_growing() {
        /// An output that never returns from its first write until the test ends.
        struct Stuck(mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (release, stuck) = mpsc::channel();
        let (writer, flush) = BatchWriter::spawn(Stuck(stuck)).unwrap();
        let line = vec![b'x'; 4096];
        let before = DROPPED.get();
        for _ in 0..(3 * MAX_PENDING / line.len()) {
            writer.make_writer().write_all(&line).unwrap();
        }
        assert!(writer.shared.lock().lines.len() <= MAX_PENDING);
        assert!(DROPPED.get() > before, "lines beyond the bound are counted");
        drop(release);
        drop(flush);
    }
}
