//! The end of every request: its route's metrics, the access-log line, and the header
//! deadline armed for the next request on the connection.

use super::state::ServiceState;
use crate::access_log::{self, AccessEntry};
use pingora::proxy::Session;
use pingora::Error;

pub(super) fn request_done(session: &Session, e: Option<&Error>, state: &ServiceState) {
    // The next request on this connection has its own header deadline.
    if let Some(stream) = session.stream() {
        let limit = state.runtime.config.limits.header_timeout.0;
        super::header_deadline::HeaderDeadline::rearm(stream, limit);
    }
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let elapsed = state.started.elapsed();
    crate::traces::finish_request(&state.span, state.route_name(), status);
    match &state.exchange.route {
        Some(r) => r.metrics.observe(status, elapsed),
        None => state.runtime.no_route_metrics.observe(status, elapsed),
    }
    if state.runtime.config.access_log {
        access_line(session, e, state, status, elapsed);
    }
}

/// The access-log line: its fields borrowed from the request, written by [`access_log::write`].
fn access_line(
    session: &Session,
    e: Option<&Error>,
    state: &ServiceState,
    status: u16,
    elapsed: std::time::Duration,
) {
    let req = session.req_header();
    access_log::write(&AccessEntry {
        request_id: crate::request_id::of(req),
        route: state.route_name(),
        method: req.method.as_str(),
        host: crate::plugin::authority(req).unwrap_or(""),
        uri: &req.uri,
        http: version(req.version),
        status,
        cache: state.exchange.cache.status().unwrap_or(""),
        upstream: state.endpoint.as_ref().map(|b| &b.addr),
        bytes: session.body_bytes_sent(),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        client: state.exchange.client_ip,
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        error: e.map(|e| e.etype().as_str()).unwrap_or(""),
    });
}

/// As `http::Version`'s `Debug` writes it.
fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_written_as_their_debug_form() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(version(v), format!("{v:?}"));
        }
    }
}
