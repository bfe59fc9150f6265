//! The end of every request: its route's metrics, the JSON access-log line, and the header
//! deadline armed for the next request on the connection.

use super::state::{OrElse, ServiceState};
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

/// The access-log line. Written once per request, so its fields are borrowed strings and
/// `Display` values written straight into the line, never a `String` of their own.
fn access_line(
    session: &Session,
    e: Option<&Error>,
    state: &ServiceState,
    status: u16,
    elapsed: std::time::Duration,
) {
    let req = session.req_header();
    let header = |name: http::header::HeaderName| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    tracing::info!(
        target: "tessera::access",
        request_id = crate::request_id::of(req),
        route = state.route_name(),
        method = req.method.as_str(),
        host = crate::plugin::authority(req).unwrap_or(""),
        path = %req.uri,
        http = version(req.version),
        status = status,
        cache = state.exchange.cache.status().unwrap_or(""),
        upstream = %state.endpoint(),
        bytes = session.body_bytes_sent(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        client = %OrElse(state.exchange.client_ip, ""),
        user_agent = header(http::header::USER_AGENT),
        error = e.map(|e| e.etype().as_str()).unwrap_or(""),
    );
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
