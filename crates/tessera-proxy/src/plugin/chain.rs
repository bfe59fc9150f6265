//! A route's filters in order, run as one: every phase of every filter goes through here, so
//! the order and the early stops are the same wherever the engine calls them.

use super::{Filter, Flow, HttpError, RequestContext, RequestInfo};
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::Arc;

/// The filters of one route, in the order they are written.
#[derive(Clone, Default)]
pub struct FilterChain(Arc<[Arc<dyn Filter>]>);

impl From<Vec<Arc<dyn Filter>>> for FilterChain {
    fn from(filters: Vec<Arc<dyn Filter>>) -> Self {
        Self(filters.into())
    }
}

impl FilterChain {
    /// Whether one of the filters answers CORS preflights ([`Filter::answers_preflights`]).
    pub fn answers_preflights(&self) -> bool {
        self.0.iter().any(|f| f.answers_preflights())
    }

    /// The request phase: each filter in turn, until one answers (or fails, which is an answer
    /// too: its error).
    pub async fn request(&self, req: &mut RequestContext<'_>) -> Flow {
        for filter in self.0.iter() {
            match filter.request(req).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Respond(answer)) => return Flow::Respond(answer),
                Err(e) => return Flow::Respond(e.to_response()),
            }
        }
        Flow::Continue
    }

    /// The upstream-request phase: each filter may edit the request or refuse it.
    pub fn upstream_request(
        &self,
        req: &RequestInfo<'_>,
        upstream: &mut RequestHeader,
    ) -> Result<(), HttpError> {
        self.0
            .iter()
            .try_for_each(|f| f.upstream_request(req, upstream))
    }

    /// The response phase: each filter sees the response header before the client does.
    pub fn response(&self, req: &RequestInfo<'_>, response: &mut ResponseHeader) {
        for filter in self.0.iter() {
            filter.response(req, response);
        }
    }
}
