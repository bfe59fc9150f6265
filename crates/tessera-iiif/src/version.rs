//! Which IIIF Image API a request or an info.json speaks.
//!
//! 2.1 and 3.0 share most of the grammar but differ in ways that change answers: `full` as a
//! size exists only in 2.1, `^` (upscaling) only in 3.0, 3.0 refuses to upscale without `^`, and
//! the canonical size and the info.json field names differ. Everything version-dependent takes
//! a [`Version`] explicitly rather than guessing from the request.

use std::fmt;

/// IIIF Image API version: 2.1 (`V2`, also read for 2.0-style URIs) or 3.0 (`V3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    #[serde(rename = "2")]
    V2,
    #[serde(rename = "3")]
    V3,
}

impl Version {
    /// The JSON-LD context of this version's info.json (also the `profile` parameter of its
    /// `application/ld+json` content type).
    pub fn context(self) -> &'static str {
        match self {
            Version::V2 => "http://iiif.io/api/image/2/context.json",
            Version::V3 => "http://iiif.io/api/image/3/context.json",
        }
    }

    /// The URI of the compliance level document for `level` (0, 1 or 2), as used in the
    /// `Link: <...>;rel="profile"` header of both versions.
    pub fn level_uri(self, level: u8) -> String {
        let major = match self {
            Version::V2 => 2,
            Version::V3 => 3,
        };
        format!("http://iiif.io/api/image/{major}/level{level}.json")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V2 => "2.1",
            Version::V3 => "3.0",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_and_levels() {
        assert_eq!(
            Version::V2.context(),
            "http://iiif.io/api/image/2/context.json"
        );
        assert_eq!(
            Version::V3.context(),
            "http://iiif.io/api/image/3/context.json"
        );
        assert_eq!(
            Version::V2.level_uri(2),
            "http://iiif.io/api/image/2/level2.json"
        );
        assert_eq!(
            Version::V3.level_uri(0),
            "http://iiif.io/api/image/3/level0.json"
        );
        assert_eq!(Version::V3.to_string(), "3.0");
    }
}
