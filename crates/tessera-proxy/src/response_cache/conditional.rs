//! Conditional requests against a kept answer: `If-None-Match` with its `ETag`, else
//! `If-Modified-Since` with its `Last-Modified` → 304 (RFC 9110 §13).

use crate::plugin::LocalResponse;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use pingora::http::RequestHeader;

/// The validators a client sent. The cache takes them off the request before the handler or
/// upstream sees it, so that a miss fetches a whole answer to keep, and applies them itself.
#[derive(Clone, Debug, Default)]
pub struct Validators {
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
}

impl Validators {
    /// Take the validators off `req`.
    pub fn take(req: &mut RequestHeader) -> Self {
        Self {
            if_none_match: req.remove_header(&header::IF_NONE_MATCH),
            if_modified_since: req.remove_header(&header::IF_MODIFIED_SINCE),
        }
    }

    /// Put the validators back on `req` (the reverse of [`Validators::take`]).
    pub fn restore(self, req: &mut RequestHeader) {
        if let Some(v) = self.if_none_match {
            let _ = req.insert_header(header::IF_NONE_MATCH, v);
        }
        if let Some(v) = self.if_modified_since {
            let _ = req.insert_header(header::IF_MODIFIED_SINCE, v);
        }
    }

    /// The validators of `headers`, left in place.
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(header::IF_MODIFIED_SINCE).cloned(),
        }
    }

    /// Whether the client already holds the answer `status` + `headers`.
    pub fn holds(&self, status: StatusCode, headers: &[(HeaderName, HeaderValue)]) -> bool {
        if status != StatusCode::OK {
            return false;
        }
        let get = |name: &HeaderName| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if let Some(inm) = &self.if_none_match {
            // When If-None-Match is present, If-Modified-Since is ignored (§13.1.3).
            let Some(etag) = get(&header::ETAG).and_then(|v| v.to_str().ok()) else {
                return false;
            };
            return inm.to_str().is_ok_and(|list| etag_listed(list, etag));
        }
        match (&self.if_modified_since, get(&header::LAST_MODIFIED)) {
            (Some(since), Some(modified)) => {
                let parse = |v: &HeaderValue| {
                    v.to_str()
                        .ok()
                        .and_then(|s| httpdate::parse_http_date(s).ok())
                };
                matches!((parse(since), parse(modified)), (Some(s), Some(m)) if m <= s)
            }
            _ => false,
        }
    }
}

/// Weak comparison of an `If-None-Match` list with an entity tag.
fn etag_listed(list: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = opaque(etag);
    list.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == etag)
}

/// Headers a 304 carries over from the answer it stands for (§15.4.5).
const KEPT_ON_304: [HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// 304 Not Modified for the answer with `headers`.
pub fn not_modified(headers: &[(HeaderName, HeaderValue)]) -> LocalResponse {
    headers
        .iter()
        .filter(|(k, _)| KEPT_ON_304.contains(k) || *k == header::LAST_MODIFIED)
        .fold(LocalResponse::new(StatusCode::NOT_MODIFIED), |r, (k, v)| {
            r.with_header(k.clone(), v.clone())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators(pairs: &[(HeaderName, &str)]) -> Validators {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in pairs {
            req.insert_header(k.clone(), *v).unwrap();
        }
        let taken = Validators::take(&mut req);
        assert!(req.headers.is_empty());
        taken
    }

    fn answer(pairs: &[(HeaderName, &str)]) -> Vec<(HeaderName, HeaderValue)> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_star() {
        let a = answer(&[(header::ETAG, "\"abc\"")]);
        for inm in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            let v = validators(&[(header::IF_NONE_MATCH, inm)]);
            assert!(v.holds(StatusCode::OK, &a), "{inm}");
        }
        let v = validators(&[(header::IF_NONE_MATCH, "\"abd\"")]);
        assert!(!v.holds(StatusCode::OK, &a));
        assert!(!v.holds(StatusCode::OK, &answer(&[])));
    }

    #[test]
    fn if_modified_since_is_used_only_without_if_none_match() {
        let a = answer(&[
            (header::ETAG, "\"abc\""),
            (header::LAST_MODIFIED, "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let later = validators(&[(header::IF_MODIFIED_SINCE, "Mon, 07 Nov 1994 08:49:37 GMT")]);
        assert!(later.holds(StatusCode::OK, &a));
        let earlier = validators(&[(header::IF_MODIFIED_SINCE, "Sat, 05 Nov 1994 08:49:37 GMT")]);
        assert!(!earlier.holds(StatusCode::OK, &a));
        let both = validators(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, "Mon, 07 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(!both.holds(StatusCode::OK, &a));
    }

    #[test]
    fn only_200_answers_are_not_modified() {
        let a = answer(&[(header::ETAG, "\"abc\"")]);
        let v = validators(&[(header::IF_NONE_MATCH, "*")]);
        assert!(!v.holds(StatusCode::NOT_FOUND, &a));
    }

    #[test]
    fn a_304_keeps_validators_and_caching_headers_only() {
        let a = answer(&[
            (header::ETAG, "\"abc\""),
            (header::CACHE_CONTROL, "max-age=60"),
            (header::CONTENT_TYPE, "image/jpeg"),
        ]);
        let r = not_modified(&a);
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        let names: Vec<_> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["etag", "cache-control"]);
        assert!(r.body.is_empty());
    }
}
