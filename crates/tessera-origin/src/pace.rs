//! A deadline on reading a body, not just on waiting for its first byte.
//!
//! The SDK's read and operation timeouts cover the wait for a response's headers; once the
//! body streams, an origin that keeps sending a few bytes at a time, or stops sending without
//! closing, holds the reader (and everyone waiting on it) forever. [`Paced`] fails the read
//! with [`std::io::ErrorKind::TimedOut`] when
//!
//! 1. no byte has come for `idle` (a stall, however far into the body), or
//! 2. after `grace`, fewer than `min_rate` bytes a second have come on average (a trickle).
//!
//! One timer serves both: its deadline is the earlier of "last progress + idle" and "the
//! moment the average would fall under `min_rate`", moved on every read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{sleep_until, Instant, Sleep};

/// How fast a body must come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The longest wait for the next bytes.
    pub idle: Duration,
    /// The lowest average rate, in bytes a second, once `grace` has passed; 0: no lower bound.
    pub min_rate: u64,
    pub grace: Duration,
}

impl Pace {
    /// When the reader gives up if nothing more comes, given `read` bytes since `started`
    /// and the last progress at `last`.
    fn deadline(&self, started: Instant, last: Instant, read: u64) -> Instant {
        let stall = last + self.idle;
        if self.min_rate == 0 {
            return stall;
        }
        // The average stays at `min_rate` until `read / min_rate` seconds after the start.
        let earned = Duration::from_secs_f64(read as f64 / self.min_rate as f64);
        stall.min(started + earned.max(self.grace))
    }
}

/// A body reader held to a [`Pace`].
pub struct Paced<R> {
    inner: R,
    pace: Pace,
    started: Instant,
    read: u64,
    timer: Pin<Box<Sleep>>,
}

impl<R> Paced<R> {
    pub fn new(inner: R, pace: Pace) -> Self {
        let now = Instant::now();
        Self {
            inner,
            pace,
            started: now,
            read: 0,
            timer: Box::pin(sleep_until(pace.deadline(now, now, 0))),
        }
    }

    fn too_slow(&self) -> io::Error {
        let elapsed = self.started.elapsed();
        let why = if Instant::now() >= self.started + self.pace.grace && self.pace.min_rate > 0 {
            format!(
                "the body came slower than {} bytes/s ({} bytes in {elapsed:.1?})",
                self.pace.min_rate, self.read
            )
        } else {
            format!(
                "no bytes of the body for {:?} ({} bytes in {elapsed:.1?})",
                self.pace.idle, self.read
            )
        };
        io::Error::new(io::ErrorKind::TimedOut, why)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Paced<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    self.read += n;
                    let now = Instant::now();
                    let deadline = self.pace.deadline(self.started, now, self.read);
                    if deadline <= now {
                        return Poll::Ready(Err(self.too_slow()));
                    }
                    self.timer.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(self.too_slow())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pace(idle_ms: u64, min_rate: u64, grace_ms: u64) -> Pace {
        Pace {
            idle: Duration::from_millis(idle_ms),
            min_rate,
            grace: Duration::from_millis(grace_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_mid_body_times_out() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut paced = Paced::new(rx, pace(1000, 0, 0));
        tx.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        paced.read_exact(&mut buf).await.unwrap();
        // The writer stays open and silent.
        let e = paced.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_times_out_after_the_grace() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // 10 bytes every 100 ms: 100 bytes/s, under the 1000 required.
            for _ in 0..1000 {
                if tx.write_all(&[0u8; 10]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        let mut paced = Paced::new(rx, pace(1000, 1000, 2000));
        let mut sink = Vec::new();
        let e = paced.read_to_end(&mut sink).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_reads_whole() {
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            for _ in 0..50 {
                tx.write_all(&[1u8; 1000]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // 10 000 bytes/s against a floor of 5000.
        let mut paced = Paced::new(rx, pace(1000, 5000, 1000));
        let mut body = Vec::new();
        paced.read_to_end(&mut body).await.unwrap();
        assert_eq!(body.len(), 50_000);
    }
}
