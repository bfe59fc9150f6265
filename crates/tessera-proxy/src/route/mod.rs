//! The route table: ordered routes, first match wins.

mod matcher;
mod metrics;
mod pattern;

pub use crate::captures::Captures;
pub use matcher::RouteMatcher;
pub use pattern::PathPattern;

pub(crate) use metrics::RouteMetrics;

use crate::plugin::{FilterChain, Handler};
use crate::response_cache::RouteCache;
use crate::template::Template;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// The route label of requests no route matched (metrics and logs).
pub const NO_ROUTE: &str = "(none)";

/// A built route.
pub struct Route {
    pub name: String,
    pub matcher: RouteMatcher,
    pub filters: FilterChain,
    pub handler: Arc<dyn Handler>,
    /// `cache:`: the route's answers are kept in the response cache.
    pub cache: Option<RouteCache>,
    /// `public_url:`: the base of the URLs this route's answers carry, if the route sets it.
    pub public_url: Option<Arc<str>>,
    /// `fleet: { key }`: what names a request's image, whose owner in the fleet serves it.
    pub fleet_key: Option<Template>,
    pub(crate) metrics: RouteMetrics,
}

/// The routes in the order they were written.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(routes: Vec<Arc<Route>>) -> Self {
        Self { routes }
    }

    /// The first route that matches `req`, with its captures. A CORS preflight is also taken
    /// by a route that answers preflights and matches it but for the method.
    pub fn find(&self, req: &RequestHeader) -> Option<(Arc<Route>, Captures)> {
        let mut captures = Captures::default();
        let preflight = is_preflight(req);
        self.routes
            .iter()
            .find(|r| {
                r.matcher.matches(req, &mut captures)
                    || (preflight
                        && r.filters.answers_preflights()
                        && r.matcher.matches_any_method(req, &mut captures))
            })
            .map(|r| (r.clone(), captures))
    }

    /// The route called `name`, with its captures, if its match accepts `req`.
    pub fn named(&self, name: &str, req: &RequestHeader) -> Option<(Arc<Route>, Captures)> {
        let route = self.routes.iter().find(|r| r.name == name)?;
        let mut captures = Captures::default();
        route
            .matcher
            .matches(req, &mut captures)
            .then(|| (route.clone(), captures))
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

/// `OPTIONS` with `Access-Control-Request-Method`: a browser asking before a cross-origin request.
pub fn is_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}
