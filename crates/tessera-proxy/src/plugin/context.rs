//! What filters and handlers see of a request.

use crate::captures::Captures;
use http::Extensions;
use pingora::http::RequestHeader;
use std::net::IpAddr;

/// The request during the request phase; filters may change its headers.
pub struct RequestContext<'a> {
    /// The client's request as it will be forwarded (filters may edit it).
    pub header: &'a mut RequestHeader,
    /// The peer address of the client connection.
    pub client_ip: Option<IpAddr>,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Where clients reach this server: `scheme://host[:port][/prefix]`, no trailing slash.
    /// URLs in answers (an info.json id, a `Location`) start with it; see
    /// [`crate::public_url`].
    pub public_base: &'a str,
    /// The name of the route that matched.
    pub route: &'a str,
    /// What the route's path pattern captured.
    pub captures: &'a Captures,
    /// Per-request values filters and handlers pass to each other (e.g. an auth decision).
    pub extensions: &'a mut Extensions,
}

/// The Host header, or the `:authority` of an HTTP/2 request (which has no Host header).
pub fn authority(header: &RequestHeader) -> Option<&str> {
    header
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| header.uri.authority().map(|a| a.as_str()))
}

impl RequestContext<'_> {
    /// The host (and port) the client asked for: the Host header or the HTTP/2 authority.
    pub fn authority(&self) -> Option<&str> {
        authority(self.header)
    }

    /// `https` or `http`, as the client connected.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// A header's value as text, if present and valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A read-only view of this request.
    pub fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            header: self.header,
            client_ip: self.client_ip,
            tls: self.tls,
            public_base: self.public_base,
            route: self.route,
            captures: self.captures,
            extensions: self.extensions,
        }
    }
}

/// The request, read-only, in the upstream-request and response phases.
pub struct RequestInfo<'a> {
    pub header: &'a RequestHeader,
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    /// See [`RequestContext::public_base`].
    pub public_base: &'a str,
    pub route: &'a str,
    pub captures: &'a Captures,
    pub extensions: &'a Extensions,
}

impl RequestInfo<'_> {
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
