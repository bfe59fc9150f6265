//! The request an upstream gets, made the same way whatever the cluster speaks: the handler's
//! path rewrite and Host, the forwarded headers, then the route's filters' upstream phase.

use crate::plugin::{FilterChain, HttpError, RequestInfo, UpstreamTarget};
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::RequestHeader;

/// Parsed once: a lookup by `&str` parses the name on every request.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Turn `upstream` (a copy of the client's request) into the request `target` gets. A rewritten
/// path that is not a valid URI is the client's request's fault (its captures made it): 400.
/// A filter may refuse the request with an error of its own.
pub fn prepare(
    upstream: &mut RequestHeader,
    target: &UpstreamTarget,
    req: &RequestInfo<'_>,
    filters: &FilterChain,
) -> Result<(), HttpError> {
    if let Some(pq) = &target.path_and_query {
        let uri = pq.parse::<http::Uri>().map_err(|e| {
            tracing::warn!(route = %req.route, path = %pq, "the rewritten upstream path is not a valid URI: {e}");
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "bad request: the rewritten path is not a valid URI",
            )
        })?;
        upstream.set_uri(uri);
    }
    if let Some(host) = &target.host {
        let host = HeaderValue::from_str(host)
            .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad Host"))?;
        set(upstream, http::header::HOST, host)?;
    }
    if let Some(ip) = req.client_ip {
        let prior = upstream
            .headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok());
        // "prior, ip" or "ip".
        let prior_len = prior.map_or(0, |p| p.len() + 2);
        let mut xff = String::with_capacity(prior_len + crate::ip_text::MAX_IPV4_LEN);
        if let Some(prior) = prior {
            xff.push_str(prior);
            xff.push_str(", ");
        }
        crate::ip_text::push_ip(&mut xff, ip);
        // From the `String` itself: no copy of it.
        let xff = HeaderValue::try_from(xff)
            .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "bad request: X-Forwarded-For"))?;
        set(upstream, "x-forwarded-for", xff)?;
    }
    let proto = HeaderValue::from_static(if req.tls { "https" } else { "http" });
    set(upstream, "x-forwarded-proto", proto)?;
    filters.upstream_request(req, upstream)
}

fn set(
    upstream: &mut RequestHeader,
    name: impl pingora::http::IntoCaseHeaderName,
    value: HeaderValue,
) -> Result<(), HttpError> {
    upstream
        .insert_header(name, value)
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captures::Captures;
    use crate::cluster::Cluster;
    use crate::config::ClusterConfig;
    use crate::plugin::{Filter, RequestInfo};
    use http::Extensions;
    use std::sync::Arc;

    fn target(path: Option<&str>, host: Option<&str>) -> UpstreamTarget {
        let config: ClusterConfig =
            serde_yaml_ng::from_str("endpoints: [\"127.0.0.1:1\"]").expect("parses");
        UpstreamTarget {
            cluster: Arc::new(Cluster::build("c", &config).expect("builds")),
            path_and_query: path.map(str::to_string),
            host: host.map(str::to_string),
        }
    }

    fn prepared(
        target: &UpstreamTarget,
        filters: &FilterChain,
    ) -> Result<RequestHeader, HttpError> {
        let mut client = RequestHeader::build("GET", b"/iiif/a/info.json", None).unwrap();
        client.insert_header("host", "public.example").unwrap();
        client.insert_header("x-forwarded-for", "10.0.0.1").unwrap();
        let captures = Captures::default();
        let extensions = Extensions::new();
        let info = RequestInfo {
            header: &client,
            client_ip: Some("192.0.2.7".parse().unwrap()),
            tls: true,
            public_base: "https://public.example",
            route: "r",
            captures: &captures,
            extensions: &extensions,
        };
        let mut upstream = client.clone();
        prepare(&mut upstream, target, &info, filters).map(|()| upstream)
    }

    #[test]
    fn rewrites_path_and_host_and_adds_forwarded_headers() {
        let up = prepared(
            &target(Some("/fcgi?IIIF=a/info.json"), Some("iip.internal")),
            &FilterChain::default(),
        )
        .unwrap();
        assert_eq!(up.uri.to_string(), "/fcgi?IIIF=a/info.json");
        assert_eq!(up.headers["host"], "iip.internal");
        assert_eq!(up.headers["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(up.headers["x-forwarded-proto"], "https");
    }

    #[test]
    fn without_a_rewrite_the_request_goes_as_asked() {
        let up = prepared(&target(None, None), &FilterChain::default()).unwrap();
        assert_eq!(up.uri.to_string(), "/iiif/a/info.json");
        assert_eq!(up.headers["host"], "public.example");
    }

    #[test]
    fn a_rewrite_that_is_not_a_uri_is_400() {
        let e = prepared(&target(Some("/a b"), None), &FilterChain::default()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    struct Refuse;
    #[async_trait::async_trait]
    impl Filter for Refuse {
        fn upstream_request(
            &self,
            _req: &RequestInfo<'_>,
            _upstream: &mut RequestHeader,
        ) -> Result<(), HttpError> {
            Err(HttpError::new(StatusCode::FORBIDDEN, "no"))
        }
    }

    #[test]
    fn a_filter_may_refuse() {
        let filters = FilterChain::from(vec![Arc::new(Refuse) as Arc<dyn Filter>]);
        let e = prepared(&target(None, None), &filters).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
    }
}
