//! One kept answer: status, headers, body, its lifetime and the request headers it varies on.

use super::freshness::{age_of, Lifetime};
use crate::plugin::LocalResponse;
use crate::safety::is_framing_header;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use std::time::Instant;

pub struct Entry {
    pub status: StatusCode,
    /// The answer's headers, without those that frame a message (recomputed when sent).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    stored: Instant,
    /// The answer's `Age` when it was kept (an upstream or a cache before it may have held it).
    age_then: u64,
    fresh_until: Instant,
    /// When the answer is dropped: `fresh_until` plus the stale-if-error window.
    pub keep_until: Instant,
    /// The request headers `Vary` names, with the values this answer was made for.
    vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// What the answer is about ([`crate::plugin::CacheName::about`]), for purging by it.
    pub about: Option<String>,
}

impl Entry {
    pub fn new(
        resp: &ResponseHeader,
        body: Bytes,
        lifetime: Lifetime,
        request: &HeaderMap,
        about: Option<String>,
    ) -> Self {
        let now = Instant::now();
        let fresh_until = now + lifetime.fresh;
        let headers = resp
            .headers
            .iter()
            .filter(|(k, _)| !is_framing_header(k) && *k != header::AGE)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let vary = resp
            .headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .map(|n| {
                let value = request.get(&n).cloned();
                (n, value)
            })
            .collect();
        Self {
            status: resp.status,
            headers,
            body,
            stored: now,
            age_then: age_of(resp),
            fresh_until,
            keep_until: fresh_until + lifetime.stale_if_error,
            vary,
            about,
        }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// Whether the answer, no longer fresh, may still stand in for one whose fetch failed.
    pub fn servable_stale(&self, now: Instant) -> bool {
        now < self.keep_until
    }

    /// Whether `request` sends the header values this answer was made for.
    pub fn suits(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| request.get(name) == value.as_ref())
    }

    /// Memory the entry holds, roughly: what the cache's `memory` bound counts.
    pub fn weight(&self, name_len: usize) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let total = self.body.len() + headers + name_len + 256;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// The answer as kept, with its `Age`.
    pub fn response(&self) -> LocalResponse {
        let age = self.age_then + self.stored.elapsed().as_secs();
        let mut r = LocalResponse::new(self.status);
        r.headers.clone_from(&self.headers);
        r.body = self.body.clone();
        r.with_header(header::AGE, HeaderValue::from(age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(vary: &str, request: &[(&str, &str)]) -> Entry {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("vary", vary).unwrap();
        resp.append_header("content-length", "3").unwrap();
        resp.append_header("etag", "\"x\"").unwrap();
        let mut req = HeaderMap::new();
        for (k, v) in request {
            req.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let life = Lifetime {
            fresh: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(60),
        };
        Entry::new(&resp, Bytes::from_static(b"abc"), life, &req, None)
    }

    #[test]
    fn an_entry_suits_requests_with_the_values_it_varies_on() {
        let e = entry("Accept, Origin", &[("accept", "application/ld+json")]);
        let mut req = HeaderMap::new();
        assert!(!e.suits(&req));
        req.insert("accept", HeaderValue::from_static("application/ld+json"));
        assert!(e.suits(&req));
        req.insert("origin", HeaderValue::from_static("https://a.example"));
        assert!(!e.suits(&req), "it was made for a request without Origin");
    }

    #[test]
    fn framing_headers_are_not_kept_and_age_is_added() {
        let e = entry("", &[]);
        assert!(e.headers.iter().all(|(k, _)| k != "content-length"));
        let r = e.response();
        assert_eq!(r.body, "abc");
        assert!(r.headers.iter().any(|(k, v)| k == "age" && v == "0"));
        assert!(e.is_fresh(Instant::now()));
    }
}
