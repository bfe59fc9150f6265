//! Checks that keep operator config and request-derived text from breaking HTTP framing or
//! escaping the path space an upstream expects.

use http::HeaderName;

/// Headers that frame a message or manage the connection. Config may not set them: a wrong
/// `content-length` or `transfer-encoding` truncates bodies or desynchronises connections.
pub fn is_framing_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "content-length"
            | "transfer-encoding"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "proxy-connection"
    )
}

/// Whether `value`, once percent-decoded, has a `.` or `..` path segment (with `/` or `\` as
/// separators). Such a capture rewritten into an upstream path could walk out of it.
pub fn has_dot_segment(value: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
    decoded
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        assert!(has_dot_segment(".."));
        assert!(has_dot_segment("a/../b"));
        assert!(has_dot_segment("a/%2e%2E/b"));
        assert!(has_dot_segment("a\\..\\b"));
        assert!(has_dot_segment("./a"));
        assert!(!has_dot_segment("a..b/c.d/.hidden"));
        assert!(!has_dot_segment("full/max/0/default.jpg"));
    }

    #[test]
    fn framing_headers() {
        assert!(is_framing_header(&HeaderName::from_static(
            "transfer-encoding"
        )));
        assert!(!is_framing_header(&HeaderName::from_static(
            "cache-control"
        )));
    }
}
