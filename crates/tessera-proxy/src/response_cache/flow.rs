//! The cache's part in a request: a lookup after the route's filters and before its handler,
//! then keeping what the handler (or the upstream it chose) answers.
//!
//! The lookup runs once per request, at the first route with `cache:`; if that route hands the
//! request on (`otherwise:`), the final answer is kept under the first route's name for it.

use super::conditional::{not_modified, Validators};
use super::entry::Entry;
use super::freshness::{verdict, Verdict};
use super::store::{EntryKey, ResponseCache, Turn};
use crate::config::{RouteCacheConfig, RouteConfig};
use crate::metrics::RESPONSE_CACHE;
use crate::plugin::{Authorised, Handler, LocalResponse, RequestContext};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Method};
use pingora::cache::lock::{LockStatus, WritePermit};
use pingora::http::ResponseHeader;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

/// A route's `cache:`, built.
pub struct RouteCache {
    /// The route's name and a digest of its config: entries of a route whose config changed
    /// are not served (they age out of memory).
    pub tag: Arc<str>,
    pub config: RouteCacheConfig,
}

impl RouteCache {
    pub fn new(route: &RouteConfig, config: RouteCacheConfig) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{route:?}").hash(&mut h);
        Self {
            tag: format!("{}#{:016x}", route.name, h.finish()).into(),
            config,
        }
    }
}

/// What the lookup found.
pub enum Lookup {
    /// A fresh answer (or the 304 for it): send it.
    Hit(LocalResponse),
    /// No fresh answer: this request fetches one, and keeps it if it may.
    Fill(Box<Fill>),
    /// This request is not cached; it goes on as if the route had no cache.
    Bypass,
}

fn count(route: &str, outcome: &str) {
    RESPONSE_CACHE
        .requests
        .with_label_values(&[route, outcome])
        .inc();
}

/// Look for the answer to `req` on a route with `cache:`.
pub async fn lookup(
    cache: &Arc<ResponseCache>,
    route_cache: &RouteCache,
    route: &str,
    handler: &dyn Handler,
    req: &mut RequestContext<'_>,
) -> Lookup {
    let head = req.header.method == Method::HEAD;
    if req.header.method != Method::GET && !head {
        count(route, "bypass");
        return Lookup::Bypass;
    }
    let Some(name) = handler.cache_name(&req.info()).await else {
        count(route, "bypass");
        return Lookup::Bypass;
    };
    let key = EntryKey {
        route: route_cache.tag.clone(),
        authorised: req.extensions.get::<Authorised>().is_some(),
        name: name.name,
    };
    let mut waited = false;
    // A wait ends with the answer kept (look again), or with the writer gone or too slow
    // (compete for the fetch again); a few rounds at most.
    for _ in 0..3 {
        let found = cache.get(&key).filter(|e| e.suits(&req.header.headers));
        let stale = match found {
            Some(entry) if entry.is_fresh(Instant::now()) => {
                count(route, "hit");
                let validators = Validators::of(&req.header.headers);
                return Lookup::Hit(if validators.holds(entry.status, &entry.headers) {
                    not_modified(&entry.headers)
                } else {
                    entry.response()
                });
            }
            other => other,
        };
        if head {
            // A HEAD answer has no body to keep.
            count(route, "miss");
            return Lookup::Bypass;
        }
        match cache.turn(&key, stale.is_some()) {
            Turn::Fetch(permit) => {
                count(route, if stale.is_some() { "expired" } else { "miss" });
                return Lookup::Fill(Box::new(Fill {
                    cache: cache.clone(),
                    key,
                    permit: Some(permit),
                    config: route_cache.config.clone(),
                    route: route.to_string(),
                    validators: Validators::take(req.header),
                    request: req.header.headers.clone(),
                    authorization: req.header.headers.contains_key(header::AUTHORIZATION),
                    image: name.image,
                    stale,
                    pending: None,
                }));
            }
            Turn::Wait(read) => {
                if !waited {
                    RESPONSE_CACHE.lock_waits.with_label_values(&[route]).inc();
                    waited = true;
                }
                read.wait().await;
                match read.lock_status() {
                    LockStatus::Done | LockStatus::AgeTimeout | LockStatus::Dangling => continue,
                    // The answer could not be kept: fetch it without waiting again.
                    _ => break,
                }
            }
        }
    }
    count(route, "bypass");
    Lookup::Bypass
}

/// An upstream answer being kept as its body streams to the client.
struct Pending {
    header: ResponseHeader,
    lifetime: super::freshness::Lifetime,
    body: Vec<Bytes>,
    len: usize,
}

/// The request that fetches an answer for the cache. Requests for the same answer wait until
/// it is dropped; dropping it without keeping an answer lets them fetch for themselves.
pub struct Fill {
    cache: Arc<ResponseCache>,
    key: EntryKey,
    permit: Option<WritePermit>,
    config: RouteCacheConfig,
    route: String,
    /// The client's validators, taken off the request so the fetch gets a whole answer.
    validators: Validators,
    /// The request's headers, for the values `Vary` names.
    request: HeaderMap,
    authorization: bool,
    image: Option<String>,
    /// The expired answer this fetch replaces, served if the fetch fails.
    stale: Option<Arc<Entry>>,
    pending: Option<Pending>,
}

impl Fill {
    /// The answer to send for `answer`, made by the handler: kept if it may be; a 304 if the
    /// client holds it; the stale answer instead if `answer` is a server error.
    pub fn answer_local(
        mut self: Box<Self>,
        answer: LocalResponse,
    ) -> (LocalResponse, &'static str) {
        if answer.status.is_server_error() {
            if let Some(stale) = self.serve_stale("the handler failed") {
                return (stale, "stale");
            }
        }
        let header = answer.header();
        self.keep(&header, answer.body.clone());
        if self.validators.holds(answer.status, &answer.headers) {
            (not_modified(&answer.headers), "miss")
        } else {
            (answer, "miss")
        }
    }

    /// The expired answer, when fetching a fresh one failed and it may still be served.
    pub fn serve_stale(&mut self, why: &str) -> Option<LocalResponse> {
        let stale = self
            .stale
            .take()
            .filter(|e| Instant::now() < e.keep_until)?;
        RESPONSE_CACHE
            .stale_served
            .with_label_values(&[&self.route])
            .inc();
        tracing::warn!(route = %self.route, name = %self.key.name, "serving a stale answer: {why}");
        Some(stale.response())
    }

    /// An upstream answer's header: decide whether to keep the body that follows.
    pub fn upstream_header(&mut self, resp: &ResponseHeader) {
        let declared = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.cache.config().max_object_bytes.0) {
            self.stored("too_large");
            self.release(LockStatus::GiveUp);
            return;
        }
        match verdict(resp, self.authorization, &self.config) {
            Verdict::Keep(lifetime) => {
                self.pending = Some(Pending {
                    header: resp.clone(),
                    lifetime,
                    body: Vec::new(),
                    len: 0,
                });
            }
            Verdict::Skip(_) => {
                self.stored("not_cacheable");
                self.release(LockStatus::GiveUp);
            }
        }
    }

    /// A piece of the upstream answer's body on its way to the client.
    pub fn upstream_body(&mut self, chunk: Option<&Bytes>, end: bool) {
        let max = self.cache.config().max_object_bytes.0;
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        if let Some(chunk) = chunk {
            pending.len += chunk.len();
            pending.body.push(chunk.clone());
        }
        if pending.len as u64 > max {
            self.pending = None;
            self.stored("too_large");
            self.release(LockStatus::GiveUp);
            return;
        }
        if end {
            let Some(p) = self.pending.take() else { return };
            let mut body = BytesMut::with_capacity(p.len);
            for c in &p.body {
                body.extend_from_slice(c);
            }
            self.insert(&p.header, body.freeze(), p.lifetime);
        }
    }

    fn keep(&mut self, resp: &ResponseHeader, body: Bytes) {
        if body.len() as u64 > self.cache.config().max_object_bytes.0 {
            self.stored("too_large");
            return;
        }
        match verdict(resp, self.authorization, &self.config) {
            Verdict::Keep(lifetime) => self.insert(resp, body, lifetime),
            Verdict::Skip(_) => self.stored("not_cacheable"),
        }
    }

    fn insert(&mut self, resp: &ResponseHeader, body: Bytes, lifetime: super::freshness::Lifetime) {
        let entry = Entry::new(resp, body, lifetime, &self.request, self.image.clone());
        self.cache.insert(self.key.clone(), entry);
        self.stored("stored");
        self.release(LockStatus::Done);
    }

    fn stored(&self, result: &str) {
        RESPONSE_CACHE
            .stores
            .with_label_values(&[&self.route, result])
            .inc();
    }

    fn release(&mut self, status: LockStatus) {
        if let Some(permit) = self.permit.take() {
            self.cache.release(&self.key, permit, status);
        }
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        // The fetch failed or was abandoned: the waiting requests fetch for themselves.
        self.release(LockStatus::TransientError);
    }
}
