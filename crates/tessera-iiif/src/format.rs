//! The format parameter: the extension after the last `.` of the final segment.
//!
//! Every format either spec lists is parsed (`jpg tif png gif jp2 pdf webp`, the same table in
//! 2.1 and 3.0), so that "we don't produce PDF" is the handler's answer rather than a syntax
//! error. Extensions are case-sensitive and have one spelling each (`jpg`, never `jpeg`), since
//! both specs list exactly these strings and each alias would be another cache key.

use std::fmt;
use std::str::FromStr;

use crate::error::IiifError;

/// The format parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpg,
    Png,
    Webp,
    Tif,
    Gif,
    Jp2,
    Pdf,
}

impl Format {
    /// Every format, in the order the spec lists them.
    pub const ALL: [Format; 7] = [
        Format::Jpg,
        Format::Tif,
        Format::Png,
        Format::Gif,
        Format::Jp2,
        Format::Pdf,
        Format::Webp,
    ];

    /// The extension as it appears in the URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Tif => "tif",
            Format::Gif => "gif",
            Format::Jp2 => "jp2",
            Format::Pdf => "pdf",
        }
    }

    /// The media type for `Content-Type`, from the spec's table.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Tif => "image/tiff",
            Format::Gif => "image/gif",
            Format::Jp2 => "image/jp2",
            Format::Pdf => "application/pdf",
        }
    }
}

impl FromStr for Format {
    type Err = IiifError;

    fn from_str(s: &str) -> Result<Self, IiifError> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                IiifError::new(
                    "format",
                    format!("expected jpg, tif, png, gif, jp2, pdf or webp, got {s:?}"),
                )
            })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_format() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
    }

    #[test]
    fn mime_types() {
        assert_eq!(Format::Jpg.mime_type(), "image/jpeg");
        assert_eq!(Format::Tif.mime_type(), "image/tiff");
        assert_eq!(Format::Jp2.mime_type(), "image/jp2");
        assert_eq!(Format::Pdf.mime_type(), "application/pdf");
        assert_eq!(Format::Webp.mime_type(), "image/webp");
    }

    #[test]
    fn rejects_others() {
        for bad in ["", "jpeg", "JPG", "tiff", "svg", "png "] {
            let e = bad.parse::<Format>().unwrap_err();
            assert!(e.message.starts_with("format: "), "{bad:?}");
        }
    }
}
