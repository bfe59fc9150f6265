//! Numbers as they appear in IIIF URIs: strict parsing and the spec's formatting.
//!
//! Why strict: the spec says pixel values are non-negative integers and that floating point
//! values "MUST consist only of decimal digits and `.`" (3.0 §4.7). Rust's own `parse` accepts
//! more (`+1`, `1e3`, `inf`, `NaN`), and every extra spelling of the same request is one more
//! cache key and one more way to smuggle a huge or non-finite number into the arithmetic. So the
//! grammar is checked here first, by hand, and only then handed to `parse`.
//!
//! Leniency kept on purpose: a missing leading zero (`.5`) and trailing zeros (`0.50`) are only
//! SHOULD NOTs in the spec, so they are accepted; the canonical form never produces them.

use crate::error::{IiifError, Result};

/// A non-negative integer: one or more ASCII digits, nothing else, fitting in `u32`.
pub(crate) fn parse_u32(parameter: &str, what: &str, s: &str) -> Result<u32> {
    if s.is_empty() {
        return Err(IiifError::new(parameter, format!("{what} is missing")));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IiifError::new(
            parameter,
            format!("{what} must be a non-negative integer, got {s:?}"),
        ));
    }
    s.parse::<u32>().map_err(|_| {
        IiifError::new(
            parameter,
            format!("{what} is too large (at most {})", u32::MAX),
        )
    })
}

/// A non-negative decimal: digits with at most one `.`, at least one digit, finite.
pub(crate) fn parse_decimal(parameter: &str, what: &str, s: &str) -> Result<f64> {
    if s.is_empty() {
        return Err(IiifError::new(parameter, format!("{what} is missing")));
    }
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != s.len() {
        return Err(IiifError::new(
            parameter,
            format!("{what} must be a non-negative decimal number (digits and at most one '.'), got {s:?}"),
        ));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(IiifError::new(parameter, format!("{what} is too large"))),
    }
}

/// The spec's way to write a float: an integer when it is one, otherwise a decimal with a
/// leading zero and no trailing zeros (3.0 §4.7, 2.1 §4.7). Ten decimals at most, which is
/// finer than any rotation or percentage can matter.
pub(crate) fn format_decimal(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Undo percent-encoding in one parameter segment.
///
/// The spec says only identifiers need encoding, but clients and proxies encode `!`, `,`, `^`
/// or `:` anyway ("percent-encoding other characters introduces no ambiguity", 3.0 §9), so each
/// segment is decoded after the path is split on `/`. A `%` not followed by two hex digits, or
/// a decoded byte outside ASCII, is an error: no IIIF parameter contains either.
pub(crate) fn percent_decode(parameter: &str, s: &str) -> Result<String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok()
            });
            match hex {
                Some(b) if b.is_ascii() => out.push(b),
                _ => {
                    return Err(IiifError::new(
                        parameter,
                        format!("bad percent-encoding in {s:?}"),
                    ))
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| IiifError::new(parameter, "not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_u32("p", "w", "0"), Ok(0));
        assert_eq!(parse_u32("p", "w", "0042"), Ok(42));
        assert_eq!(parse_u32("p", "w", "4294967295"), Ok(u32::MAX));
        for bad in ["", "-1", "+1", "1.0", "1e3", " 1", "a", "4294967296"] {
            assert!(parse_u32("p", "w", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("p", "n", "22.5"), Ok(22.5));
        assert_eq!(parse_decimal("p", "n", "0.9"), Ok(0.9));
        assert_eq!(parse_decimal("p", "n", ".9"), Ok(0.9));
        assert_eq!(parse_decimal("p", "n", "9."), Ok(9.0));
        assert_eq!(parse_decimal("p", "n", "100"), Ok(100.0));
        for bad in [
            "", ".", "-1", "+0.9", "1e3", "inf", "NaN", "1.2.3", "1,5", " 1",
        ] {
            assert!(parse_decimal("p", "n", bad).is_err(), "{bad:?}");
        }
        let huge = "9".repeat(400);
        assert!(parse_decimal("p", "n", &huge).is_err());
    }

    #[test]
    fn formatting_follows_the_spec() {
        assert_eq!(format_decimal(0.0), "0");
        assert_eq!(format_decimal(90.0), "90");
        assert_eq!(format_decimal(22.5), "22.5");
        assert_eq!(format_decimal(0.5), "0.5");
        assert_eq!(format_decimal(22.50), "22.5");
        assert_eq!(format_decimal(0.1 + 0.2), "0.3");
        assert_eq!(format_decimal(359.99999999999), "360");
        assert_eq!(format_decimal(-0.0), "0");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p", "%5Emax").unwrap(), "^max");
        assert_eq!(percent_decode("p", "%2110,20").unwrap(), "!10,20");
        assert_eq!(percent_decode("p", "pct%3A50").unwrap(), "pct:50");
        assert_eq!(percent_decode("p", "max").unwrap(), "max");
        assert!(percent_decode("p", "%").is_err());
        assert!(percent_decode("p", "%zz").is_err());
        assert!(percent_decode("p", "%C3%A9").is_err());
    }
}
