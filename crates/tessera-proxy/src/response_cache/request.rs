//! The response cache's part in one request, as one value the request carries through its
//! phases: whether the cache was consulted, the [`Fill`] when this request fetches an answer
//! for it, and the `x-tessera-cache` status of what the client gets. Every phase that meets
//! the cache calls one method here.

use super::flow::{lookup, Fill, Lookup, RouteCache};
use super::store::ResponseCache;
use crate::plugin::{Handler, LocalResponse, RequestContext};
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::Arc;

/// See the module documentation.
#[derive(Default)]
pub struct CacheState {
    /// The cache was consulted for the route now answering.
    checked: bool,
    /// This request fetches an answer the cache will keep.
    fill: Option<Box<Fill>>,
    /// `x-tessera-cache` of the answer: hit, miss, stale or bypass.
    status: Option<&'static str>,
}

impl CacheState {
    /// At a route with `cache:`: the kept answer to send, or `None` to go on to the handler
    /// (which then fetches for the cache, or bypasses it). Consulted once per route.
    pub async fn look(
        &mut self,
        cache: &Arc<ResponseCache>,
        route_cache: &RouteCache,
        handler: &dyn Handler,
        req: &mut RequestContext<'_>,
    ) -> Option<LocalResponse> {
        if std::mem::replace(&mut self.checked, true) {
            return None;
        }
        match lookup(cache, route_cache, handler, req).await {
            Lookup::Hit(answer, status) => {
                self.status = Some(status);
                Some(answer)
            }
            Lookup::Fill(fill) => {
                self.fill = Some(fill);
                self.status = Some("miss");
                None
            }
            Lookup::Bypass => {
                self.status = Some("bypass");
                None
            }
        }
    }

    /// A complete answer on its way to the client: kept when this request fetches for the
    /// cache, and then a 304 if the client holds it, or the stale answer if it is an error.
    pub fn through(&mut self, answer: LocalResponse) -> LocalResponse {
        match self.fill.take() {
            Some(fill) => {
                let (answer, status) = fill.answer_local(answer);
                self.status = Some(status);
                answer
            }
            None => answer,
        }
    }

    /// The request was handed to another route: its answer is that route's to keep, so give
    /// up this fetch (putting the client's validators back on the request) and consult the
    /// cache afresh there.
    pub fn handed_on(&mut self, req: &mut RequestHeader) {
        if let Some(fill) = self.fill.take() {
            fill.hand_back(req);
        }
        self.checked = false;
        self.status = None;
    }

    /// The header of an answer whose body a handler streams: decide whether to keep it, and
    /// give the 304 to send instead when the client already holds it.
    pub fn streamed_local(
        &mut self,
        header: &ResponseHeader,
        head: &LocalResponse,
    ) -> Option<LocalResponse> {
        let fill = self.fill.as_mut()?;
        fill.streamed_header(header);
        fill.client_holds(head)
    }

    /// Whether the streamed body that follows is being kept.
    pub fn is_keeping(&self) -> bool {
        self.fill.as_ref().is_some_and(|f| f.is_keeping())
    }

    /// The header of an upstream's answer. `false`: it is a server error and a stale answer
    /// may stand in, so the caller should fail the exchange (and [`CacheState::failed_with`]
    /// will serve the stale answer).
    pub fn upstream_header(&mut self, resp: &ResponseHeader) -> bool {
        let Some(fill) = self.fill.as_mut() else {
            return true;
        };
        if resp.status.is_server_error() && fill.has_stale() {
            return false;
        }
        fill.streamed_header(resp);
        true
    }

    /// A piece of a streamed body (a handler's or an upstream's) on its way to the client.
    pub fn body(&mut self, chunk: Option<&Bytes>, end: bool) {
        if let Some(fill) = self.fill.as_mut() {
            fill.streamed_body(chunk, end);
        }
    }

    /// The answer failed midway (a cut stream): waiting requests go on without it.
    pub fn failed(&mut self) {
        if let Some(mut fill) = self.fill.take() {
            fill.failed();
        }
    }

    /// The exchange failed with `answer` (none: nothing can be sent). If nothing was sent yet
    /// and the failure is a server error, the stale answer stands in when there is one.
    pub fn failed_with(
        &mut self,
        answer: Option<LocalResponse>,
        unwritten: bool,
    ) -> Option<LocalResponse> {
        let Some(mut fill) = self.fill.take() else {
            return answer;
        };
        let mut answer = answer;
        if unwritten && answer.as_ref().is_some_and(|a| a.status.is_server_error()) {
            if let Some(stale) = fill.serve_stale("the upstream failed") {
                self.status = Some("stale");
                answer = Some(stale);
            }
        }
        fill.failed();
        answer
    }

    /// `x-tessera-cache` for the answer, if the cache took part.
    pub fn status(&self) -> Option<&'static str> {
        self.status
    }
}
