//! [`ServiceState`]: what one request carries from phase to phase of the service. (The
//! plugin API's [`crate::plugin::RequestContext`] is what filters and handlers see of it.)

use crate::pipeline::{Exchange, ToOwner};
use crate::plugin::{HttpError, UpstreamTarget};
use crate::runtime::Runtime;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora_load_balancing::Backend;
use std::sync::Arc;
use std::time::Instant;

/// Per-request state of the service, Pingora's `CTX`.
pub struct ServiceState {
    /// The config this request started with: a reload never changes a request midway.
    pub(super) runtime: Arc<Runtime>,
    pub(super) started: Instant,
    /// The route, captures, extensions and cache state the pipeline left.
    pub(super) exchange: Exchange,
    /// Where the request goes, when the handler chose an upstream.
    pub(super) upstream: Option<UpstreamTarget>,
    /// The consistent-hash key of the upstream cluster, rendered from the captures.
    pub(super) hash_key: Vec<u8>,
    /// Endpoints whose connect failed during this request; not chosen again.
    pub(super) failed: Vec<Backend>,
    /// The endpoint of the current (or last) attempt.
    pub(super) endpoint: Option<Backend>,
    pub(super) upstream_deadline: Option<Instant>,
    /// Why the upstream request was refused before it was sent (a filter, a bad rewrite),
    /// answered as it is.
    pub(super) refusal: Option<HttpError>,
    /// The request goes to its image's owner in the fleet, whose answer is relayed as it is.
    pub(super) to_owner: bool,
    /// When the request was last sent to an owner (for the hop's latency).
    pub(super) hop_sent: Option<Instant>,
    /// The request's trace span (disabled unless `server.traces` is set).
    pub(super) span: tracing::Span,
    /// The span of its upstream exchange, from choosing an endpoint to the request's end.
    pub(super) upstream_span: tracing::Span,
}

impl ServiceState {
    pub(super) fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            started: Instant::now(),
            exchange: Exchange::new(None, false),
            upstream: None,
            hash_key: Vec::new(),
            failed: Vec::new(),
            endpoint: None,
            upstream_deadline: None,
            refusal: None,
            to_owner: false,
            hop_sent: None,
            span: tracing::Span::none(),
            upstream_span: tracing::Span::none(),
        }
    }

    pub(super) fn route_name(&self) -> &str {
        self.exchange.route_name()
    }

    /// The current endpoint as `ip:port`, or `-`.
    pub(super) fn endpoint_name(&self) -> String {
        crate::access_log::OrDash(self.endpoint.as_ref().map(|b| &b.addr)).to_string()
    }

    pub(super) fn cluster_name(&self) -> &str {
        self.upstream
            .as_ref()
            .map(|u| u.cluster.name())
            .unwrap_or("-")
    }

    /// Go upstream to `target`: remember it and its hash key.
    pub(super) fn go_upstream(&mut self, target: UpstreamTarget) {
        self.hash_key = target
            .cluster
            .hash_key()
            .map(|t| t.render(&self.exchange.captures).into_bytes())
            .unwrap_or_default();
        self.upstream = Some(target);
    }

    /// Go to the node that owns the request's image (and, if it cannot be reached, to this
    /// node: see `upstream::fall_back_here`).
    pub(super) fn go_to_owner(&mut self, to: ToOwner) {
        self.upstream = Some(UpstreamTarget {
            cluster: to.ring,
            path_and_query: None,
            host: None,
        });
        self.hash_key = to.key.into_bytes();
        self.endpoint = Some(to.owner);
        self.to_owner = true;
    }

    /// Every response header, local or upstream, before it goes to the client: the route's
    /// filters' response phase, the cache status and the debug header.
    pub(super) fn finish_response_header(&self, req: &RequestHeader, resp: &mut ResponseHeader) {
        match &self.exchange.route {
            // An owner's answer has been through the route's filters there.
            Some(route) if !self.to_owner => {
                route.filters.response(&self.exchange.info(req), resp);
            }
            _ => {}
        }
        if let Some(status) = self.exchange.cache.status() {
            let _ = resp.insert_header("x-tessera-cache", status);
        }
        if let Some(id) = crate::request_id::value(req) {
            let _ = resp.insert_header(crate::request_id::HEADER, id.clone());
        }
        if self.runtime.config.debug_headers {
            let dest = match &self.endpoint {
                Some(ep) => format!(
                    "route={}; cluster={}; endpoint={}",
                    self.route_name(),
                    self.cluster_name(),
                    ep.addr
                ),
                None => format!("route={}; local", self.route_name()),
            };
            if let Ok(v) = HeaderValue::from_str(&dest) {
                let _ = resp.insert_header("x-proxy-destination", v);
            }
        }
    }
}
