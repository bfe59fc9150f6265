//! The Pingora service: one [`ProxyHttp`] implementation drives every request through its
//! phases, each short and handing the work to the module that owns it:
//!
//! - `request_filter`: the [`pipeline`](crate::pipeline) decides (filters, response cache,
//!   handler, hand-offs); an answer made here goes to [`deliver`], an upstream choice either to
//!   a FastCGI exchange (then [`deliver`]) or on to Pingora's HTTP proxying;
//! - `upstream_peer` / `fail_to_connect`: the cluster's balancer picks a healthy endpoint; a
//!   failed connect retries on another one ([`upstream`]);
//! - `upstream_request_filter`: [`crate::upstream::prepare`], the same as for FastCGI;
//! - `response_filter` / body filters: the response cache keeps the answer, the route's
//!   filters see its header, the total deadline holds;
//! - `fail_to_proxy`: 502 or 504 ([`crate::upstream::Failure`]), or a stale answer;
//! - `logging`: metrics and the access log ([`log`]).
//!
//! Before any of that, [`Admission`] decides whether a connection is served at all
//! (connection limits) and how long its request header may take to arrive.

mod admission;
mod deliver;
mod header_deadline;
mod log;
mod state;
mod upstream;

pub(crate) use admission::{init_metrics, Admission, ConnectionLimits};
pub use state::ServiceState;

use crate::config::Protocol;
use crate::pipeline::{self, Exchange, Outcome};
use crate::state::Shared;
use async_trait::async_trait;
use deliver::{deliver, Local};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub struct TesseraProxy {
    pub(crate) shared: Arc<Shared>,
}

#[async_trait]
impl ProxyHttp for TesseraProxy {
    /// Boxed: Pingora keeps the context inside the future it allocates for every request, and
    /// copies that whole future into its allocation; a pointer there instead of the state's
    /// ~600 bytes saved 1.7k instructions of copying per request (`bench/proxy_instructions.sh`).
    type CTX = Box<ServiceState>;

    fn new_ctx(&self) -> Box<ServiceState> {
        Box::new(ServiceState::new(self.shared.current.load_full()))
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        state: &mut Box<ServiceState>,
    ) -> Result<bool> {
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        state.exchange = Exchange::new(client_ip, tls);
        state.span = crate::traces::request_span(session.req_header());
        let runtime = state.runtime.clone();
        let outcome = pipeline::run(&runtime, session.req_header_mut(), &mut state.exchange)
            .instrument(state.span.clone())
            .await;
        let answer = match outcome {
            Outcome::Answer(r) => Local::Whole(r),
            Outcome::Stream(s) => Local::Streamed(s),
            Outcome::Owner(to) => {
                state.go_to_owner(to);
                return Ok(false);
            }
            Outcome::Upstream(target) => {
                let fastcgi = target.cluster.config().protocol == Protocol::Fastcgi;
                state.go_upstream(target);
                if !fastcgi {
                    return Ok(false);
                }
                let answer = upstream::fastcgi_exchange(session.req_header(), state).await;
                Local::Whole(state.exchange.cache.through(answer))
            }
        };
        deliver(session, state, answer).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        state: &mut Box<ServiceState>,
    ) -> Result<Box<HttpPeer>> {
        upstream::choose_peer(state)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        state: &mut Box<ServiceState>,
        e: Box<Error>,
    ) -> Box<Error> {
        upstream::connect_failed(state, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        state: &mut Box<ServiceState>,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let method = &session.req_header().method;
        if !method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if state.to_owner && session.response_written().is_none() {
            // An owner that died with the request in hand: this node answers.
            upstream::owner_failed(state, &mut e);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        state: &mut Box<ServiceState>,
    ) -> Result<()> {
        let Some(target) = &state.upstream else {
            return Ok(());
        };
        if state.to_owner {
            // The owner serves it as the client's: only the mark goes with it.
            if let Some(fleet) = &state.runtime.fleet {
                fleet.mark(upstream_request, &state.exchange.hop_to_owner());
            }
            crate::traces::inject(&state.upstream_span, upstream_request);
            state.hop_sent = Some(std::time::Instant::now());
            return Ok(());
        }
        let filters = state.exchange.filters();
        let info = state.exchange.info(session.req_header());
        let prepared = crate::upstream::prepare(upstream_request, target, &info, &filters);
        if let Err(refusal) = prepared {
            let status = refusal.status.as_u16();
            state.refusal = Some(refusal);
            return Error::e_explain(
                ErrorType::HTTPStatus(status),
                "the upstream request was refused before it was sent",
            );
        }
        crate::traces::inject(&state.upstream_span, upstream_request);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        state: &mut Box<ServiceState>,
    ) -> Result<()> {
        upstream::check_total_deadline(state)?;
        if let Some(sent) = state.hop_sent.take() {
            crate::fleet::FLEET
                .hop
                .observe(sent.elapsed().as_secs_f64());
        }
        // 100 Continue and 103 Early Hints pass by: the answer is still to come.
        if !resp.status.is_informational() && !state.exchange.cache.upstream_header(resp) {
            // `fail_to_proxy` answers with the stale answer instead.
            return Error::e_explain(
                ErrorType::HTTPStatus(resp.status.as_u16()),
                "the upstream answered with a server error",
            );
        }
        state.finish_response_header(session.req_header(), resp);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        state: &mut Box<ServiceState>,
    ) -> Result<Option<Duration>> {
        state.exchange.cache.body(body.as_ref(), end_of_stream);
        Ok(None)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        state: &mut Box<ServiceState>,
    ) -> Result<Option<Duration>> {
        upstream::check_total_deadline(state)?;
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        state: &mut Box<ServiceState>,
    ) -> FailToProxy {
        // Pingora closes the connection after a failed proxy attempt; say so to the client.
        session.set_keepalive(None);
        // The answer is made here, not relayed from an owner: the route's filters see it.
        state.to_owner = false;
        let unwritten = session.response_written().is_none();
        let answer = upstream::failure_answer(e, state);
        let answer = state.exchange.cache.failed_with(answer, unwritten);
        let code = answer.as_ref().map_or(0, |r| r.status.as_u16());
        if let Some(r) = answer.filter(|_| unwritten) {
            if let Err(err) = deliver(session, state, Local::Whole(r)).await {
                tracing::debug!("could not send error response: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(
        &self,
        session: &mut Session,
        e: Option<&Error>,
        state: &mut Box<ServiceState>,
    ) {
        log::request_done(session, e, state);
    }

    /// Pingora logs every failed request at ERROR. A client's fault (a malformed body, a
    /// connection it closed) is not an error of ours: it gets an INFO line here instead, and
    /// failures of ours keep Pingora's line.
    fn suppress_error_log(&self, _session: &Session, state: &Box<ServiceState>, e: &Error) -> bool {
        let clients = *e.esource() == pingora::ErrorSource::Downstream;
        if clients {
            tracing::info!(route = %state.route_name(), error = %e, "the client's request failed");
        }
        clients
    }
}
