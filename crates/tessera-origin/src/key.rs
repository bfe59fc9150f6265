//! Object keys built from request captures.
//!
//! A capture is raw URL path text. It is percent-decoded (an identifier `a%20b` names the key
//! `a b`) and then checked, so that no spelling of a request can name an object outside the key
//! space the operator's template describes — in particular a `dir` origin must never read
//! `/etc/passwd`, whether asked for `..`, `%2e%2e`, `/etc` or `%2Fetc`.

use percent_encoding::percent_decode_str;

/// S3's limit on key length, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a capture or key was refused. The message is safe to show to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// Percent-decode one capture and check it can be part of a key.
pub fn decode_key_part(raw: &str) -> Result<String, KeyError> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| KeyError("the identifier is not valid UTF-8 once percent-decoded".into()))?;
    check(&decoded)?;
    Ok(decoded.into_owned())
}

/// Check a whole key (after the template was filled in).
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    check(key)
}

fn check(text: &str) -> Result<(), KeyError> {
    if text.is_empty() {
        return Err(KeyError("the identifier is empty".into()));
    }
    if text.len() > MAX_KEY_BYTES {
        return Err(KeyError(format!(
            "the identifier is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(KeyError(
            "the identifier contains a control character".into(),
        ));
    }
    if text.contains('\\') {
        return Err(KeyError("the identifier contains '\\'".into()));
    }
    if text.starts_with('/') {
        return Err(KeyError("the identifier starts with '/'".into()));
    }
    for segment in text.split('/') {
        match segment {
            "." | ".." => {
                return Err(KeyError(
                    "the identifier contains a '.' or '..' segment".into(),
                ))
            }
            "" => return Err(KeyError("the identifier contains an empty segment".into())),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_identifiers_pass_and_are_decoded() {
        assert_eq!(decode_key_part("b0001234").unwrap(), "b0001234");
        assert_eq!(decode_key_part("a%20b.jp2").unwrap(), "a b.jp2");
        assert_eq!(decode_key_part("2/1/x%2Fy").unwrap(), "2/1/x/y");
        assert_eq!(decode_key_part("caf%C3%A9").unwrap(), "café");
    }

    #[test]
    fn traversal_in_every_spelling_is_refused() {
        for bad in [
            "..",
            "a/../b",
            "%2e%2e",
            "a%2F..%2Fb",
            "%2E%2E/etc/passwd",
            "/etc/passwd",
            "%2Fetc%2Fpasswd",
            "a/./b",
            "a%00b",
            "a\\..\\b",
            "a//b",
            "",
            "%ff",
        ] {
            assert!(decode_key_part(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn over_long_keys_are_refused() {
        assert!(validate_key(&"a".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(validate_key(&"a".repeat(MAX_KEY_BYTES + 1)).is_err());
    }

    proptest! {
        /// Whatever the input, an accepted key has no segment that moves up or stays put, and
        /// does not start at the root.
        #[test]
        fn accepted_keys_never_escape(raw in "[a-z./%0-9A-F]{0,24}") {
            if let Ok(key) = decode_key_part(&raw) {
                prop_assert!(!key.starts_with('/'));
                prop_assert!(key.split('/').all(|s| s != ".." && s != "." && !s.is_empty()));
                prop_assert!(!key.contains('\0'));
            }
        }
    }
}
