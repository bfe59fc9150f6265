//! The access log's JSON line, written straight from the request's entry into the log's batch.
//!
//! The line is exactly the one the log's formatter ([`crate::json_lines`]) writes for the
//! access log's `tracing` event, keys in the same order (a test holds the two to that; no
//! `spans` list, as the log records no spans the event could be in); what
//! this skips is the way there: tracing's dispatch, and a visitor writing each of fourteen
//! fields through `core::fmt`. Keys are written as literals, strings escaped in runs,
//! integers by `itoa`, the number with a fraction by `ryu`, and the line is formed in a buffer
//! of the thread's, kept from one request to the next. Measured under callgrind
//! (`bench/proxy_instructions.sh`), this is what brings the access log's cost per proxied
//! request from 13 % of the instructions to a few.
//!
//! Installed by [`crate::logging`] when the log is JSON on stdout and the access log's level is
//! on; otherwise the event is written as before.

use crate::json_lines::{json_string, number_with_fraction, Escaped, Utc};
use crate::log_writer::BatchWriter;
use pingora::protocols::l4::socket::SocketAddr;
use std::cell::RefCell;
use std::fmt::{self, Write};
use tessera_proxy::access_log::{AccessEntry, AccessLogWriter, OrDash};
use tessera_proxy::ip_text::{push_ip, push_socket_addr};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// A line's buffer beyond this is not kept for the next line (a freak request's megabyte path).
const KEEP_CAPACITY: usize = 16 << 10;

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The JSON access log: each entry's line, into the log's batch.
pub struct JsonAccessLog<T = Utc> {
    out: BatchWriter,
    timer: T,
}

impl JsonAccessLog {
    pub fn new(out: BatchWriter) -> Self {
        Self { out, timer: Utc }
    }
}

impl<T: FormatTime + Send + Sync + 'static> AccessLogWriter for JsonAccessLog<T> {
    fn write(&self, entry: &AccessEntry<'_>) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            // Writing into a `String` does not fail; a timer that failed loses the line.
            if access_line(&self.timer, entry, line).is_ok() {
                self.out.write_line(line.as_bytes());
            }
            if line.capacity() > KEEP_CAPACITY {
                *line = String::new();
            }
        });
    }
}

/// `{"timestamp":…,"level":"INFO",<the fields>,"target":"tessera::access"}` and a newline.
fn access_line(timer: &impl FormatTime, e: &AccessEntry<'_>, line: &mut String) -> fmt::Result {
    line.push_str("{\"timestamp\":\"");
    timer.format_time(&mut Writer::new(line))?;
    line.push_str("\",\"level\":\"INFO\",\"request_id\":");
    json_string(line, e.request_id)?;
    line.push_str(",\"route\":");
    json_string(line, e.route)?;
    line.push_str(",\"method\":");
    json_string(line, e.method)?;
    line.push_str(",\"host\":");
    json_string(line, e.host)?;
    line.push_str(",\"path\":\"");
    uri(line, e.uri)?;
    line.push_str("\",\"http\":");
    json_string(line, e.http)?;
    line.push_str(",\"status\":");
    line.push_str(itoa::Buffer::new().format(e.status));
    line.push_str(",\"cache\":");
    json_string(line, e.cache)?;
    line.push_str(",\"upstream\":\"");
    upstream(line, e.upstream)?;
    line.push_str("\",\"bytes\":");
    line.push_str(itoa::Buffer::new().format(e.bytes));
    line.push_str(",\"duration_ms\":");
    number_with_fraction(line, e.duration_ms)?;
    line.push_str(",\"client\":\"");
    if let Some(ip) = e.client {
        push_ip(line, ip);
    }
    line.push_str("\",\"user_agent\":");
    json_string(line, e.user_agent)?;
    line.push_str(",\"error\":");
    json_string(line, e.error)?;
    line.push_str(",\"target\":");
    json_string(line, tessera_proxy::access_log::TARGET)?;
    line.push_str("}\n");
    Ok(())
}

/// The request target as `http::Uri`'s `Display` writes it, escaped.
fn uri(line: &mut String, uri: &http::Uri) -> fmt::Result {
    let mut w = Escaped(line);
    if let Some(scheme) = uri.scheme_str() {
        w.write_str(scheme)?;
        w.write_str("://")?;
    }
    if let Some(authority) = uri.authority() {
        w.write_str(authority.as_str())?;
    }
    w.write_str(uri.path())?;
    if let Some(query) = uri.query() {
        w.write_char('?')?;
        w.write_str(query)?;
    }
    Ok(())
}

/// The endpoint as its `Display` writes it (`-` for none), escaped; an IP one without
/// `core::fmt`.
fn upstream(line: &mut String, addr: Option<&SocketAddr>) -> fmt::Result {
    match addr.and_then(SocketAddr::as_inet) {
        Some(inet) => {
            push_socket_addr(line, *inet);
            Ok(())
        }
        _ => write!(Escaped(line), "{}", OrDash(addr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_lines::tests::{Fixed, Lines};
    use crate::json_lines::JsonLines;
    use proptest::prelude::*;
    use std::net::IpAddr;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    /// The line the log's formatter writes for the entry's `tracing` event.
    fn event_line(entry: &AccessEntry<'_>) -> String {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines::with_timer(Fixed))
                .with_writer(lines.clone()),
        );
        tracing::subscriber::with_default(subscriber, || entry.emit_event());
        lines.text()
    }

    fn direct_line(entry: &AccessEntry<'_>) -> String {
        let mut line = String::new();
        access_line(&Fixed, entry, &mut line).unwrap();
        line
    }

    #[test]
    fn a_usual_line_is_the_events_line() {
        let uri: http::Uri = "/iiif/3/b1234/full/max/0/default.jpg?x=1".parse().unwrap();
        let upstream = SocketAddr::Inet("127.0.0.1:9000".parse().unwrap());
        let entry = AccessEntry {
            request_id: "0123456789abcdef",
            route: "tiles",
            method: "GET",
            host: "iiif.example.org",
            http: "HTTP/1.1",
            status: 200,
            cache: "miss",
            upstream: Some(&upstream),
            bytes: 48_213,
            duration_ms: 12.345_678,
            client: Some("192.0.2.7".parse().unwrap()),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) \"quoted\"",
            ..AccessEntry::new(&uri)
        };
        let line = direct_line(&entry);
        assert_eq!(line, event_line(&entry));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["path"], "/iiif/3/b1234/full/max/0/default.jpg?x=1");
        assert_eq!(v["upstream"], "127.0.0.1:9000");
        assert_eq!(v["target"], "tessera::access");
    }

    #[test]
    fn the_writer_puts_each_line_whole_into_the_log() {
        let lines = Lines::default();
        let (out, flush) = BatchWriter::spawn(lines.clone()).unwrap();
        let log = JsonAccessLog { out, timer: Fixed };
        let uri: http::Uri = "/iiif/a/info.json".parse().unwrap();
        let long_agent = "x".repeat(2 * KEEP_CAPACITY);
        let entries = [
            AccessEntry {
                status: 200,
                ..AccessEntry::new(&uri)
            },
            AccessEntry {
                user_agent: &long_agent,
                ..AccessEntry::new(&uri)
            },
            AccessEntry {
                status: 404,
                ..AccessEntry::new(&uri)
            },
        ];
        for entry in &entries {
            log.write(entry);
        }
        drop(flush);
        let expected: String = entries.iter().map(direct_line).collect();
        assert_eq!(lines.text(), expected);
        // The freak line's buffer was let go.
        LINE.with_borrow(|line| assert!(line.capacity() <= KEEP_CAPACITY));
    }

    fn socket() -> impl Strategy<Value = Option<SocketAddr>> {
        prop_oneof![
            Just(None),
            any::<std::net::SocketAddr>().prop_map(|a| Some(SocketAddr::Inet(a))),
            "/[a-z\"\\\\ ]{1,20}".prop_map(|p| {
                std::os::unix::net::SocketAddr::from_pathname(p)
                    .ok()
                    .map(SocketAddr::Unix)
            }),
        ]
    }

    fn request_target() -> impl Strategy<Value = http::Uri> {
        let path = "/[a-zA-Z0-9._~%!$&'()*+,;=:@/-]{0,40}(\\?[a-zA-Z0-9=&%/?-]{0,20})?";
        let absolute = ("(http|https)", "[a-z0-9.-]{1,15}(:[0-9]{1,5})?", path)
            .prop_map(|(s, a, p)| format!("{s}://{a}{p}"));
        prop_oneof![path.prop_map(String::from), absolute, Just("*".to_string())]
            .prop_filter_map("a valid request target", |t| t.parse().ok())
    }

    proptest! {
        #[test]
        fn any_line_is_the_events_line(
            strings in proptest::collection::vec(any::<String>(), 7),
            uri in request_target(),
            http in prop_oneof![Just("HTTP/1.1"), Just("HTTP/2.0")],
            status in any::<u16>(),
            upstream in socket(),
            bytes in any::<usize>(),
            duration_ms in prop_oneof![any::<f64>(), 0.0..100_000.0f64],
            client in any::<Option<IpAddr>>(),
        ) {
            let entry = AccessEntry {
                request_id: &strings[0],
                route: &strings[1],
                method: &strings[2],
                host: &strings[3],
                uri: &uri,
                http,
                status,
                cache: &strings[4],
                upstream: upstream.as_ref(),
                bytes,
                duration_ms,
                client,
                user_agent: &strings[5],
                error: &strings[6],
            };
            let line = direct_line(&entry);
            prop_assert_eq!(&line, &event_line(&entry));
            prop_assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
        }
    }
}
