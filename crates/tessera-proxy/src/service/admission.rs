//! Which client connections are served, and for how long one may take to ask: the proxy's
//! Pingora app wrapped by [`Admission`].
//!
//! Pingora accepts every connection and waits for its request header with a timeout per read,
//! so slow clients (slowloris) can hold descriptors and memory until the process runs out.
//! Before the proxy sees a connection, `Admission`
//!
//! 1. counts it against `limits.max_connections` (all clients) and
//!    `limits.max_connections_per_client` (one address). At `max_connections`, the connection
//!    that has waited longest for a request header is closed to make room: a flood of slow
//!    connections cannot lock everyone else out, as their own connections are the ones that
//!    wait. Only when none is waiting, or over the per-client limit, does the new client get a
//!    short 503 and its connection closed;
//! 2. arms a [`HeaderDeadline`]: the request's header must arrive whole within
//!    `limits.header_timeout`, or the connection is closed. (Pingora serves the following
//!    requests of a kept-alive HTTP/1 connection inside one call of the app; the service arms
//!    the deadline again when it has answered each of them.)
//!
//! A connection is counted while the proxy serves it (the whole HTTP/2 connection, or one
//! HTTP/1 request after another), and let go when the proxy is done with it.
//!
//! When the process stops accepting (a graceful stop, or the handover of its sockets to a new
//! process in an upgrade), Pingora closes every connection waiting for a request header, to
//! keep kept-alive clients from asking more. A connection accepted whose *first* request has
//! not arrived yet (a browser's preconnected socket, a client slow to send or starved of CPU)
//! would be closed unanswered though its client did nothing wrong, so [`Admission`] lets
//! Pingora do so only once no connection waits for its first request header, or
//! `limits.header_timeout` after it stopped accepting (when the deadline has closed them).

use super::header_deadline::{HeaderDeadline, Queue};
use crate::config::Limits;
use crate::metrics::registry;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use prometheus::{register_int_counter_vec_with_registry, register_int_gauge_with_registry};
use prometheus::{IntCounterVec, IntGauge};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

static OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge_with_registry!(
        "tessera_connections_open",
        "Client connections being served.",
        registry()
    )
    .expect("metric registers")
});

static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_connections_refused_total",
        "Client connections closed unserved, by reason: max_connections, max_connections_per_client.",
        &["reason"],
        registry()
    )
    .expect("metric registers")
});

static SHED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter_with_registry!(
        "tessera_connections_shed_total",
        "Connections closed while still waiting for their request header, to make room for a new one at max_connections.",
        registry()
    )
    .expect("metric registers")
});

/// Register the series so they show up before the first connection.
pub(crate) fn init_metrics() {
    LazyLock::force(&OPEN);
    LazyLock::force(&SHED);
    LazyLock::force(&super::header_deadline::HEADER_TIMEOUTS);
    for reason in ["max_connections", "max_connections_per_client"] {
        REFUSED.with_label_values(&[reason]);
    }
}

/// What a refused client reads before the connection closes.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\nRetry-After: 1\r\n\r\ntoo many connections; try again\n";

/// The limits, as read from `limits:` at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    pub max_connections: usize,
    pub per_client: Option<usize>,
    pub header_timeout: Duration,
}

impl From<&Limits> for ConnectionLimits {
    fn from(l: &Limits) -> Self {
        Self {
            max_connections: l.max_connections,
            per_client: l.max_connections_per_client,
            header_timeout: l.header_timeout.0,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// The proxy app `A`, behind the connection limits and the header deadline.
pub(crate) struct Admission<A> {
    inner: Arc<A>,
    limits: ConnectionLimits,
    counts: Arc<Mutex<Counts>>,
    /// Connections, oldest first, while they may still be waiting for a header.
    waiting: Queue,
}

impl<A> Admission<A> {
    pub(crate) fn new(inner: A, limits: ConnectionLimits) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            counts: Arc::default(),
            waiting: Queue::default(),
        }
    }

    /// Close the connection that has waited longest for its request header, if one is
    /// waiting. Connections that are gone, or whose header has arrived, leave the queue.
    fn shed_oldest(&self) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(oldest) = waiting.pop_front() {
            if HeaderDeadline::shed(&oldest) {
                SHED.inc();
                return true;
            }
        }
        false
    }
}

/// A counted connection; dropping it lets it go (however its serving ends).
struct Place {
    counts: Arc<Mutex<Counts>>,
    client: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.client {
            if let Some(n) = counts.by_client.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.by_client.remove(&ip);
                }
            }
        }
        OPEN.dec();
    }
}

impl<A> Admission<A> {
    /// A place for a connection from `client`, or which limit it is over.
    fn admit(&self, client: Option<IpAddr>) -> Result<Place, &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.limits.max_connections && !self.shed_oldest() {
            return Err("max_connections");
        }
        if let (Some(ip), Some(max)) = (client, self.limits.per_client) {
            let n = counts.by_client.entry(ip).or_insert(0);
            if *n >= max {
                return Err("max_connections_per_client");
            }
            *n += 1;
        }
        counts.total += 1;
        OPEN.inc();
        Ok(Place {
            counts: self.counts.clone(),
            client,
        })
    }
}

fn client_of(stream: &Stream) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    digest.peer_addr()?.as_inet().map(|a| a.ip())
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Admission<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client = client_of(&stream);
        let _place = match self.admit(client) {
            Ok(place) => place,
            Err(limit) => {
                REFUSED.with_label_values(&[limit]).inc();
                tracing::debug!(client = ?client, limit, "connection refused");
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(BUSY).await;
                    let _ = stream.flush().await;
                })
                .await;
                return None;
            }
        };
        let stream = HeaderDeadline::arm(stream, self.limits.header_timeout, &self.waiting);
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        // Polled: this runs once, at the end of the process.
        let first_requests = async {
            while HeaderDeadline::first_header_awaited(&self.waiting) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // By `header_timeout` their deadline has closed them anyway (and an absurd limit is a
        // far future, not an overflow).
        let _ = tokio::time::timeout(self.limits.header_timeout, first_requests).await;
        self.inner.cleanup().await
    }
}
