//! The URL clients reach this server at, for the URLs handlers write into answers: an
//! info.json `id`, a redirect's `Location`, the response cache's name for an answer.
//!
//! Behind a load balancer or CDN that terminates TLS, a request arrives as `http` and perhaps
//! for an internal host name; an `id` built from that sends an https page's viewer to
//! `http://…`, which the browser blocks as mixed content. The base of every such URL is,
//! first that applies:
//!
//! 1. the route's `public_url`, else the top-level `public_url`: fixed, whatever the request
//!    says;
//! 2. for a request whose connection comes from an address in `trusted_proxies`: the `proto=`
//!    and `host=` of the last element of `Forwarded` (RFC 7239), else the last value of
//!    `X-Forwarded-Proto` and `X-Forwarded-Host`; each one missing or malformed falls back to
//!    3. The *last* element is the one the trusted proxy wrote: earlier ones came with the
//!    request, from anyone. (Behind a chain of proxies, set `public_url`.)
//! 3. the connection's own scheme and the request's Host.
//!
//! A client that is not a trusted proxy cannot change the base with any header, and the
//! response cache names answers by their base, so an answer made for one base is never served
//! for another.

use crate::plugin::authority;
use ipnet::IpNet;
use pingora::http::RequestHeader;
use std::net::IpAddr;
use std::sync::Arc;

/// The top-level settings: a fixed base, and whose forwarded headers are believed.
#[derive(Clone, Debug, Default)]
pub struct PublicUrls {
    pub fixed: Option<Arc<str>>,
    pub trusted_proxies: Vec<IpNet>,
}

impl PublicUrls {
    /// The base (`scheme://host[:port][/prefix]`, no trailing slash) for one request; a
    /// route's own `public_url` comes first.
    pub fn base(
        &self,
        route_fixed: Option<&Arc<str>>,
        header: &RequestHeader,
        client_ip: Option<IpAddr>,
        tls: bool,
    ) -> Arc<str> {
        if let Some(fixed) = route_fixed.or(self.fixed.as_ref()) {
            return fixed.clone();
        }
        let own_scheme = if tls { "https" } else { "http" };
        let own_host = authority(header).unwrap_or("localhost");
        let trusted =
            client_ip.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(&ip)));
        let (scheme, host) = if trusted {
            let said = forwarded(header);
            (
                said.proto.unwrap_or(own_scheme),
                said.host.unwrap_or(own_host),
            )
        } else {
            (own_scheme, own_host)
        };
        // Every request works its base out: pieces pushed, not `format!` (1 k instructions).
        let mut base = String::with_capacity(scheme.len() + 3 + host.len());
        base.push_str(scheme);
        base.push_str("://");
        base.push_str(host);
        base.into()
    }
}

/// Check a `public_url` and write it as bases are used: `scheme://authority[/path]` with no
/// trailing slash, query or fragment.
pub fn normalise(text: &str) -> Result<Arc<str>, String> {
    let uri: http::Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{text:?} must start with http:// or https://")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{text:?} has no host"));
    };
    if !is_host_and_port(authority.as_str()) {
        return Err(format!(
            "{text:?}: {authority} is not a host name or address"
        ));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(text.trim_end_matches('/').into())
}

/// What the trusted proxy said of the client's side.
#[derive(Debug, Default, PartialEq)]
struct Said<'a> {
    proto: Option<&'static str>,
    host: Option<&'a str>,
}

fn forwarded(header: &RequestHeader) -> Said<'_> {
    let mut said = Said::default();
    // Every Forwarded header is one list, in order: its last element is the nearest proxy's.
    if let Some(last) = header
        .headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
    {
        for pair in last.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "proto" => said.proto = scheme(value),
                "host" if is_host_and_port(value) => said.host = Some(value),
                _ => {}
            }
        }
    }
    let last_value = |name: &str| {
        header
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .map(str::trim)
    };
    if said.proto.is_none() {
        said.proto = last_value("x-forwarded-proto").and_then(scheme);
    }
    if said.host.is_none() {
        said.host = last_value("x-forwarded-host").filter(|h| is_host_and_port(h));
    }
    said
}

fn scheme(text: &str) -> Option<&'static str> {
    if text.eq_ignore_ascii_case("https") {
        Some("https")
    } else if text.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// `name`, `name:port`, `1.2.3.4:port` or `[v6]:port`, names of letters, digits, `.`, `-`, `_`:
/// what may stand between `scheme://` and the path of a URL Tessera writes.
pub fn is_host_and_port(text: &str) -> bool {
    if text.is_empty() || text.len() > 255 {
        return false;
    }
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match rest.strip_prefix(':') {
                    Some(port) => ("v6", Some(port)),
                    None if rest.is_empty() => ("v6", None),
                    None => return false,
                }
            }
            None => return false,
        },
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/iiif/a/info.json", None).unwrap();
        r.insert_header("host", "internal:8080").unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn urls(trusted: &[&str]) -> PublicUrls {
        PublicUrls {
            fixed: None,
            trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    const LB: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 5)));
    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9)));

    #[test]
    fn a_trusted_proxy_says_scheme_and_host() {
        let u = urls(&["10.0.0.0/8"]);
        let xf = req(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "iiif.example.org"),
        ]);
        assert_eq!(&*u.base(None, &xf, LB, false), "https://iiif.example.org");
        let fw = req(&[(
            "forwarded",
            "for=192.0.2.9;proto=https;host=\"iiif.example.org\"",
        )]);
        assert_eq!(&*u.base(None, &fw, LB, false), "https://iiif.example.org");
        // Only what the proxy wrote (the last element) counts, not what came with the request.
        let forged = req(&[(
            "forwarded",
            "host=evil.example;proto=http, for=192.0.2.9;proto=https",
        )]);
        assert_eq!(&*u.base(None, &forged, LB, false), "https://internal:8080");
        let xf_forged = req(&[("x-forwarded-proto", "http, https")]);
        assert_eq!(
            &*u.base(None, &xf_forged, LB, false),
            "https://internal:8080"
        );
    }

    #[test]
    fn anyone_else_is_not_believed() {
        let u = urls(&["10.0.0.0/8"]);
        let xf = req(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        assert_eq!(&*u.base(None, &xf, CLIENT, false), "http://internal:8080");
        assert_eq!(
            &*urls(&[]).base(None, &xf, LB, true),
            "https://internal:8080"
        );
    }

    #[test]
    fn malformed_forwarded_values_fall_back() {
        let u = urls(&["10.0.0.0/8"]);
        let bad = req(&[
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.example/x?y#"),
        ]);
        assert_eq!(&*u.base(None, &bad, LB, false), "http://internal:8080");
    }

    #[test]
    fn a_fixed_url_wins_and_the_route_s_first() {
        let mut u = urls(&["10.0.0.0/8"]);
        u.fixed = Some(normalise("https://iiif.example.org/images/").unwrap());
        let xf = req(&[("x-forwarded-host", "other.example")]);
        assert_eq!(
            &*u.base(None, &xf, LB, false),
            "https://iiif.example.org/images"
        );
        let route: Arc<str> = "https://route.example".into();
        assert_eq!(
            &*u.base(Some(&route), &xf, LB, false),
            "https://route.example"
        );
    }

    #[test]
    fn public_urls_are_checked() {
        assert!(normalise("iiif.example.org").is_err());
        assert!(normalise("ftp://iiif.example.org").is_err());
        assert!(normalise("https://iiif.example.org/?a=1").is_err());
        assert!(normalise("https://iiif.example.org/#x").is_err());
        assert!(normalise("https://user@iiif.example.org").is_err());
        assert_eq!(
            &*normalise("https://[::1]:8443").unwrap(),
            "https://[::1]:8443"
        );
    }
}
