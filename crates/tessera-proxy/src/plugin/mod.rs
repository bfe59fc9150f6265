//! The extension points: filters, handlers and shared resources, and the factories that build
//! them from YAML.
//!
//! A **filter** takes part in a request's phases (request, upstream request, response) and may
//! answer early. A **handler** answers a route, either with a response of its own or by choosing
//! an upstream cluster. A **resource** is built once per config from a top-level section and
//! shared by the filters and handlers that ask for it. All three are built by factories
//! registered on the [`crate::Builder`]; the built-in ones, and the image application in
//! `tessera-images`, are registered exactly as a third-party plugin's are.

mod cache_name;
mod chain;
mod context;
pub(crate) mod factory;
mod parse;
pub mod resources;
mod response;

pub use cache_name::{CacheName, CacheVariant};
pub use chain::FilterChain;
pub use context::{authority, RequestContext, RequestInfo};
pub use factory::{known, BuildContext, FilterFactory, HandlerFactory, Registry};
pub use parse::{parse_config, BuildError};
pub use resources::{BuildErrors, Resource, ResourceContext, Resources};
pub use response::{HttpError, LocalResponse, StreamedResponse};

use crate::cluster::Cluster;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::Arc;

/// What a filter's request phase decides.
pub enum Flow {
    /// Go on with the next filter, then the handler.
    Continue,
    /// Answer now; later filters and the handler do not run.
    Respond(LocalResponse),
}

/// A filter: every method has a default that does nothing, so implement only the phases you need.
#[async_trait]
pub trait Filter: Send + Sync + 'static {
    /// Before the handler. May change the request's headers or answer early (403, 429, a preflight).
    async fn request(&self, _req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        Ok(Flow::Continue)
    }

    /// Just before the request goes upstream (proxying handlers only).
    fn upstream_request(
        &self,
        _req: &RequestInfo<'_>,
        _upstream: &mut RequestHeader,
    ) -> Result<(), HttpError> {
        Ok(())
    }

    /// Before the response header goes to the client: upstream responses, handler responses
    /// and early answers of filters alike.
    fn response(&self, _req: &RequestInfo<'_>, _response: &mut ResponseHeader) {}

    /// Whether this filter answers CORS preflights (`OPTIONS` with
    /// `Access-Control-Request-Method`). A route with such a filter takes the preflights for
    /// its paths whatever its `match.methods` say, since a browser asks before every
    /// cross-origin request that sends a header of its own.
    fn answers_preflights(&self) -> bool {
        false
    }
}

/// Where a proxying handler sends the request.
pub struct UpstreamTarget {
    pub cluster: Arc<Cluster>,
    /// Replace the request's path and query with this (`/fcgi?IIIF=...`); `None` keeps them.
    pub path_and_query: Option<String>,
    /// Replace the Host header sent upstream.
    pub host: Option<String>,
}

/// What a handler decides.
pub enum HandlerAction {
    Respond(LocalResponse),
    /// Answer with a body read as it is sent (e.g. an object from an origin).
    Stream(StreamedResponse),
    Upstream(UpstreamTarget),
    /// Hand the request to the route of this name (e.g. `otherwise:` of a handler that serves
    /// only some requests). That route's match is applied for its captures, then its filters
    /// and handler run.
    Route(String),
}

/// A handler answers the requests of one route.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError>;

    /// On a route with `cache:`, the name under which this request's answer is kept; `None`:
    /// it is not kept. Requests with equal names must get equal answers. The default is the
    /// request as sent (scheme, host, path and query); a handler whose answers are the same
    /// for several spellings of a request (the IIIF handlers) names the canonical one, so they
    /// share one answer.
    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        Some(CacheName::of_request(req))
    }
}
