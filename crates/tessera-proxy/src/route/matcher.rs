//! Everything a route can require of a request: path pattern, host, method, headers, query.

use super::PathPattern;
use crate::captures::Captures;
use crate::config::{ConfigPath, MatchConfig, ValueCondition};
use http::{HeaderName, Method};
use pingora::http::RequestHeader;
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.org`: any subdomain of `example.org` (not the apex itself). Stored as `.example.org`.
    Suffix(String),
}

/// A compiled `match:` block.
#[derive(Clone, Debug)]
pub struct RouteMatcher {
    path: Option<PathPattern>,
    hosts: Vec<HostMatch>,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, ValueCondition)>,
    query: Vec<(String, ValueCondition)>,
}

impl RouteMatcher {
    /// Compile a `match:` block; errors carry their path relative to the block.
    pub fn build(cfg: &MatchConfig) -> Result<Self, (ConfigPath, String)> {
        let here = ConfigPath::root();
        let path = match &cfg.path {
            Some(p) => Some(PathPattern::parse(p).map_err(|e| (here.key("path"), e))?),
            None => None,
        };
        let mut hosts = Vec::new();
        for (i, h) in cfg.host.iter().enumerate() {
            let h = h.to_ascii_lowercase();
            let m = match h.strip_prefix("*.") {
                Some(rest) if !rest.is_empty() && !rest.contains('*') => {
                    HostMatch::Suffix(format!(".{rest}"))
                }
                None if !h.is_empty() && !h.contains('*') => HostMatch::Exact(h),
                _ => {
                    return Err((
                        here.key("host").index(i),
                        format!("host {h:?}: write an exact name or *.domain"),
                    ));
                }
            };
            hosts.push(m);
        }
        let mut methods = Vec::new();
        for (i, m) in cfg.methods.iter().enumerate() {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                (
                    here.key("methods").index(i),
                    format!("{m:?} is not an HTTP method"),
                )
            })?;
            methods.push(method);
        }
        let mut headers = Vec::new();
        for (name, cond) in &cfg.headers {
            let h = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                (
                    here.key("headers").key(name.clone()),
                    format!("{name:?} is not a header name"),
                )
            })?;
            headers.push((h, cond.clone()));
        }
        let query = cfg
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            path,
            hosts,
            methods,
            headers,
            query,
        })
    }

    /// Names the path pattern captures (empty without a pattern).
    pub fn capture_names(&self) -> BTreeSet<String> {
        self.path
            .as_ref()
            .map(PathPattern::capture_names)
            .unwrap_or_default()
    }

    /// Whether `req` satisfies every condition; captures are appended to `out` on success only.
    pub fn matches(&self, req: &RequestHeader, out: &mut Captures) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(&req.method) {
            return false;
        }
        self.matches_any_method(req, out)
    }

    /// [`RouteMatcher::matches`] without the condition on the method.
    pub fn matches_any_method(&self, req: &RequestHeader, out: &mut Captures) -> bool {
        if !self.hosts.is_empty() {
            let Some(host) = request_host(req) else {
                return false;
            };
            if !self.hosts.iter().any(|m| host_matches(m, &host)) {
                return false;
            }
        }
        for (name, cond) in &self.headers {
            let value = req.headers.get(name).map(|v| v.as_bytes());
            if !condition_holds(cond, value) {
                return false;
            }
        }
        if !self.query.is_empty() {
            let query = req.uri.query().unwrap_or("");
            for (name, cond) in &self.query {
                let value = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v);
                if !condition_holds(cond, value.as_deref().map(str::as_bytes)) {
                    return false;
                }
            }
        }
        match &self.path {
            Some(p) => p.matches(req.uri.path(), out),
            None => true,
        }
    }
}

fn condition_holds(cond: &ValueCondition, value: Option<&[u8]>) -> bool {
    match cond {
        ValueCondition::Equals(expected) => value == Some(expected.as_bytes()),
        ValueCondition::Present { present } => value.is_some() == *present,
    }
}

fn host_matches(m: &HostMatch, host: &str) -> bool {
    match m {
        HostMatch::Exact(h) => h == host,
        HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
    }
}

/// The request's host, lower-cased and without a port: the Host header, or the URI authority
/// (HTTP/2's `:authority`).
pub(crate) fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.as_str().to_string()))?;
    let host = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        raw.split_once(']')
            .map(|(h, _)| format!("{h}]"))
            .unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or("").to_string()
    };
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, uri.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn matcher(cfg: MatchConfig) -> RouteMatcher {
        RouteMatcher::build(&cfg).unwrap()
    }

    #[test]
    fn hosts_exact_and_wildcard() {
        let m = matcher(MatchConfig {
            host: vec!["iiif.example.org".into(), "*.cdn.org".into()],
            ..Default::default()
        });
        let mut c = Captures::default();
        assert!(m.matches(
            &req("GET", "/", &[("Host", "IIIF.example.org:8080")]),
            &mut c
        ));
        assert!(m.matches(&req("GET", "/", &[("Host", "a.cdn.org")]), &mut c));
        assert!(m.matches(&req("GET", "/", &[("Host", "a.b.cdn.org")]), &mut c));
        assert!(!m.matches(&req("GET", "/", &[("Host", "cdn.org")]), &mut c));
        assert!(!m.matches(&req("GET", "/", &[("Host", "xcdn.org")]), &mut c));
        assert!(!m.matches(&req("GET", "/", &[]), &mut c));
    }

    #[test]
    fn methods_headers_query() {
        let mut headers = BTreeMap::new();
        headers.insert("x-env".to_string(), ValueCondition::Equals("prod".into()));
        headers.insert(
            "x-debug".to_string(),
            ValueCondition::Present { present: false },
        );
        let mut query = BTreeMap::new();
        query.insert("v".to_string(), ValueCondition::Equals("a b".into()));
        let m = matcher(MatchConfig {
            methods: vec!["get".into()],
            headers,
            query,
            ..Default::default()
        });
        let mut c = Captures::default();
        assert!(m.matches(&req("GET", "/x?v=a+b", &[("x-env", "prod")]), &mut c));
        assert!(m.matches(&req("GET", "/x?w=1&v=a%20b", &[("x-env", "prod")]), &mut c));
        assert!(!m.matches(&req("POST", "/x?v=a+b", &[("x-env", "prod")]), &mut c));
        assert!(!m.matches(&req("GET", "/x?v=a+b", &[("x-env", "dev")]), &mut c));
        assert!(!m.matches(
            &req("GET", "/x?v=a+b", &[("x-env", "prod"), ("x-debug", "1")]),
            &mut c
        ));
        assert!(!m.matches(&req("GET", "/x", &[("x-env", "prod")]), &mut c));
    }

    #[test]
    fn failed_match_leaves_no_captures() {
        let m = matcher(MatchConfig {
            path: Some("/a/{x}".into()),
            methods: vec!["GET".into()],
            ..Default::default()
        });
        let mut c = Captures::default();
        assert!(!m.matches(&req("GET", "/b/1", &[]), &mut c));
        assert!(c.is_empty());
        assert!(m.matches(&req("GET", "/a/1", &[]), &mut c));
        assert_eq!(c.get("x"), Some("1"));
    }

    #[test]
    fn bad_match_blocks() {
        assert!(RouteMatcher::build(&MatchConfig {
            host: vec!["a.*.org".into()],
            ..Default::default()
        })
        .is_err());
        assert!(RouteMatcher::build(&MatchConfig {
            methods: vec!["G ET".into()],
            ..Default::default()
        })
        .is_err());
        let err = RouteMatcher::build(&MatchConfig {
            path: Some("x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.0.to_string(), "path");
    }
}
