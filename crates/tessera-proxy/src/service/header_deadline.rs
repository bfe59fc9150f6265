//! A client connection whose request header must arrive by a deadline.
//!
//! Pingora reads a request's header with a timeout per read (60 s), so a client that sends a
//! byte a minute holds its connection, a task and a descriptor for ever: the slowloris attack.
//! [`HeaderDeadline`] wraps the connection's stream: while it is *armed*, reads must bring the
//! end of the header (`\r\n\r\n`) before the deadline, or fail with
//! [`std::io::ErrorKind::TimedOut`]. Once the header is through it is disarmed, so bodies and
//! long answers are never cut by it. When a request has been answered the service arms the
//! stream again for the next one, so the idle wait of a kept-alive connection counts too.
//! Every armed connection is remembered in a queue, oldest first, so that the admission can
//! cut the longest wait short when it needs room ([`HeaderDeadline::shed`]).

use crate::metrics::registry;
use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{GetProxyDigest, GetSocketDigest, GetTimingDigest};
use pingora::protocols::{Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType, ALPN};
use pingora::protocols::{SocketDigest, TimingDigest};
use prometheus::{register_int_counter_with_registry, IntCounter};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

const END_OF_HEADER: &[u8; 4] = b"\r\n\r\n";

/// A searcher for [`END_OF_HEADER`], made once.
static HEADER_END: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(END_OF_HEADER));

/// A deadline that will not come (about 30 years, as Tokio caps a `sleep`).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A stream whose next request header has a deadline.
#[derive(Debug)]
pub(super) struct HeaderDeadline {
    inner: Stream,
    /// Shared: the service re-arms it through the stream (which it sees as `Box<dyn IO>`), and
    /// the admission may cut the wait short to make room for another connection.
    armed: Arc<Mutex<Armed>>,
    limit: Duration,
    /// Where a connection waiting for a header is remembered, so that it can be shed.
    queue: Queue,
}

/// Connections that may be waiting for a request header, oldest first.
pub(super) type Queue = Arc<Mutex<std::collections::VecDeque<Waiting>>>;

/// A connection's deadline, as the admission holds it: gone when the connection is.
pub(super) type Waiting = Weak<Mutex<Armed>>;

#[derive(Debug)]
pub(super) struct Armed {
    /// A header is awaited.
    waiting: bool,
    /// The deadline while `waiting`. One per connection, moved on for each request (a timer
    /// made and dropped per request costs an allocation and the timer wheel's lock). It stays
    /// scheduled once the header is through: if it expires during a long answer, it wakes the
    /// connection's task once for nothing (it is only polled while `waiting`).
    timer: Pin<Box<Sleep>>,
    /// How much of the header's end the bytes read so far end with.
    end: HeaderEnd,
    /// The wait was cut short by the admission, not by `header_timeout`.
    shed: bool,
    /// The expiry has been counted (a stream may be read again after failing).
    counted: bool,
    /// The header awaited is the connection's first: its client has not asked anything yet.
    first: bool,
}

/// Connections closed because their request header was not whole within `header_timeout`.
pub(super) static HEADER_TIMEOUTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter_with_registry!(
        "tessera_header_timeouts_total",
        "Client connections closed because a request header had not arrived whole within limits.header_timeout.",
        registry()
    )
    .expect("metric registers")
});

impl Armed {
    fn new(limit: Duration) -> Self {
        Self {
            waiting: true,
            timer: Box::pin(tokio::time::sleep(limit)),
            end: HeaderEnd::default(),
            shed: false,
            counted: false,
            first: true,
        }
    }

    /// Wait for the next request's header, for `limit` from now.
    fn rearm(&mut self, limit: Duration) {
        let now = tokio::time::Instant::now();
        // As `tokio::time::sleep` does for the first request: an absurd limit is a far future,
        // not an overflow.
        let deadline = now.checked_add(limit).unwrap_or(now + FAR_FUTURE);
        self.timer.as_mut().reset(deadline);
        self.waiting = true;
        self.end = HeaderEnd::default();
        self.shed = false;
        self.counted = false;
        self.first = false;
    }

    /// Follow the request's bytes; disarm when the header's end is through.
    fn scan(&mut self, bytes: &[u8]) {
        if self.end.scan(bytes) {
            self.waiting = false;
        }
    }
}

/// How much of `\r\n\r\n`, the end of a request header, the bytes read so far end with: the
/// end found across reads however they cut it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct HeaderEnd {
    matched: usize,
}

impl HeaderEnd {
    /// Follow `bytes`; whether they bring the end of the header (the state starts afresh then).
    /// Every request's header goes through here (600 bytes from a browser), so the bytes are
    /// searched, not stepped through: a test holds it to [`HeaderEnd::step`] over the same bytes
    /// however they are cut.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        // A header end the last read began can only end in this read's first three bytes.
        let tail = END_OF_HEADER.len() - 1;
        if self.matched > 0 {
            let carried = &bytes[..bytes.len().min(tail)];
            for &b in carried {
                if self.step(b) {
                    return true;
                }
            }
            if carried.len() == bytes.len() {
                return false;
            }
        }
        if HEADER_END.find(bytes).is_some() {
            self.matched = 0;
            return true;
        }
        // None: how much of one the bytes end with. The automaton's state is the longest end of
        // what it has read that begins a header end (three bytes at most), so the last three
        // bytes tell it (when there are fewer, the state before them was none matched).
        self.matched = 0;
        for &b in &bytes[bytes.len().saturating_sub(tail)..] {
            self.step(b);
        }
        false
    }

    /// One byte through the automaton of `\r\n\r\n`; whether it completed it (the state
    /// starts afresh then).
    fn step(&mut self, b: u8) -> bool {
        self.matched = if b == END_OF_HEADER[self.matched] {
            self.matched + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if self.matched == END_OF_HEADER.len() {
            self.matched = 0;
            return true;
        }
        false
    }
}

impl HeaderDeadline {
    /// Wrap a new connection's `stream`, armed for its first request header, and remember it
    /// in `queue` as waiting.
    pub(super) fn arm(stream: Stream, limit: Duration, queue: &Queue) -> Stream {
        let armed = Arc::new(Mutex::new(Armed::new(limit)));
        remember(queue, Arc::downgrade(&armed));
        Box::new(HeaderDeadline {
            inner: stream,
            armed,
            limit,
            queue: queue.clone(),
        })
    }

    /// End the wait of a connection still waiting for its request header, now. Returns
    /// whether it was waiting (else it is gone, or its header has arrived).
    pub(super) fn shed(waiting: &Waiting) -> bool {
        let Some(armed) = waiting.upgrade() else {
            return false;
        };
        let mut armed = lock(&armed);
        if !armed.waiting {
            return false;
        }
        armed.timer.as_mut().reset(tokio::time::Instant::now());
        armed.shed = true;
        true
    }

    /// Whether the connection behind `waiting` is still waiting for a request header.
    pub(super) fn is_waiting(waiting: &Waiting) -> bool {
        waiting.upgrade().is_some_and(|armed| lock(&armed).waiting)
    }

    /// Whether a connection in `queue` is still waiting for its first request header: one
    /// accepted whose client has not asked anything yet (as opposed to a kept-alive one that
    /// has been answered and may never ask again).
    pub(super) fn first_header_awaited(queue: &Queue) -> bool {
        let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.iter().any(|w| {
            w.upgrade().is_some_and(|armed| {
                let armed = lock(&armed);
                armed.waiting && armed.first
            })
        })
    }

    /// Arm the stream of a connection whose request has just been answered, for the next
    /// request on it (a no-op for a stream that is not ours, such as HTTP/2's).
    pub(super) fn rearm(stream: &Stream, limit: Duration) {
        if let Some(ours) = stream.as_any().downcast_ref::<HeaderDeadline>() {
            lock(&ours.armed).rearm(limit);
            remember(&ours.queue, Arc::downgrade(&ours.armed));
        }
    }

    fn armed(&self) -> MutexGuard<'_, Armed> {
        lock(&self.armed)
    }

    fn expired(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the request header did not arrive within {:?}", self.limit),
        )
    }
}

/// Add a waiting connection to `queue`, first forgetting from its front those that no longer
/// wait (so the queue is as long as the waits are, not as the connections ever made).
fn remember(queue: &Queue, new: Waiting) {
    let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
    while queue
        .front()
        .is_some_and(|w| !HeaderDeadline::is_waiting(w))
    {
        queue.pop_front();
    }
    queue.push_back(new);
}

fn lock(armed: &Mutex<Armed>) -> MutexGuard<'_, Armed> {
    armed.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let mut armed = this.armed();
                if armed.waiting {
                    armed.scan(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let mut armed = this.armed();
                let expired = armed.waiting && armed.timer.as_mut().poll(cx).is_ready();
                if !expired {
                    return Poll::Pending;
                }
                if !std::mem::replace(&mut armed.counted, true) && !armed.shed {
                    HEADER_TIMEOUTS.inc();
                }
                Poll::Ready(Err(this.expired()))
            }
        }
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.set_socket_digest(socket_digest)
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    /// Peeking (for an h2c preface) waits for the header as reading does.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let deadline = {
            let armed = self.armed();
            armed.waiting.then(|| armed.timer.deadline())
        };
        let Some(deadline) = deadline else {
            return self.inner.try_peek(buf).await;
        };
        match tokio::time::timeout_at(deadline, self.inner.try_peek(buf)).await {
            Ok(result) => result,
            Err(_) => Err(self.expired()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes rich in the header end's own (`\r`, `\n`), cut into reads at arbitrary places.
    fn cut_bytes() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
        let byte = prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()];
        (
            proptest::collection::vec(byte, 0..64),
            proptest::collection::vec(0usize..64, 0..8),
        )
    }

    proptest! {
        /// Searching finds the header's end in the read the automaton finds it in, and carries
        /// the same state from read to read.
        #[test]
        fn searching_agrees_with_stepping_byte_by_byte((bytes, cuts) in cut_bytes()) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let (mut searched, mut stepped) = (HeaderEnd::default(), HeaderEnd::default());
            for read in cuts.windows(2).map(|w| &bytes[w[0]..w[1]]) {
                let found = searched.scan(read);
                let found_by_steps = read.iter().any(|&b| stepped.step(b));
                prop_assert_eq!(found, found_by_steps, "read {:?}", read);
                if found {
                    break;
                }
                prop_assert_eq!(searched, stepped, "after read {:?}", read);
            }
        }
    }

    #[test]
    fn the_end_of_a_header_is_found_however_the_reads_cut_it() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        let end = request.windows(4).position(|w| w == END_OF_HEADER).unwrap() + 4;
        for cut in 0..request.len() {
            for second in cut..request.len() {
                let reads = [&request[..cut], &request[cut..second], &request[second..]];
                let mut state = HeaderEnd::default();
                let found_in = reads.iter().position(|r| state.scan(r));
                let expected = if end <= cut {
                    0
                } else if end <= second {
                    1
                } else {
                    2
                };
                assert_eq!(found_in, Some(expected), "cut at {cut} and {second}");
            }
        }
    }

    #[tokio::test]
    async fn only_a_first_request_header_still_to_come_is_awaited() {
        let queue = Queue::default();
        let armed = Arc::new(Mutex::new(Armed::new(Duration::from_secs(5))));
        remember(&queue, Arc::downgrade(&armed));
        assert!(
            HeaderDeadline::first_header_awaited(&queue),
            "accepted, nothing asked"
        );
        lock(&armed).scan(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!HeaderDeadline::first_header_awaited(&queue), "asked");
        lock(&armed).rearm(Duration::from_secs(5));
        remember(&queue, Arc::downgrade(&armed));
        assert!(HeaderDeadline::is_waiting(&Arc::downgrade(&armed)));
        assert!(
            !HeaderDeadline::first_header_awaited(&queue),
            "kept alive after an answer: may never ask again"
        );
        lock(&armed).rearm(Duration::from_secs(5));
        drop(armed);
        assert!(!HeaderDeadline::first_header_awaited(&queue), "gone");
    }
}
