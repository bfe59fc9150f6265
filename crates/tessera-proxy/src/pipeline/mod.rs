//! One request's way through the route table, as one function: [`run`].
//!
//! 0. The request gets its `x-request-id` (see [`crate::request_id`]).
//! 1. The request's header must fit `limits.max_request_header_bytes` (431), and name the host
//!    it is for in a form a URL can carry (400): handlers build URLs from it. In a fleet, a
//!    peer's hop mark is taken off it: the client it names is this request's client.
//! 2. The first route that matches takes it (404 when none does).
//! 3. The route's filters run in order; one may answer at once (a preflight, 401, 429).
//! 4. On a route with `fleet:`, a request whose image another node owns goes to that node
//!    (see [`crate::fleet`]).
//! 5. On a route with `cache:`, the response cache answers if it holds the answer, or makes
//!    this request the one that fetches it (see [`crate::response_cache`]).
//! 6. The handler answers here, streams an answer, chooses an upstream, or hands the request to
//!    another route, which starts again at 3 (a few hops at most).
//!
//! The result is an [`Outcome`]; the service delivers it (or goes upstream). Nothing here
//! touches a connection, so the whole flow is tested without a network (see `tests.rs`).

#[cfg(test)]
mod tests;

use crate::captures::Captures;
use crate::cluster::Cluster;
use crate::fleet::hop::Hop;
use crate::fleet::Outcome as FleetOutcome;
use crate::plugin::{
    FilterChain, Flow, HandlerAction, HttpError, LocalResponse, RequestContext, RequestInfo,
    StreamedResponse, UpstreamTarget,
};
use crate::response_cache::CacheState;
use crate::route::{Route, NO_ROUTE};
use crate::runtime::Runtime;
use crate::traces::PHASE;
use http::{Extensions, StatusCode};
use pingora::http::RequestHeader;
use std::net::IpAddr;
use std::sync::Arc;
use tracing::Instrument;

/// How many times one request may be handed from route to route.
const MAX_HANDOFFS: usize = 4;

/// What the pipeline decided for a request.
pub enum Outcome {
    /// An answer made here: a filter's, a kept one, the handler's (already through the
    /// response cache: kept, or replaced by a 304 or a stale answer), or an error (431, 404,
    /// a route configuration that cannot serve the request).
    Answer(LocalResponse),
    /// An answer whose body is read as it is sent.
    Stream(StreamedResponse),
    /// Send the request to a cluster.
    Upstream(UpstreamTarget),
    /// Send the request to the node of the fleet that owns its image.
    Owner(ToOwner),
}

/// The node a request goes to, and the key that chose it (to choose again if it fails).
pub struct ToOwner {
    pub ring: Arc<Cluster>,
    pub owner: pingora_load_balancing::Backend,
    pub key: String,
}

/// What the pipeline knows of one request, kept for the phases that follow it.
pub struct Exchange {
    /// The route that answers (after any hand-offs); `None` until one matched.
    pub route: Option<Arc<Route>>,
    pub captures: Captures,
    /// Per-request values filters and handlers pass to each other (an auth mark, a lease).
    pub extensions: Extensions,
    pub client_ip: Option<IpAddr>,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The response cache's part in this request.
    pub cache: CacheState,
    /// Where clients reach this server, for URLs in answers (see [`crate::public_url`]); set
    /// when a route takes the request.
    pub public_base: Arc<str>,
    /// The verified mark of a request a peer forwarded: served here, never forwarded again.
    pub hop: Option<Hop>,
    /// Whether the fleet has placed this request (its first route with `fleet:` did).
    fleet_placed: bool,
}

impl Exchange {
    pub fn new(client_ip: Option<IpAddr>, tls: bool) -> Self {
        Self {
            route: None,
            captures: Captures::default(),
            extensions: Extensions::new(),
            client_ip,
            tls,
            cache: CacheState::default(),
            public_base: Arc::from(""),
            hop: None,
            fleet_placed: false,
        }
    }

    /// The answering route's filters (none before a route matched).
    pub fn filters(&self) -> FilterChain {
        self.route
            .as_ref()
            .map(|r| r.filters.clone())
            .unwrap_or_default()
    }

    pub fn route_name(&self) -> &str {
        self.route.as_ref().map_or(NO_ROUTE, |r| r.name.as_str())
    }

    /// What filters see of the request after the request phase.
    pub fn info<'a>(&'a self, header: &'a RequestHeader) -> RequestInfo<'a> {
        RequestInfo {
            header,
            client_ip: self.client_ip,
            tls: self.tls,
            public_base: &self.public_base,
            route: self.route_name(),
            captures: &self.captures,
            extensions: &self.extensions,
        }
    }

    /// What the owner must know of this request's client, for the hop mark.
    pub fn hop_to_owner(&self) -> Hop {
        Hop {
            client_ip: self.client_ip,
            tls: self.tls,
            public_base: self.public_base.to_string(),
        }
    }

    fn enter(
        &mut self,
        runtime: &Runtime,
        header: &RequestHeader,
        route: Arc<Route>,
        captures: Captures,
    ) {
        self.public_base = match &self.hop {
            // The base the forwarding node worked out, from what the client's proxies said.
            Some(hop) => Arc::from(hop.public_base.as_str()),
            None => runtime.public_urls.base(
                route.public_url.as_ref(),
                header,
                self.client_ip,
                self.tls,
            ),
        };
        self.route = Some(route);
        self.captures = captures;
    }
}

/// What filters and handlers see of the request in the request phase. A free function, so
/// that the cache state beside these fields can be borrowed at the same time.
fn context<'a>(
    header: &'a mut RequestHeader,
    route: &'a str,
    captures: &'a Captures,
    extensions: &'a mut Extensions,
    client_ip: Option<IpAddr>,
    tls: bool,
    public_base: &'a str,
) -> RequestContext<'a> {
    RequestContext {
        header,
        client_ip,
        tls,
        public_base,
        route,
        captures,
        extensions,
    }
}

/// Take a request through the route table: see the module's steps.
pub async fn run(runtime: &Runtime, header: &mut RequestHeader, ex: &mut Exchange) -> Outcome {
    // Set on the request itself, so that every copy of it (upstream, FastCGI, a peer) has it.
    crate::request_id::ensure(header);
    if request_header_bytes(header) > runtime.config.limits.max_request_header_bytes {
        return answer(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header too large",
        );
    }
    if let Err(why) = check_host(header).and_then(|()| single_content_length(header)) {
        return answer(StatusCode::BAD_REQUEST, why);
    }
    if let Some(hop) = runtime.fleet.as_ref().and_then(|f| f.receive(header)) {
        (ex.client_ip, ex.tls) = (hop.client_ip, hop.tls);
        ex.hop = Some(hop);
    }
    let Some((route, captures)) = runtime.routes.find(header) else {
        return answer(StatusCode::NOT_FOUND, "no route matches this request");
    };
    ex.enter(runtime, header, route, captures);
    for _hop in 0..MAX_HANDOFFS {
        let Some(route) = ex.route.clone() else { break };
        let (client_ip, tls) = (ex.client_ip, ex.tls);
        let public_base = ex.public_base.clone();
        let mut req = context(
            header,
            &route.name,
            &ex.captures,
            &mut ex.extensions,
            client_ip,
            tls,
            &public_base,
        );
        let filtered = route
            .filters
            .request(&mut req)
            .instrument(tracing::info_span!(target: PHASE, "route", route = %route.name))
            .await;
        if let Flow::Respond(early) = filtered {
            return Outcome::Answer(early);
        }
        let forwarded = ex.hop.is_some();
        if let Some(to) = owner_elsewhere(
            runtime,
            &route,
            &ex.captures,
            forwarded,
            &mut ex.fleet_placed,
        ) {
            return Outcome::Owner(to);
        }
        if let Some(route_cache) = &route.cache {
            let cache = &runtime.response_cache;
            let handler = route.handler.as_ref();
            let kept = ex
                .cache
                .look(cache, route_cache, handler, &mut req)
                .instrument(tracing::info_span!(target: PHASE, "cache", route = %route.name))
                .await;
            if let Some(kept) = kept {
                return Outcome::Answer(kept);
            }
        }
        let next = match route.handler.handle(&mut req).await {
            Ok(HandlerAction::Respond(r)) => return Outcome::Answer(ex.cache.through(r)),
            Ok(HandlerAction::Stream(s)) => return Outcome::Stream(s),
            Ok(HandlerAction::Upstream(target)) => return Outcome::Upstream(target),
            Ok(HandlerAction::Route(next)) => next,
            Err(HttpError { status, message }) => {
                if status.is_server_error() {
                    tracing::warn!(route = %route.name, status = status.as_u16(), "handler failed: {message}");
                }
                let error = LocalResponse::text(status, &message);
                return Outcome::Answer(ex.cache.through(error));
            }
        };
        let Some((next_route, captures)) = runtime.routes.named(&next, header) else {
            tracing::error!(route = %route.name, to = %next, "the route handed the request to a route that does not match it");
            return misconfigured();
        };
        tracing::debug!(from = %route.name, to = %next_route.name, "handed to another route");
        // The answer is the next route's to keep, under its filters and its name for it.
        ex.cache.handed_on(header);
        ex.enter(runtime, header, next_route, captures);
    }
    tracing::error!(route = %ex.route_name(), "a request was handed from route to route more than {MAX_HANDOFFS} times");
    misconfigured()
}

/// The node that owns this request's image, if the route is in the fleet, the request was not
/// forwarded here already, and the owner is another node. Counted once per request.
fn owner_elsewhere(
    runtime: &Runtime,
    route: &Route,
    captures: &Captures,
    forwarded: bool,
    placed: &mut bool,
) -> Option<ToOwner> {
    let (fleet, key) = (runtime.fleet.as_ref()?, route.fleet_key.as_ref()?);
    if std::mem::replace(placed, true) {
        return None;
    }
    if forwarded {
        FleetOutcome::Received.count();
        return None;
    }
    let key = key.render(captures);
    let Some(owner) = fleet.owner_elsewhere(key.as_bytes()) else {
        FleetOutcome::Owner.count();
        return None;
    };
    FleetOutcome::Forwarded.count();
    Some(ToOwner {
        ring: fleet.ring().clone(),
        owner,
        key,
    })
}

fn answer(status: StatusCode, message: &str) -> Outcome {
    Outcome::Answer(LocalResponse::text(status, message))
}

fn misconfigured() -> Outcome {
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        "this request cannot be served (route configuration)",
    )
}

/// The host a request is for (its Host header, or the HTTP/2 authority) must be there for
/// HTTP/1.1 (RFC 9112 §3.2) and must be a host name or IP address with an optional port:
/// handlers put it in URLs (an info.json `id`, a `Location`), where `evil.example/x?y=1#`
/// would change what the URL says.
fn check_host(header: &RequestHeader) -> Result<(), &'static str> {
    match crate::plugin::authority(header) {
        Some(host) if crate::public_url::is_host_and_port(host) => Ok(()),
        Some(_) => Err("bad request: the Host header is not a host name or address"),
        None if header.version == http::Version::HTTP_11 => {
            Err("bad request: an HTTP/1.1 request needs a Host header")
        }
        None => Ok(()),
    }
}

/// A `Content-Length` that repeats one value (`5, 5`, or two such headers) becomes that one
/// value, as RFC 9110 §8.6 allows, so an upstream never sees a list it might read otherwise;
/// differing values, or anything that is not a number, are refused.
fn single_content_length(header: &mut RequestHeader) -> Result<(), &'static str> {
    let values: Vec<&str> = header
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.to_str().unwrap_or("x"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(first) = values.first().copied() else {
        return Ok(());
    };
    let bad = "bad request: Content-Length must be one number";
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if values.iter().any(|v| *v != first) {
        return Err(bad);
    }
    if values.len() > 1 {
        let one = first.to_string();
        header
            .insert_header(http::header::CONTENT_LENGTH, one)
            .map_err(|_| bad)?;
    }
    Ok(())
}

/// Bytes of the request line and headers, as a client sent them (approximately).
fn request_header_bytes(req: &RequestHeader) -> usize {
    let uri = req.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method.as_str().len() + uri + 12;
    line + req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}
