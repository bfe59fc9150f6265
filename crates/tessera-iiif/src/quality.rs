//! The quality parameter: color, gray, bitonal, or the server's default.
//!
//! The four values are the same in 2.1 and 3.0 (2.0's `native` was renamed `default` in 2.1 and
//! is not accepted). Names are case-sensitive, as everywhere in the IIIF grammar. `default` and
//! `color` are kept distinct even when they produce the same pixels: the canonical form keeps
//! the quality string the client asked for ("`default` if the server's default quality is
//! requested, otherwise the quality string"), so they are different canonical URIs.

use std::fmt;
use std::str::FromStr;

use crate::error::IiifError;

/// The quality parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    Default,
    Color,
    Gray,
    Bitonal,
}

impl Quality {
    /// Every quality, in the order the spec lists them.
    pub const ALL: [Quality; 4] = [
        Quality::Color,
        Quality::Gray,
        Quality::Bitonal,
        Quality::Default,
    ];

    /// The parameter value: `default`, `color`, `gray` or `bitonal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Default => "default",
            Quality::Color => "color",
            Quality::Gray => "gray",
            Quality::Bitonal => "bitonal",
        }
    }
}

impl FromStr for Quality {
    type Err = IiifError;

    fn from_str(s: &str) -> Result<Self, IiifError> {
        Quality::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| {
                IiifError::new(
                    "quality",
                    format!("expected default, color, gray or bitonal, got {s:?}"),
                )
            })
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_quality() {
        for q in Quality::ALL {
            assert_eq!(q.as_str().parse::<Quality>(), Ok(q));
            assert_eq!(q.to_string(), q.as_str());
        }
    }

    #[test]
    fn rejects_others() {
        for bad in ["", "native", "grey", "Color", "DEFAULT", "colour"] {
            let e = bad.parse::<Quality>().unwrap_err();
            assert!(e.message.starts_with("quality: "), "{bad:?}");
        }
    }

    #[test]
    fn serde_uses_the_parameter_names() {
        assert_eq!(
            serde_json::to_value(Quality::Bitonal).unwrap(),
            serde_json::json!("bitonal")
        );
    }
}
