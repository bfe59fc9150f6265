//! The CGI side: request meta-variables (RFC 3875 section 4.1) and the response head (section 6).

use crate::record::push_pair;
use crate::FastCgiRequest;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

/// A head without a blank line within this many bytes is rejected.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Connection-level headers: never forwarded in either direction.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The encoded PARAMS stream for `req`.
pub(crate) fn encode_params(req: &FastCgiRequest<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut pair = |name: &[u8], value: &[u8]| push_pair(&mut out, name, value);
    pair(b"GATEWAY_INTERFACE", b"CGI/1.1");
    pair(b"SERVER_PROTOCOL", b"HTTP/1.1");
    pair(b"REQUEST_METHOD", req.method.as_bytes());
    pair(b"SCRIPT_NAME", req.script_name.as_bytes());
    let uri = match req.query_string {
        "" => req.script_name.to_owned(),
        query => format!("{}?{query}", req.script_name),
    };
    pair(b"REQUEST_URI", uri.as_bytes());
    pair(b"QUERY_STRING", req.query_string.as_bytes());
    pair(b"SERVER_NAME", req.server_name.as_bytes());
    pair(b"SERVER_PORT", req.server_port.to_string().as_bytes());
    if let Some(ip) = req.remote_addr {
        pair(b"REMOTE_ADDR", ip.to_string().as_bytes());
    }
    pair(b"CONTENT_LENGTH", b"0");
    for name in req.headers.keys().filter(|n| forwardable(n, req.headers)) {
        let var = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
        let values: Vec<&[u8]> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        pair(var.as_bytes(), &values.join(separator));
    }
    out
}

/// Whether a request header becomes an HTTP_* variable.
fn forwardable(name: &HeaderName, headers: &HeaderMap) -> bool {
    let n = name.as_str();
    let named_by_connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(n));
    // CONTENT_* have their own variables; HTTP_PROXY would be read as a proxy setting ("httpoxy");
    // an underscore would let `X_Foo` pose as `X-Foo` (nginx drops such headers by default too).
    !(name == header::CONTENT_LENGTH
        || name == header::CONTENT_TYPE
        || n == "proxy"
        || n.contains('_')
        || is_hop_by_hop(name)
        || named_by_connection)
}

/// Where the head ends in `stdout`: `(head_len, body_start)`. The blank line may be CRLF or LF.
pub(crate) fn find_head_end(stdout: &[u8]) -> Option<(usize, usize)> {
    for line_start in line_starts(stdout) {
        let rest = &stdout[line_start..];
        if rest.starts_with(b"\n") {
            return Some((line_start, line_start + 1));
        }
        if rest.starts_with(b"\r\n") {
            return Some((line_start, line_start + 2));
        }
    }
    None
}

fn line_starts(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(
        buf.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    )
}

/// Parses the head (without its blank line): `Status` sets the status (200 if absent); other
/// valid lines become headers, minus hop-by-hop and framing ones (the caller frames the body).
pub(crate) fn parse_head(
    head: &[u8],
) -> Result<(StatusCode, Vec<(HeaderName, HeaderValue)>), String> {
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            tracing::debug!(line = %String::from_utf8_lossy(line), "skipping CGI header line without ':'");
            continue;
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"status") {
            status = parse_status(value)?;
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            tracing::debug!(line = %String::from_utf8_lossy(line), "skipping invalid CGI header");
            continue;
        };
        if !is_hop_by_hop(&name) && name != header::CONTENT_LENGTH {
            headers.push((name, value));
        }
    }
    Ok((status, headers))
}

/// `404 Not Found` → 404. A final response cannot be 1xx.
fn parse_status(value: &[u8]) -> Result<StatusCode, String> {
    let code = value.split(|b| *b == b' ').next().unwrap_or_default();
    match StatusCode::from_bytes(code) {
        Ok(status) if !status.is_informational() => Ok(status),
        _ => Err(format!("bad Status: {:?}", String::from_utf8_lossy(value))),
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(stdout: &[u8]) -> (&[u8], &[u8]) {
        let (head_len, body_start) = find_head_end(stdout).expect("head end");
        (&stdout[..head_len], &stdout[body_start..])
    }

    #[test]
    fn head_ends_at_crlfcrlf_or_lflf() {
        assert_eq!(
            split(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
            (&b"A: 1\r\nB: 2\r\n"[..], &b"body\r\n\r\n"[..])
        );
        assert_eq!(
            split(b"A: 1\nB: 2\n\nbody"),
            (&b"A: 1\nB: 2\n"[..], &b"body"[..])
        );
        assert_eq!(split(b"A: 1\n\r\nbody"), (&b"A: 1\n"[..], &b"body"[..]));
        assert_eq!(split(b"\r\nbody"), (&b""[..], &b"body"[..]));
        assert_eq!(find_head_end(b"A: 1\r\nB: 2\r\n"), None);
        assert_eq!(find_head_end(b"A: 1\r\n\r"), None, "wait for the final LF");
    }

    #[test]
    fn status_header_sets_status_and_is_not_forwarded() {
        let (status, headers) =
            parse_head(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n").unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            headers,
            vec![(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))]
        );
        assert_eq!(
            parse_head(b"status:500").unwrap().0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn status_defaults_to_200() {
        let (status, headers) =
            parse_head(b"Content-Type: image/jpeg\nLast-Modified: x\n").unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].0, header::LAST_MODIFIED);
    }

    #[test]
    fn bad_status_is_an_error() {
        assert!(parse_head(b"Status: abc\r\n").is_err());
        assert!(parse_head(b"Status: 100 Continue\r\n").is_err());
        assert!(parse_head(b"Status:\r\n").is_err());
    }

    #[test]
    fn invalid_and_framing_headers_are_skipped() {
        let head = b"no colon here\r\nBad Name: x\r\n folded: y\r\nContent-Length: 12\r\n\
            Transfer-Encoding: chunked\r\nConnection: close\r\nX-Ok:  padded \t\r\nX-Ctl: a\x01b\r\n";
        let (_, headers) = parse_head(head).unwrap();
        assert_eq!(
            headers,
            vec![(
                HeaderName::from_static("x-ok"),
                HeaderValue::from_static("padded")
            )]
        );
    }

    /// Decodes a PARAMS stream back into pairs (test helper; short lengths only).
    fn decode(mut buf: &[u8]) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        while !buf.is_empty() {
            let (n, v) = (buf[0] as usize, buf[1] as usize);
            let name = String::from_utf8(buf[2..2 + n].to_vec()).unwrap();
            let value = String::from_utf8(buf[2 + n..2 + n + v].to_vec()).unwrap();
            pairs.push((name, value));
            buf = &buf[2 + n + v..];
        }
        pairs
    }

    #[test]
    fn params_include_cgi_variables_and_filtered_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "img.example"),
            ("accept", "image/*"),
            ("accept", "*/*"),
            ("x-request-id", "abc"),
            ("content-length", "5"),
            ("content-type", "text/plain"),
            ("connection", "close, x-drop-me"),
            ("x-drop-me", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy", "http://evil"),
            ("x_spoof", "1"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let req = FastCgiRequest {
            method: "GET",
            script_name: "/fcgi-bin/iipsrv.fcgi",
            query_string: "IIIF=/a.jp2/info.json",
            server_name: "img.example",
            server_port: 8080,
            remote_addr: Some("192.0.2.7".parse().unwrap()),
            headers: &headers,
        };
        let expected = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/fcgi-bin/iipsrv.fcgi"),
            ("REQUEST_URI", "/fcgi-bin/iipsrv.fcgi?IIIF=/a.jp2/info.json"),
            ("QUERY_STRING", "IIIF=/a.jp2/info.json"),
            ("SERVER_NAME", "img.example"),
            ("SERVER_PORT", "8080"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("CONTENT_LENGTH", "0"),
            ("HTTP_HOST", "img.example"),
            ("HTTP_ACCEPT", "image/*, */*"),
            ("HTTP_X_REQUEST_ID", "abc"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(decode(&encode_params(&req)), expected);

        let bare = FastCgiRequest {
            query_string: "",
            remote_addr: None,
            headers: &HeaderMap::new(),
            ..req
        };
        let pairs = decode(&encode_params(&bare));
        assert!(pairs.contains(&("REQUEST_URI".into(), "/fcgi-bin/iipsrv.fcgi".into())));
        assert!(!pairs.iter().any(|(n, _)| n == "REMOTE_ADDR"));
    }
}
