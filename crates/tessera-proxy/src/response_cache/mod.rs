//! The response cache: answers kept in memory, so that the second request for an answer costs
//! no S3 read, decode or upstream exchange, and concurrent requests for one answer make one.
//!
//! Pingora's own cache machinery (`pingora-cache` driven by the proxy's cache phases) keeps only
//! answers that come from an upstream, while most IIIF answers here are made in process
//! (`byte_range`, `thumbs`, `info`, `render`). So the cache is a step of Tessera's request flow
//! that sits between a route's filters and its handler, for local and upstream answers alike.
//! It uses pingora-cache for what is generic: the cache lock (one fetch per key, waiters
//! released when it ends) and `Cache-Control` parsing. The store is moka (bounded by bytes,
//! per-entry expiry), because pingora-cache's in-memory storage is marked as for tests only.
//!
//! A handler names a request's answer ([`crate::plugin::Handler::cache_name`]); the IIIF
//! handlers name the canonical request, so equivalent spellings share one entry. A request
//! carries its part in the cache as one value, [`CacheState`].

mod conditional;
mod entry;
mod flow;
mod freshness;
mod metrics;
mod request;
mod store;

pub use flow::{lookup, Fill, Lookup, RouteCache};
pub(crate) use metrics::{init_metrics, RESPONSE_CACHE};
pub use request::CacheState;
pub use store::ResponseCache;
