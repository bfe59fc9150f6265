//! The access log: one line per request, the record operators keep of what was asked and how
//! it went.
//!
//! Where a request ends (`service::log`), its line is an [`AccessEntry`] of borrowed values,
//! handed to [`write`]. By default the entry becomes a `tracing` event (target
//! `tessera::access`, level INFO, the fields below in order) and the log's subscriber formats it
//! as it formats every other line. A binary whose log can write the line more cheaply installs
//! an [`AccessLogWriter`] with [`install`]: the server's JSON log does, writing the very same
//! line straight from the entry. Why: an event goes through tracing's dispatch and a field
//! visitor that writes each of the fourteen fields through `core::fmt`; measured under
//! callgrind that was 13 % of a proxied request's instructions (`bench/proxy_instructions.sh`),
//! for one line.
//!
//! ```
//! use tessera_proxy::access_log::AccessEntry;
//!
//! let uri: http::Uri = "/iiif/a/full/max/0/default.jpg".parse().unwrap();
//! let entry = AccessEntry { status: 200, ..AccessEntry::new(&uri) };
//! // With no writer installed and no subscriber, this is an event nobody records.
//! tessera_proxy::access_log::write(&entry);
//! ```

use pingora::protocols::l4::socket::SocketAddr;
use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

/// The target of the access log's events, by which a log filter can select or silence them.
pub const TARGET: &str = "tessera::access";

/// One request's access-log line, as its fields (JSON keys) in the order they are written.
#[derive(Clone, Copy, Debug)]
pub struct AccessEntry<'a> {
    /// The request's id (`x-request-id`).
    pub request_id: &'a str,
    /// The route's name, empty when no route matched.
    pub route: &'a str,
    pub method: &'a str,
    /// The Host (or HTTP/2 authority) the client asked for.
    pub host: &'a str,
    /// The request target as the client sent it (`path`).
    pub uri: &'a http::Uri,
    /// `HTTP/1.1`, `HTTP/2.0`, …: `http::Version`'s `Debug` form.
    pub http: &'static str,
    /// The answer's status; 0 when none was written.
    pub status: u16,
    /// The response cache's outcome, empty on routes without `cache:`.
    pub cache: &'a str,
    /// The upstream endpoint the request went to (`-` when it went to none).
    pub upstream: Option<&'a SocketAddr>,
    /// Body bytes sent to the client.
    pub bytes: usize,
    pub duration_ms: f64,
    /// The client's address (empty when unknown).
    pub client: Option<IpAddr>,
    pub user_agent: &'a str,
    /// Pingora's error type, empty on success.
    pub error: &'a str,
}

impl<'a> AccessEntry<'a> {
    /// An entry for `uri` over HTTP/1.1, every other field empty or zero.
    pub fn new(uri: &'a http::Uri) -> Self {
        Self {
            request_id: "",
            route: "",
            method: "",
            host: "",
            uri,
            http: "HTTP/1.1",
            status: 0,
            cache: "",
            upstream: None,
            bytes: 0,
            duration_ms: 0.0,
            client: None,
            user_agent: "",
            error: "",
        }
    }

    /// The entry as a `tracing` event: the default way of writing it, and what an installed
    /// writer's lines must look like (the server's JSON writer is tested against it).
    pub fn emit_event(&self) {
        tracing::info!(
            target: TARGET,
            request_id = self.request_id,
            route = self.route,
            method = self.method,
            host = self.host,
            path = %self.uri,
            http = self.http,
            status = self.status,
            cache = self.cache,
            upstream = %OrDash(self.upstream),
            bytes = self.bytes,
            duration_ms = self.duration_ms,
            client = %OrEmpty(self.client),
            user_agent = self.user_agent,
            error = self.error,
        );
    }
}

/// What writes access-log lines in place of the `tracing` event.
pub trait AccessLogWriter: Send + Sync + 'static {
    fn write(&self, entry: &AccessEntry<'_>);
}

static WRITER: OnceLock<Box<dyn AccessLogWriter>> = OnceLock::new();

/// Write access-log lines with `writer` from now on, for the life of the process (the log, like
/// `tracing`'s global subscriber, is set once). False if one was installed already.
pub fn install(writer: Box<dyn AccessLogWriter>) -> bool {
    WRITER.set(writer).is_ok()
}

/// Write `entry`'s line: by the installed writer, else as a `tracing` event.
pub fn write(entry: &AccessEntry<'_>) {
    match WRITER.get() {
        Some(writer) => writer.write(entry),
        None => entry.emit_event(),
    }
}

/// The upstream as the line writes it: the endpoint, or `-`.
pub struct OrDash<'a>(pub Option<&'a SocketAddr>);

impl fmt::Display for OrDash<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The client as the line writes it: the address, or nothing.
struct OrEmpty(Option<IpAddr>);

impl fmt::Display for OrEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}
