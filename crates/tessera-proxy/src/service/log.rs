//! The end of every request: its route's metrics and the JSON access-log line.

use super::state::ServiceState;
use pingora::proxy::Session;
use pingora::Error;

pub(super) fn request_done(session: &Session, e: Option<&Error>, state: &ServiceState) {
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let elapsed = state.started.elapsed();
    match &state.exchange.route {
        Some(r) => r.metrics.observe(status, elapsed),
        None => state.runtime.no_route_metrics.observe(status, elapsed),
    }
    if state.runtime.config.access_log {
        let req = session.req_header();
        let client = state.exchange.client_ip;
        tracing::info!(
            target: "tessera::access",
            route = state.route_name(),
            method = %req.method,
            path = %req.uri,
            status = status,
            upstream = %state.endpoint_name(),
            bytes = session.body_bytes_sent(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            client = %client.map(|ip| ip.to_string()).unwrap_or_default(),
            error = e.map(|e| e.etype().as_str()).unwrap_or(""),
        );
    }
}
