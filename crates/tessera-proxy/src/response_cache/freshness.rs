//! Whether an answer may be kept by a shared cache, and for how long (RFC 9111), read with
//! pingora-cache's `Cache-Control` parser.

use crate::config::RouteCacheConfig;
use http::{header, StatusCode};
use pingora::cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora::cache::filters::calculate_expires_header_time;
use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

/// The `Age` an answer arrived with, in seconds (0 without one).
pub fn age_of(resp: &ResponseHeader) -> u64 {
    resp.headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// How long a kept answer is fresh, and how long after that it may still be served when
/// fetching it again fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh: Duration,
    pub stale_if_error: Duration,
}

/// Whether to keep an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep(Lifetime),
    /// Not kept, and why (for logs and tests).
    Skip(&'static str),
}

/// Statuses a cache may keep (RFC 9110 §15.1, "heuristically cacheable"), less 206: the cache
/// holds whole answers only.
fn storable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses kept for the route's `default_ttl` when the answer gives no lifetime. Errors
/// (404, …) are kept only when they say for how long, so that an image added later is not
/// hidden by a remembered 404.
fn default_lifetime_applies(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 203 | 300 | 301 | 308)
}

/// Decide for `resp`, the answer to a request that did (`authorization`) or did not carry an
/// `Authorization` header.
pub fn verdict(resp: &ResponseHeader, authorization: bool, route: &RouteCacheConfig) -> Verdict {
    if !storable(resp.status) {
        return Verdict::Skip("status");
    }
    if resp.headers.contains_key(header::SET_COOKIE) {
        return Verdict::Skip("set-cookie");
    }
    let vary_all = resp.headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|n| n.trim() == "*"))
    });
    if vary_all {
        return Verdict::Skip("vary: *");
    }
    let cc = CacheControl::from_resp_headers(resp);
    if cc
        .as_ref()
        .is_some_and(|cc| cc.is_cacheable() == Cacheable::No)
    {
        return Verdict::Skip("cache-control: private or no-store");
    }
    if authorization
        && !cc
            .as_ref()
            .is_some_and(|cc| cc.allow_caching_authorized_req())
    {
        return Verdict::Skip("authorization");
    }
    let fresh = cc
        .as_ref()
        .and_then(|cc| cc.fresh_duration())
        .or_else(|| {
            calculate_expires_header_time(resp)
                .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
        })
        .or_else(|| default_lifetime_applies(resp.status).then_some(route.default_ttl.0));
    let Some(fresh) = fresh else {
        return Verdict::Skip("no lifetime");
    };
    // Time already spent in an upstream cache counts against the lifetime.
    let fresh = fresh.saturating_sub(Duration::from_secs(age_of(resp)));
    if fresh.is_zero() {
        // `no-cache`, `max-age=0` or a past `Expires`: the answer must be revalidated every
        // time, which this cache does not do.
        return Verdict::Skip("already stale");
    }
    let must_revalidate = cc
        .as_ref()
        .is_some_and(|cc| cc.must_revalidate() || cc.proxy_revalidate());
    let stale_if_error = if must_revalidate {
        // Never served stale, whatever stale-if-error says (RFC 9111 §5.2.2.2).
        Duration::ZERO
    } else {
        cc.as_ref()
            .and_then(|cc| cc.stale_if_error().ok().flatten())
            .map_or(route.stale_if_error.0, |s| Duration::from_secs(s.into()))
    };
    Verdict::Keep(Lifetime {
        fresh,
        stale_if_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn route() -> RouteCacheConfig {
        RouteCacheConfig {
            default_ttl: Dur::secs(60),
            stale_if_error: Dur::secs(30),
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn keep(fresh: u64, stale: u64) -> Verdict {
        Verdict::Keep(Lifetime {
            fresh: Duration::from_secs(fresh),
            stale_if_error: Duration::from_secs(stale),
        })
    }

    #[test]
    fn max_age_and_s_maxage_decide_the_lifetime() {
        let r = resp(200, &[("cache-control", "public, max-age=600")]);
        assert_eq!(verdict(&r, false, &route()), keep(600, 30));
        let r = resp(200, &[("cache-control", "max-age=600, s-maxage=20")]);
        assert_eq!(verdict(&r, false, &route()), keep(20, 30));
        let r = resp(200, &[("cache-control", "max-age=600, stale-if-error=5")]);
        assert_eq!(verdict(&r, false, &route()), keep(600, 5));
    }

    #[test]
    fn age_counts_against_the_lifetime_and_must_revalidate_is_never_stale() {
        let r = resp(200, &[("cache-control", "max-age=600"), ("age", "590")]);
        assert_eq!(verdict(&r, false, &route()), keep(10, 30));
        let r = resp(200, &[("cache-control", "max-age=600"), ("age", "600")]);
        assert_eq!(verdict(&r, false, &route()), Verdict::Skip("already stale"));
        let r = resp(200, &[("cache-control", "max-age=60, must-revalidate")]);
        assert_eq!(verdict(&r, false, &route()), keep(60, 0));
        let r = resp(
            200,
            &[(
                "cache-control",
                "s-maxage=60, proxy-revalidate, stale-if-error=9",
            )],
        );
        assert_eq!(verdict(&r, false, &route()), keep(60, 0));
    }

    #[test]
    fn without_a_lifetime_200_gets_the_default_and_404_is_not_kept() {
        assert_eq!(verdict(&resp(200, &[]), false, &route()), keep(60, 30));
        assert_eq!(
            verdict(&resp(404, &[]), false, &route()),
            Verdict::Skip("no lifetime")
        );
        let r = resp(404, &[("cache-control", "max-age=5")]);
        assert_eq!(verdict(&r, false, &route()), keep(5, 30));
    }

    #[test]
    fn private_no_store_no_cache_and_errors_are_not_kept() {
        for cc in ["private, max-age=60", "no-store", "no-cache", "max-age=0"] {
            let r = resp(200, &[("cache-control", cc)]);
            assert!(
                matches!(verdict(&r, false, &route()), Verdict::Skip(_)),
                "{cc}"
            );
        }
        for status in [206, 500, 502, 503, 504, 401, 403, 304] {
            let r = resp(status, &[("cache-control", "max-age=60")]);
            assert_eq!(verdict(&r, false, &route()), Verdict::Skip("status"));
        }
    }

    #[test]
    fn cookies_vary_star_and_authorization_are_not_shared() {
        let r = resp(200, &[("set-cookie", "a=b")]);
        assert_eq!(verdict(&r, false, &route()), Verdict::Skip("set-cookie"));
        let r = resp(200, &[("vary", "Accept, *")]);
        assert_eq!(verdict(&r, false, &route()), Verdict::Skip("vary: *"));
        let r = resp(200, &[("cache-control", "max-age=60")]);
        assert_eq!(verdict(&r, true, &route()), Verdict::Skip("authorization"));
        let r = resp(200, &[("cache-control", "public, max-age=60")]);
        assert_eq!(verdict(&r, true, &route()), keep(60, 30));
    }
}
