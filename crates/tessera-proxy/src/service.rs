//! The Pingora service: one [`ProxyHttp`] implementation drives every request through its phases.
//!
//! - `request_filter`: size limit, route lookup, the route's filters, then its handler, which
//!   answers itself or picks an upstream cluster;
//! - `upstream_peer` / `fail_to_connect`: the cluster's balancer picks a healthy endpoint; a
//!   failed connect retries on another one;
//! - `upstream_request_filter` / `response_filter`: path rewrite and the filters' later phases;
//! - `fail_to_proxy`: 502 or 504 with a log line naming route, cluster and endpoint;
//! - `logging`: metrics and the access log.

use crate::config::Protocol;
use crate::metrics::METRICS;
use crate::plugin::{
    Flow, HandlerAction, HttpError, LocalResponse, RequestContext, RequestInfo, StreamedResponse,
    UpstreamTarget,
};
use crate::response_cache::{self, Fill, Lookup};
use crate::route::{Captures, Route};
use crate::runtime::Runtime;
use crate::state::Shared;
use async_trait::async_trait;
use http::{Extensions, HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{ErrorSource, ErrorType};
use pingora_load_balancing::Backend;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Route label for requests no route matched.
pub(crate) const NO_ROUTE: &str = "(none)";
const TOTAL_TIMEOUT: ErrorType = ErrorType::Custom("upstream total timeout");
const NO_ENDPOINT: ErrorType = ErrorType::Custom("no healthy endpoint");
/// The most bytes of a streamed body read and sent at a time.
const STREAM_CHUNK: u64 = 64 << 10;
/// How many times one request may be handed from route to route.
const MAX_HANDOFFS: usize = 4;

pub struct TesseraProxy {
    pub(crate) shared: Arc<Shared>,
}

/// Per-request state.
pub struct RequestCtx {
    runtime: Arc<Runtime>,
    started: Instant,
    route: Option<Arc<Route>>,
    captures: Captures,
    extensions: Extensions,
    client_ip: Option<IpAddr>,
    /// Whether the client connection is TLS.
    tls: bool,
    upstream: Option<UpstreamTarget>,
    hash_key: Vec<u8>,
    /// Endpoints whose connect failed during this request; not chosen again.
    failed: Vec<Backend>,
    /// The endpoint of the current (or last) attempt.
    endpoint: Option<Backend>,
    upstream_deadline: Option<Instant>,
    /// An error a filter raised in the upstream-request phase, answered as it is.
    filter_error: Option<HttpError>,
    /// Whether the response cache was consulted (once per request, at the first cached route).
    cache_checked: bool,
    /// This request fetches an answer the response cache will keep.
    fill: Option<Box<Fill>>,
    /// `x-tessera-cache` of the answer: hit, miss, stale or bypass.
    cache_status: Option<&'static str>,
}

impl RequestCtx {
    fn route_name(&self) -> &str {
        self.route
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or(NO_ROUTE)
    }

    /// What filters and handlers see of the request in the request phase.
    fn request_context<'a>(
        &'a mut self,
        session: &'a mut Session,
        route: &'a str,
    ) -> RequestContext<'a> {
        RequestContext {
            header: session.req_header_mut(),
            client_ip: self.client_ip,
            tls: self.tls,
            route,
            captures: &self.captures,
            extensions: &mut self.extensions,
        }
    }

    /// A local answer on its way to the client: kept by the response cache when this request
    /// fetches for it (and then a 304 if the client holds it, or the stale answer if it failed).
    fn through_cache(&mut self, answer: LocalResponse) -> LocalResponse {
        match self.fill.take() {
            Some(fill) => {
                let (answer, status) = fill.answer_local(answer);
                self.cache_status = Some(status);
                answer
            }
            None => answer,
        }
    }

    /// The current endpoint as `ip:port`, or `-`.
    fn endpoint_name(&self) -> String {
        self.endpoint
            .as_ref()
            .map_or_else(|| "-".to_string(), |b| b.addr.to_string())
    }

    fn cluster_name(&self) -> &str {
        self.upstream
            .as_ref()
            .map(|u| u.cluster.name())
            .unwrap_or("-")
    }

    fn info<'a>(&'a self, header: &'a RequestHeader) -> RequestInfo<'a> {
        RequestInfo {
            header,
            client_ip: self.client_ip,
            tls: self.tls,
            route: self.route_name(),
            captures: &self.captures,
            extensions: &self.extensions,
        }
    }

    /// Run the route's filters' response phase and add the debug header.
    fn finish_response_header(&self, req: &RequestHeader, resp: &mut ResponseHeader) {
        if let Some(route) = &self.route {
            let info = self.info(req);
            for f in &route.filters {
                f.response(&info, resp);
            }
        }
        if let Some(status) = self.cache_status {
            let _ = resp.insert_header("x-tessera-cache", status);
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

/// Send the header of an answer Tessera writes itself, after the route's filters have seen it.
/// Returns whether its `body_len` bytes of body should follow (not for HEAD or an empty body).
async fn write_head(
    session: &mut Session,
    ctx: &RequestCtx,
    mut header: ResponseHeader,
    body_len: u64,
) -> Result<bool> {
    if request_has_body(session.req_header()) {
        // The body was never read: do not let the client stream it into a kept-alive
        // connection that we would have to drain.
        session.set_keepalive(None);
    }
    ctx.finish_response_header(session.req_header(), &mut header);
    let head_only = session.req_header().method == http::Method::HEAD || body_len == 0;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    Ok(!head_only)
}

/// Read `length` bytes of `body` in chunks, each to the response cache's fill (if this request
/// has one) and to the client (if `session` is given).
async fn stream_body(
    ctx: &mut RequestCtx,
    body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    length: u64,
    mut session: Option<&mut Session>,
) -> Result<()> {
    let mut sent = 0u64;
    while sent < length {
        let want = (length - sent).min(STREAM_CHUNK);
        let mut buf = bytes::BytesMut::with_capacity(want as usize);
        let n = match body.take(want).read_buf(&mut buf).await {
            Ok(n) if n > 0 => n as u64,
            read => {
                let why = read
                    .err()
                    .map_or_else(|| "it ended early".to_string(), |e| e.to_string());
                tracing::error!(route = %ctx.route_name(), sent, length, "a streamed answer was cut: {why}");
                if let Some(mut fill) = ctx.fill.take() {
                    fill.failed();
                }
                return Error::e_explain(ErrorType::ReadError, "the streamed body was cut");
            }
        };
        sent += n;
        let chunk = buf.freeze();
        let end = sent >= length;
        if let Some(fill) = ctx.fill.as_mut() {
            fill.streamed_body(Some(&chunk), end);
        }
        if let Some(session) = session.as_mut() {
            session.write_response_body(Some(chunk), end).await?;
        }
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

/// The answer to a failed proxy attempt: 502 for upstream failures, 504 for timeouts (each
/// counted and logged with route, cluster and endpoint), 400 for a bad request, nothing when
/// the client is gone.
fn error_response(e: &Error, ctx: &RequestCtx) -> Option<LocalResponse> {
    let etype = e.etype();
    let code: u16 = match etype {
        ErrorType::HTTPStatus(code) => *code,
        _ => match e.esource() {
            ErrorSource::Upstream if is_timeout(etype) => 504,
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match etype {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    return None
                }
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    };
    if matches!(code, 502 | 504) {
        let endpoint = ctx.endpoint_name();
        if !is_connect_error(etype) && *etype != NO_ENDPOINT {
            let kind = if is_timeout(etype) {
                "timeout"
            } else {
                "response"
            };
            count_upstream_error(ctx.cluster_name(), &endpoint, kind);
        }
        tracing::error!(
            route = %ctx.route_name(), cluster = %ctx.cluster_name(), endpoint = %endpoint, status = code,
            error = %e, "upstream failed"
        );
    }
    let reason = match code {
        502 => "bad gateway: the upstream failed",
        504 => "gateway timeout: the upstream did not answer in time",
        400 => "bad request",
        _ => "error",
    };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    Some(LocalResponse::text(status, reason))
}

fn count_upstream_error(cluster: &str, endpoint: &str, kind: &str) {
    METRICS
        .upstream_errors
        .with_label_values(&[cluster, endpoint, kind])
        .inc();
}

fn request_has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

fn is_connect_error(t: &ErrorType) -> bool {
    matches!(
        t,
        ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::BindError
            | ErrorType::SocketError
            | ErrorType::ConnectProxyFailure
            | ErrorType::TLSHandshakeFailure
            | ErrorType::TLSHandshakeTimedout
    )
}

fn is_timeout(t: &ErrorType) -> bool {
    matches!(
        t,
        ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout
    ) || *t == TOTAL_TIMEOUT
}

impl TesseraProxy {
    /// Write a complete local response, after the route's filters have seen its header.
    async fn respond(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        r: LocalResponse,
    ) -> Result<()> {
        if write_head(session, ctx, r.header(), r.body.len() as u64).await? {
            session.write_response_body(Some(r.body), true).await?;
        }
        Ok(())
    }

    /// Write a response whose body is read as it is sent, keeping it for the response cache
    /// when this request fetches for it (and then, if the client already holds it, reading it
    /// whole for the cache and answering 304). A body that fails or ends before its length
    /// closes the connection (the status is already sent), with a log line.
    async fn respond_streamed(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        s: StreamedResponse,
    ) -> Result<()> {
        let StreamedResponse {
            head,
            length,
            mut body,
        } = s;
        let mut header = head.header();
        header.insert_header(http::header::CONTENT_LENGTH, length)?;
        let mut held = None;
        if let Some(fill) = ctx.fill.as_mut() {
            fill.streamed_header(&header);
            held = fill.client_holds(&head);
        }
        if let Some(not_modified) = held {
            if ctx.fill.as_ref().is_some_and(|f| f.is_keeping()) {
                // A failure is logged and ends the fill; the client's copy is still good.
                let _ = stream_body(ctx, &mut body, length, None).await;
            }
            return self.respond(session, ctx, not_modified).await;
        }
        if write_head(session, ctx, header, length).await? {
            stream_body(ctx, &mut body, length, Some(session)).await?;
        }
        Ok(())
    }

    /// The upstream exchange for a FastCGI cluster: the same request rewrite and filter phase
    /// as the HTTP path, then one FastCGI request.
    async fn fastcgi(&self, session: &mut Session, ctx: &mut RequestCtx) -> LocalResponse {
        let Some(target) = &ctx.upstream else {
            return LocalResponse::text(StatusCode::INTERNAL_SERVER_ERROR, "no upstream");
        };
        let mut upstream = session.req_header().clone();
        if let Some(pq) = &target.path_and_query {
            match pq.parse::<http::Uri>() {
                Ok(uri) => upstream.set_uri(uri),
                Err(e) => {
                    tracing::error!(route = %ctx.route_name(), path = %pq, "the rewritten upstream path is not a valid URI: {e}");
                    return LocalResponse::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the upstream path could not be built",
                    );
                }
            }
        }
        if let Some(route) = &ctx.route {
            let info = ctx.info(session.req_header());
            for filter in &route.filters {
                if let Err(e) = filter.upstream_request(&info, &mut upstream) {
                    return e.to_response();
                }
            }
        }
        let cluster = target.cluster.clone();
        let route = ctx.route_name().to_string();
        crate::fastcgi_upstream::exchange(
            &cluster,
            &ctx.hash_key,
            &upstream,
            ctx.client_ip,
            ctx.tls,
            crate::fastcgi_upstream::Attempts {
                route: &route,
                failed: &mut ctx.failed,
                endpoint: &mut ctx.endpoint,
            },
        )
        .await
    }

    /// At the first route with `cache:`: a kept answer to send, or `None` to go on to the
    /// handler (which then fetches for the cache, or bypasses it).
    async fn look_in_cache(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Arc<Route>,
    ) -> Option<LocalResponse> {
        let route_cache = route.cache.as_ref().filter(|_| !ctx.cache_checked)?;
        ctx.cache_checked = true;
        let cache = ctx.runtime.response_cache.clone();
        let mut rc = ctx.request_context(session, &route.name);
        let found = response_cache::lookup(
            &cache,
            route_cache,
            &route.name,
            route.handler.as_ref(),
            &mut rc,
        )
        .await;
        match found {
            Lookup::Hit(answer, status) => {
                ctx.cache_status = Some(status);
                return Some(answer);
            }
            Lookup::Fill(fill) => {
                ctx.fill = Some(fill);
                ctx.cache_status = Some("miss");
            }
            Lookup::Bypass => ctx.cache_status = Some("bypass"),
        }
        None
    }

    fn check_total_deadline(&self, ctx: &RequestCtx) -> Result<()> {
        match ctx.upstream_deadline {
            Some(deadline) if Instant::now() > deadline => Err(Error::create(
                TOTAL_TIMEOUT,
                ErrorSource::Upstream,
                Some("timeouts.total exceeded".into()),
                None,
            )),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl ProxyHttp for TesseraProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            runtime: self.shared.current.load_full(),
            started: Instant::now(),
            route: None,
            captures: Captures::default(),
            extensions: Extensions::new(),
            client_ip: None,
            tls: false,
            upstream: None,
            hash_key: Vec::new(),
            failed: Vec::new(),
            endpoint: None,
            upstream_deadline: None,
            filter_error: None,
            cache_checked: false,
            fill: None,
            cache_status: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());

        let limit = ctx.runtime.config.limits.max_request_header_bytes;
        if request_header_bytes(session.req_header()) > limit {
            let r = LocalResponse::text(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header too large",
            );
            self.respond(session, ctx, r).await?;
            return Ok(true);
        }

        let Some((route, captures)) = ctx.runtime.routes.find(session.req_header()) else {
            self.respond(
                session,
                ctx,
                LocalResponse::text(StatusCode::NOT_FOUND, "no route matches this request"),
            )
            .await?;
            return Ok(true);
        };
        ctx.route = Some(route.clone());
        ctx.captures = captures;
        let mut route = route;
        // A handler may hand the request to another route (`otherwise:`); a few hops at most.
        for _hop in 0..MAX_HANDOFFS {
            for filter in &route.filters {
                let mut rc = ctx.request_context(session, &route.name);
                let answer = match filter.request(&mut rc).await {
                    Ok(Flow::Continue) => continue,
                    Ok(Flow::Respond(r)) => r,
                    Err(e) => e.to_response(),
                };
                self.respond(session, ctx, answer).await?;
                return Ok(true);
            }

            if let Some(hit) = self.look_in_cache(session, ctx, &route).await {
                self.respond(session, ctx, hit).await?;
                return Ok(true);
            }

            let mut rc = ctx.request_context(session, &route.name);
            match route.handler.handle(&mut rc).await {
                Ok(HandlerAction::Respond(r)) => {
                    let r = ctx.through_cache(r);
                    self.respond(session, ctx, r).await?;
                    return Ok(true);
                }
                Ok(HandlerAction::Stream(s)) => {
                    self.respond_streamed(session, ctx, s).await?;
                    return Ok(true);
                }
                Ok(HandlerAction::Upstream(target)) => {
                    ctx.hash_key = target
                        .cluster
                        .hash_key()
                        .map(|t| t.render(&ctx.captures).into_bytes())
                        .unwrap_or_default();
                    let fastcgi = target.cluster.config().protocol == Protocol::Fastcgi;
                    ctx.upstream = Some(target);
                    if fastcgi {
                        let answer = self.fastcgi(session, ctx).await;
                        let answer = ctx.through_cache(answer);
                        self.respond(session, ctx, answer).await?;
                        return Ok(true);
                    }
                    return Ok(false);
                }
                Ok(HandlerAction::Route(next)) => {
                    match ctx.runtime.routes.named(&next, session.req_header()) {
                        Some((next_route, captures)) => {
                            tracing::debug!(from = %route.name, to = %next_route.name, "handed to another route");
                            // The answer is the next route's to keep (under its filters and
                            // its name for the request), not this one's.
                            if let Some(fill) = ctx.fill.take() {
                                fill.hand_back(session.req_header_mut());
                            }
                            ctx.cache_checked = false;
                            ctx.cache_status = None;
                            ctx.route = Some(next_route.clone());
                            ctx.captures = captures;
                            route = next_route;
                        }
                        None => {
                            tracing::error!(route = %route.name, to = %next, "the route handed the request to a route that does not match it");
                            let r = LocalResponse::text(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "this request cannot be served (route configuration)",
                            );
                            self.respond(session, ctx, r).await?;
                            return Ok(true);
                        }
                    }
                }
                Err(HttpError { status, message }) => {
                    if status.is_server_error() {
                        tracing::warn!(route = %route.name, status = status.as_u16(), "handler failed: {message}");
                    }
                    let answer = ctx.through_cache(LocalResponse::text(status, &message));
                    self.respond(session, ctx, answer).await?;
                    return Ok(true);
                }
            }
        }
        tracing::error!(route = %route.name, "a request was handed from route to route more than {MAX_HANDOFFS} times");
        let r = LocalResponse::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this request cannot be served (route configuration)",
        );
        self.respond(session, ctx, r).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(target) = &ctx.upstream else {
            return Error::e_explain(
                ErrorType::InternalError,
                "no upstream chosen for this request",
            );
        };
        let cluster = target.cluster.clone();
        // Called again with an endpoint that did not fail to connect: Pingora is retrying an
        // idempotent request whose reused keep-alive connection had been closed. Stay on that
        // endpoint (a fresh connection), so a consistent-hash key does not move.
        let same = ctx.endpoint.clone().filter(|b| !ctx.failed.contains(b));
        let Some(backend) = same.or_else(|| cluster.select(&ctx.hash_key, &ctx.failed)) else {
            return Err(Error::create(
                NO_ENDPOINT,
                ErrorSource::Upstream,
                Some(
                    format!(
                        "cluster {} has no healthy endpoint left to try",
                        cluster.name()
                    )
                    .into(),
                ),
                None,
            ));
        };
        let Some(mut peer) = cluster.peer(&backend) else {
            return Error::e_explain(ErrorType::InternalError, "endpoint is not an inet address");
        };
        ctx.endpoint = Some(backend);
        if ctx.upstream_deadline.is_none() {
            ctx.upstream_deadline = cluster.timeouts().total.map(|d| Instant::now() + d.0);
        }
        if let Some(deadline) = ctx.upstream_deadline {
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

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some(target) = &ctx.upstream else {
            return e;
        };
        let cluster = &target.cluster;
        let endpoint = ctx.endpoint_name();
        if let Some(b) = &ctx.endpoint {
            ctx.failed.push(b.clone());
        }
        let kind = if e.etype() == &ErrorType::ConnectTimedout {
            "connect_timeout"
        } else {
            "connect"
        };
        count_upstream_error(cluster.name(), &endpoint, kind);
        let another = ctx.failed.len() <= cluster.retries()
            && cluster.select(&ctx.hash_key, &ctx.failed).is_some();
        tracing::warn!(
            route = %ctx.route_name(), cluster = %cluster.name(), endpoint = %endpoint, error = %e,
            retrying = another, "cannot connect to upstream endpoint"
        );
        if another {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(target) = &ctx.upstream {
            if let Some(pq) = &target.path_and_query {
                let uri = pq.parse::<http::Uri>().map_err(|e| {
                    Error::explain(
                        ErrorType::HTTPStatus(400),
                        format!("rewritten path {pq:?} is not a valid URI: {e}"),
                    )
                })?;
                upstream.set_uri(uri);
            }
            if let Some(host) = &target.host {
                upstream.insert_header(http::header::HOST, host.as_str())?;
            }
        }
        if let Some(ip) = ctx.client_ip {
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.to_string(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        upstream.insert_header("x-forwarded-proto", if ctx.tls { "https" } else { "http" })?;
        if let Some(route) = &ctx.route {
            let info = ctx.info(session.req_header());
            let refused = route
                .filters
                .iter()
                .try_for_each(|f| f.upstream_request(&info, upstream));
            if let Err(e) = refused {
                let status = e.status.as_u16();
                ctx.filter_error = Some(e);
                return Error::e_explain(
                    ErrorType::HTTPStatus(status),
                    "a filter refused the upstream request",
                );
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.check_total_deadline(ctx)?;
        if resp.status.is_informational() {
            // 100 Continue, 103 Early Hints: the answer is still to come.
            ctx.finish_response_header(session.req_header(), resp);
            return Ok(());
        }
        if let Some(fill) = ctx.fill.as_mut() {
            if resp.status.is_server_error() && fill.has_stale() {
                // `fail_to_proxy` answers with the stale answer instead.
                return Error::e_explain(
                    ErrorType::HTTPStatus(resp.status.as_u16()),
                    "the upstream answered with a server error",
                );
            }
            fill.streamed_header(resp);
        }
        ctx.finish_response_header(session.req_header(), resp);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(fill) = ctx.fill.as_mut() {
            fill.streamed_body(body.as_ref(), end_of_stream);
        }
        Ok(None)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        self.check_total_deadline(ctx)?;
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        // Pingora closes the connection after a failed proxy attempt; say so to the client.
        session.set_keepalive(None);
        let mut answer = match ctx.filter_error.take() {
            Some(refusal) => Some(refusal.to_response()),
            None => error_response(e, ctx),
        };
        if let Some(fill) = ctx.fill.as_mut() {
            let unwritten = session.response_written().is_none();
            if unwritten && answer.as_ref().is_some_and(|a| a.status.is_server_error()) {
                if let Some(stale) = fill.serve_stale("the upstream failed") {
                    ctx.cache_status = Some("stale");
                    answer = Some(stale);
                }
            }
            fill.failed();
        }
        let code = answer.as_ref().map_or(0, |r| r.status.as_u16());
        if let Some(r) = answer.filter(|_| session.response_written().is_none()) {
            if let Err(err) = self.respond(session, ctx, r).await {
                tracing::debug!("could not send error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        let route = ctx.route_name();
        match &ctx.route {
            Some(r) => r.metrics.observe(status, elapsed),
            None => ctx.runtime.no_route_metrics.observe(status, elapsed),
        }
        if ctx.runtime.config.access_log {
            let req = session.req_header();
            tracing::info!(
                target: "tessera::access",
                route = route,
                method = %req.method,
                path = %req.uri,
                status = status,
                upstream = %ctx.endpoint_name(),
                bytes = session.body_bytes_sent(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                client = %ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                error = e.map(|e| e.etype().as_str()).unwrap_or(""),
            );
        }
    }
}
