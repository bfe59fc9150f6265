//! The end of every request: its route's metrics, the JSON access-log line, and the header
//! deadline armed for the next request on the connection.

use super::state::ServiceState;
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
        let req = session.req_header();
        let client = state.exchange.client_ip;
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
            method = %req.method,
            host = crate::plugin::authority(req).unwrap_or(""),
            path = %req.uri,
            http = ?req.version,
            status = status,
            cache = state.exchange.cache.status().unwrap_or(""),
            upstream = %state.endpoint_name(),
            bytes = session.body_bytes_sent(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            client = %client.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent = header(http::header::USER_AGENT),
            error = e.map(|e| e.etype().as_str()).unwrap_or(""),
        );
    }
}
