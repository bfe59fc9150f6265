//! The service's side of going upstream: choosing an endpoint for Pingora (with retries on
//! another endpoint after a failed connect, and the total deadline), the FastCGI exchange, and
//! telling Pingora's errors apart for [`Failure`].

use super::state::ServiceState;
use crate::cluster::Cluster;
use crate::plugin::LocalResponse;
use crate::upstream::{count_failed_attempt, fastcgi, prepare, Failure};
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub(super) const TOTAL_TIMEOUT: ErrorType = ErrorType::Custom("upstream total timeout");
const NO_ENDPOINT: ErrorType = ErrorType::Custom("no healthy endpoint");

/// The endpoint of this attempt, bounded by what is left of the total deadline.
pub(super) fn choose_peer(state: &mut ServiceState) -> Result<Box<HttpPeer>> {
    let Some(target) = &state.upstream else {
        return Error::e_explain(
            ErrorType::InternalError,
            "no upstream chosen for this request",
        );
    };
    let cluster = target.cluster.clone();
    // Called again with an endpoint that did not fail to connect: Pingora is retrying an
    // idempotent request whose reused keep-alive connection had been closed. Stay on that
    // endpoint (a fresh connection), so a consistent-hash key does not move.
    let same = state.endpoint.clone().filter(|b| !state.failed.contains(b));
    let Some(backend) = same.or_else(|| cluster.select(&state.hash_key, &state.failed)) else {
        let why = format!(
            "cluster {} has no healthy endpoint left to try",
            cluster.name()
        );
        return Err(Error::create(
            NO_ENDPOINT,
            ErrorSource::Upstream,
            Some(why.into()),
            None,
        ));
    };
    let Some(mut peer) = cluster.peer(&backend) else {
        return Error::e_explain(ErrorType::InternalError, "endpoint is not an inet address");
    };
    if state.upstream_span.is_none() {
        state.upstream_span = upstream_span(state, cluster.name());
    }
    if !state.upstream_span.is_disabled() {
        let endpoint = backend.addr.to_string();
        state.upstream_span.record("endpoint", endpoint);
    }
    state.endpoint = Some(backend);
    if state.upstream_deadline.is_none() {
        state.upstream_deadline = cluster.timeouts().total.map(|d| Instant::now() + d.0);
    }
    if let Some(deadline) = state.upstream_deadline {
        // No single wait may outlast the total budget.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        for t in [
            &mut peer.options.connection_timeout,
            &mut peer.options.read_timeout,
            &mut peer.options.write_timeout,
        ] {
            *t = Some(t.map_or(left, |d| d.min(left)));
        }
    }
    Ok(Box::new(peer))
}

/// A connect failed: count it, and retry on another endpoint if one is left (for a request to
/// its image's owner: on this node, see [`fall_back_here`]).
pub(super) fn connect_failed(state: &mut ServiceState, mut e: Box<Error>) -> Box<Error> {
    let kind = if e.etype() == &ErrorType::ConnectTimedout {
        Failure::ConnectTimeout
    } else {
        Failure::Connect
    };
    let Some((cluster, endpoint)) = attempt_failed(state, kind) else {
        return e;
    };
    let another = if state.to_owner {
        fall_back_here(state)
    } else {
        state.failed.len() <= cluster.retries()
            && cluster.select(&state.hash_key, &state.failed).is_some()
    };
    tracing::warn!(
        route = %state.route_name(), cluster = %cluster.name(), endpoint = %endpoint, error = %e,
        retrying = another, "cannot connect to upstream endpoint"
    );
    e.set_retry(another);
    e
}

/// The owner of the request's image failed after the connection was made, before anything
/// was sent to the client: count it, and serve the request on this node.
pub(super) fn owner_failed(state: &mut ServiceState, e: &mut Error) {
    let Some((_, endpoint)) = attempt_failed(state, Failure::Response) else {
        return;
    };
    let again = fall_back_here(state);
    tracing::warn!(
        route = %state.route_name(), endpoint = %endpoint, error = %e, retrying = again,
        "the image's owner in the fleet failed; serving the request here"
    );
    e.set_retry(again);
}

/// The current attempt failed as `kind`: its endpoint is not tried again, and the failure is
/// counted. The cluster and the endpoint's name, or `None` with no upstream chosen.
fn attempt_failed(state: &mut ServiceState, kind: Failure) -> Option<(Arc<Cluster>, String)> {
    let cluster = state.upstream.as_ref()?.cluster.clone();
    let endpoint = state.endpoint_name();
    if let Some(b) = &state.endpoint {
        state.failed.push(b.clone());
    }
    count_failed_attempt(cluster.name(), &endpoint, kind.kind());
    Some((cluster, endpoint))
}

/// The owner failed: the next attempt goes to this node itself, with the hop mark (so served
/// here, never forwarded again), unless this node is what failed. Counted as a fallback. Until
/// the health checks take the owner out of the ring, each node serves that image's requests
/// itself; then the ring names a new owner for all of them.
fn fall_back_here(state: &mut ServiceState) -> bool {
    let Some(fleet) = state.runtime.fleet.clone() else {
        return false;
    };
    let here = fleet.this_node().clone();
    if state.failed.contains(&here) {
        return false;
    }
    state.endpoint = Some(here);
    crate::fleet::Outcome::Fallback.count();
    true
}

/// The answer to a failed proxy attempt: the refusal made before sending, the status an error
/// carries, 502/504 for upstream failures ([`Failure`]), 400 for a bad request, nothing when
/// the client is gone.
pub(super) fn failure_answer(e: &Error, state: &mut ServiceState) -> Option<LocalResponse> {
    if let Some(refusal) = state.refusal.take() {
        return Some(refusal.to_response());
    }
    let etype = e.etype();
    if let ErrorType::HTTPStatus(code) = etype {
        let status = http::StatusCode::from_u16(*code).unwrap_or(http::StatusCode::BAD_GATEWAY);
        if matches!(*code, 502 | 504) {
            // The upstream answered with a gateway error itself (and a stale answer may stand
            // in): still a failed exchange, logged and counted.
            let endpoint = state.endpoint_name();
            let (route, cluster) = (state.route_name(), state.cluster_name());
            return Some(Failure::Response.answer_with(status, route, cluster, &endpoint, e));
        }
        let reason = if *code == 400 { "bad request" } else { "error" };
        return Some(LocalResponse::text(status, reason));
    }
    match e.esource() {
        ErrorSource::Upstream => {
            let failure = upstream_failure(etype);
            let endpoint = state.endpoint_name();
            Some(failure.answer(state.route_name(), state.cluster_name(), &endpoint, e))
        }
        ErrorSource::Downstream => match etype {
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
            _ => Some(LocalResponse::text(
                http::StatusCode::BAD_REQUEST,
                "bad request",
            )),
        },
        ErrorSource::Internal | ErrorSource::Unset => Some(LocalResponse::text(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "error",
        )),
    }
}

fn upstream_failure(t: &ErrorType) -> Failure {
    match t {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => Failure::ConnectTimeout,
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::SocketError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure => Failure::Connect,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Failure::Timeout,
        t if *t == TOTAL_TIMEOUT => Failure::Timeout,
        t if *t == NO_ENDPOINT => Failure::NoEndpoint,
        _ => Failure::Response,
    }
}

/// The total deadline, checked as the answer arrives.
pub(super) fn check_total_deadline(state: &ServiceState) -> Result<()> {
    match state.upstream_deadline {
        Some(deadline) if Instant::now() > deadline => Err(Error::create(
            TOTAL_TIMEOUT,
            ErrorSource::Upstream,
            Some("timeouts.total exceeded".into()),
            None,
        )),
        _ => Ok(()),
    }
}

/// The whole exchange with a FastCGI cluster: the same preparation as for HTTP, then one
/// FastCGI request (with a retry on another endpoint after a failed connect).
pub(super) async fn fastcgi_exchange(
    client: &RequestHeader,
    state: &mut ServiceState,
) -> LocalResponse {
    let Some(target) = &state.upstream else {
        return LocalResponse::text(http::StatusCode::INTERNAL_SERVER_ERROR, "no upstream");
    };
    let mut upstream = client.clone();
    let filters = state.exchange.filters();
    let prepared = prepare(
        &mut upstream,
        target,
        &state.exchange.info(client),
        &filters,
    );
    if let Err(refusal) = prepared {
        return refusal.to_response();
    }
    let cluster = target.cluster.clone();
    let route = state.route_name().to_string();
    state.upstream_span = upstream_span(state, cluster.name());
    let span = state.upstream_span.clone();
    fastcgi::exchange(
        &cluster,
        &state.hash_key,
        &upstream,
        state.exchange.client_ip,
        state.exchange.tls,
        fastcgi::Attempts {
            route: &route,
            failed: &mut state.failed,
            endpoint: &mut state.endpoint,
        },
    )
    .instrument(span)
    .await
}

/// The `upstream` phase span of this request: the cluster (or the fleet, for an image's owner)
/// and, once chosen, the endpoint.
fn upstream_span(state: &ServiceState, cluster: &str) -> tracing::Span {
    tracing::info_span!(
        target: crate::traces::PHASE,
        parent: &state.span,
        "upstream",
        otel.kind = "client",
        cluster = cluster,
        owner = state.to_owner,
        endpoint = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::plugin::{HttpError, UpstreamTarget};
    use crate::runtime::Runtime;
    use crate::Builder;
    use std::sync::Arc;

    /// A runtime with one cluster of each protocol; nothing listens on their endpoints.
    fn state() -> ServiceState {
        let yaml = "clusters:\n  fcgi: { endpoints: [\"127.0.0.1:1\"], protocol: fastcgi }\n  web: { endpoints: [\"127.0.0.1:1\"] }\n";
        let (config, source) = load_str("p.yaml", yaml).unwrap();
        let runtime = Runtime::build(config, &source, Builder::with_builtins().registry(), None);
        ServiceState::new(Arc::new(runtime.expect("builds")))
    }

    fn bad_rewrite(state: &ServiceState, cluster: &str) -> UpstreamTarget {
        UpstreamTarget {
            cluster: state.runtime.clusters[cluster].clone(),
            path_and_query: Some("/a b".into()),
            host: None,
        }
    }

    #[tokio::test]
    async fn a_bad_rewrite_is_400_over_fastcgi_before_any_connection() {
        let mut state = state();
        let target = bad_rewrite(&state, "fcgi");
        state.go_upstream(target);
        let client = RequestHeader::build("GET", b"/x", None).unwrap();
        let answer = fastcgi_exchange(&client, &mut state).await;
        assert_eq!(answer.status, http::StatusCode::BAD_REQUEST);
        assert!(state.endpoint.is_none(), "no endpoint was tried");
    }

    #[test]
    fn a_bad_rewrite_is_400_over_http_too() {
        // `upstream_request_filter` keeps prepare's refusal and fails the exchange with it.
        let mut state = state();
        let target = bad_rewrite(&state, "web");
        let client = RequestHeader::build("GET", b"/x", None).unwrap();
        let mut upstream = client.clone();
        let refusal = crate::upstream::prepare(
            &mut upstream,
            &target,
            &state.exchange.info(&client),
            &Default::default(),
        )
        .unwrap_err();
        state.go_upstream(target);
        state.refusal = Some(refusal);
        let e = Error::explain(ErrorType::HTTPStatus(400), "refused");
        let answer = failure_answer(&e, &mut state).expect("an answer");
        assert_eq!(answer.status, http::StatusCode::BAD_REQUEST);
        let _: Option<HttpError> = state.refusal.take();
    }

    #[test]
    fn pingora_errors_map_to_failures() {
        assert_eq!(
            upstream_failure(&ErrorType::ConnectTimedout),
            Failure::ConnectTimeout
        );
        assert_eq!(
            upstream_failure(&ErrorType::ConnectRefused),
            Failure::Connect
        );
        assert_eq!(upstream_failure(&ErrorType::ReadTimedout), Failure::Timeout);
        assert_eq!(upstream_failure(&TOTAL_TIMEOUT), Failure::Timeout);
        assert_eq!(upstream_failure(&NO_ENDPOINT), Failure::NoEndpoint);
        assert_eq!(
            upstream_failure(&ErrorType::InvalidHTTPHeader),
            Failure::Response
        );
    }
}
