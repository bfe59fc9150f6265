//! The cache's part in a request: a lookup after the route's filters and before its handler,
//! then keeping what the handler (or the upstream it chose) answers.
//!
//! The lookup runs at each route with `cache:` that the request reaches; a route that hands
//! the request on (`otherwise:`) gives up its fetch, and the answering route keeps the answer
//! under its own name for it (see [`super::CacheState::handed_on`]).

use super::conditional::{not_modified, Validators};
use super::entry::Entry;
use super::freshness::{verdict, Verdict};
use super::metrics::RESPONSE_CACHE;
use super::store::{EntryKey, ResponseCache, Turn};
use crate::config::{RouteCacheConfig, RouteConfig};
use crate::plugin::{CacheVariant, Handler, LocalResponse, RequestContext};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Method};
use pingora::cache::lock::{LockStatus, WritePermit};
use pingora::http::{RequestHeader, ResponseHeader};
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
    /// An answer to send (or the 304 for it), with its `x-tessera-cache`: `hit`, or `stale`
    /// when the fetch this request waited for failed and an expired answer may stand in.
    Hit(LocalResponse, &'static str),
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

/// A kept answer for a client with `validators`: the 304 if it holds it.
fn answer_from(entry: &Entry, validators: &Validators) -> LocalResponse {
    if validators.holds(entry.status, &entry.headers) {
        not_modified(&entry.headers)
    } else {
        entry.response()
    }
}

/// Look for the answer to `req` on a route with `cache:`.
pub async fn lookup(
    cache: &Arc<ResponseCache>,
    route_cache: &RouteCache,
    handler: &dyn Handler,
    req: &mut RequestContext<'_>,
) -> Lookup {
    let route = req.route;
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
        variant: req.extensions.get::<CacheVariant>().map(|v| v.0.clone()),
        name: name.name,
    };
    let mut waited = false;
    let purges_then = cache.purges();
    // A wait ends with the answer kept (look again), or with the writer gone before it
    // finished (compete for the fetch again); a few rounds at most.
    for _ in 0..3 {
        let found = cache.get(&key).filter(|e| e.suits(&req.header.headers));
        let stale = match found {
            Some(entry) if entry.is_fresh(Instant::now()) => {
                count(route, "hit");
                let validators = Validators::of(&req.header.headers);
                return Lookup::Hit(answer_from(&entry, &validators), "hit");
            }
            other => other,
        };
        if head {
            // A HEAD answer has no body to keep.
            count(route, "miss");
            return Lookup::Bypass;
        }
        let read = match cache.turn(&key, stale.is_some()) {
            Turn::Fetch(permit) => {
                count(route, if stale.is_some() { "expired" } else { "miss" });
                return Lookup::Fill(Box::new(Fill {
                    cache: cache.clone(),
                    key,
                    permit: Some(permit),
                    purges: purges_then,
                    config: route_cache.config.clone(),
                    route: route.to_string(),
                    validators: Validators::take(req.header),
                    request: req.header.headers.clone(),
                    authorization: req.header.headers.contains_key(header::AUTHORIZATION),
                    about: name.about,
                    stale,
                    pending: None,
                }));
            }
            Turn::Wait(read) => read,
        };
        if !waited {
            RESPONSE_CACHE.lock_waits.with_label_values(&[route]).inc();
            waited = true;
        }
        read.wait().await;
        match read.lock_status() {
            LockStatus::Done | LockStatus::Dangling => continue,
            // The fetch failed: an expired answer still in its stale window stands in.
            LockStatus::TransientError | LockStatus::AgeTimeout => {
                let unpurged = cache.purges() == purges_then;
                if let Some(stale) = stale.filter(|e| unpurged && e.servable_stale(Instant::now()))
                {
                    count(route, "expired");
                    RESPONSE_CACHE
                        .stale_served
                        .with_label_values(&[route])
                        .inc();
                    let validators = Validators::of(&req.header.headers);
                    return Lookup::Hit(answer_from(&stale, &validators), "stale");
                }
                break;
            }
            // The answer could not be kept (or its fetch is too slow): fetch it without
            // waiting again.
            _ => break,
        }
    }
    count(route, "bypass");
    Lookup::Bypass
}

/// A streamed answer being kept as its body goes to the client.
struct Pending {
    header: ResponseHeader,
    lifetime: super::freshness::Lifetime,
    body: Vec<Bytes>,
    len: usize,
    /// `Content-Length`, when the upstream gave one.
    declared: Option<u64>,
}

/// The request that fetches an answer for the cache. Requests for the same answer wait until
/// it is dropped; dropping it without keeping an answer lets them fetch for themselves.
pub struct Fill {
    cache: Arc<ResponseCache>,
    key: EntryKey,
    permit: Option<WritePermit>,
    /// The cache's purge count when the fetch began: an answer fetched across a purge is not
    /// kept.
    purges: u64,
    config: RouteCacheConfig,
    route: String,
    /// The client's validators, taken off the request so the fetch gets a whole answer.
    validators: Validators,
    /// The request's headers, for the values `Vary` names.
    request: HeaderMap,
    authorization: bool,
    about: Option<String>,
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
            let stale = self.serve_stale("the handler failed");
            self.failed();
            if let Some(stale) = stale {
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

    /// The 304 to send instead of `answer` (whose body is still to come), if the client's
    /// validators say it already holds it.
    pub fn client_holds(&self, answer: &LocalResponse) -> Option<LocalResponse> {
        self.validators
            .holds(answer.status, &answer.headers)
            .then(|| not_modified(&answer.headers))
    }

    /// Whether the streamed body that follows will be kept.
    pub fn is_keeping(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether an expired answer could stand in if this fetch fails.
    pub fn has_stale(&self) -> bool {
        self.stale
            .as_ref()
            .is_some_and(|e| e.servable_stale(Instant::now()))
    }

    /// The expired answer, when fetching a fresh one failed and it may still be served.
    pub fn serve_stale(&mut self, why: &str) -> Option<LocalResponse> {
        let unpurged = self.cache.purges() == self.purges;
        let stale = self
            .stale
            .take()
            .filter(|e| unpurged && e.servable_stale(Instant::now()))?;
        RESPONSE_CACHE
            .stale_served
            .with_label_values(&[&self.route])
            .inc();
        tracing::warn!(route = %self.route, name = %self.key.name, "serving a stale answer: {why}");
        Some(answer_from(&stale, &self.validators))
    }

    /// The fetch failed: waiting requests serve the stale answer if they have one, else fetch
    /// for themselves.
    pub fn failed(&mut self) {
        self.release(LockStatus::TransientError);
    }

    /// The answer is not this route's to keep: the waiting requests go on without the cache.
    pub fn give_up(&mut self) {
        self.release(LockStatus::GiveUp);
    }

    /// The request was handed to another route: give up, and put the client's validators
    /// back on the request for whatever answers it there.
    pub fn hand_back(mut self: Box<Self>, req: &mut RequestHeader) {
        self.give_up();
        std::mem::take(&mut self.validators).restore(req);
    }

    /// The header of an answer whose body follows in pieces (from an upstream, or streamed by
    /// a handler): decide whether to keep the body.
    pub fn streamed_header(&mut self, resp: &ResponseHeader) {
        let declared = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.cache.config().max_object_bytes.0) {
            self.stored("too_large");
            self.give_up();
            return;
        }
        match verdict(resp, self.authorization, &self.config) {
            Verdict::Keep(lifetime) => {
                let bodiless = resp.status == http::StatusCode::NO_CONTENT || declared == Some(0);
                self.pending = Some(Pending {
                    header: resp.clone(),
                    lifetime,
                    body: Vec::new(),
                    len: 0,
                    declared,
                });
                if bodiless {
                    // No body follows, so no end of one may be signalled.
                    self.streamed_body(None, true);
                }
            }
            Verdict::Skip(_) => {
                self.stored("not_cacheable");
                self.give_up();
            }
        }
    }

    /// A piece of a streamed answer's body on its way to the client. The answer is kept at
    /// the end of the body: when `end` says so, or when the declared length has arrived.
    pub fn streamed_body(&mut self, chunk: Option<&Bytes>, end: bool) {
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
            self.give_up();
            return;
        }
        let complete = end || pending.declared == Some(pending.len as u64);
        if complete {
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
            self.give_up();
            return;
        }
        match verdict(resp, self.authorization, &self.config) {
            Verdict::Keep(lifetime) => self.insert(resp, body, lifetime),
            Verdict::Skip(_) => {
                self.stored("not_cacheable");
                self.give_up();
            }
        }
    }

    fn insert(&mut self, resp: &ResponseHeader, body: Bytes, lifetime: super::freshness::Lifetime) {
        let entry = Entry::new(resp, body, lifetime, &self.request, self.about.clone());
        if self
            .cache
            .insert_unless_purged(self.key.clone(), entry, self.purges)
        {
            self.stored("stored");
            self.release(LockStatus::Done);
        } else {
            // A purge ran while this answer was being fetched: it may be what was purged.
            self.stored("purged");
            self.give_up();
        }
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
        // Abandoned midway (the client went away): a waiting request takes over the fetch.
        self.release(LockStatus::Dangling);
    }
}
