//! What kind of master a file is, told by its first bytes (not its name): the index store
//! reads JPEG 2000 headers and hands the kinds in [`Format`] to the raster reader; anything
//! else is described for the 415 its requests get.

/// A master format read besides JPEG 2000 (see [`crate::imaging::raster`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Tiff,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Tiff => "TIFF",
        })
    }
}

impl Format {
    /// The format `prefix` (the file's first bytes) starts like, if one of these.
    pub fn sniff(prefix: &[u8]) -> Option<Self> {
        let starts = |magic: &[u8]| prefix.starts_with(magic);
        if starts(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if starts(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if starts(b"II*\0") || starts(b"MM\0*") || starts(b"II+\0") || starts(b"MM\0+") {
            Some(Self::Tiff)
        } else {
            None
        }
    }
}

/// What a file that is neither JPEG 2000 nor a [`Format`] is, for the message a client reads.
pub fn describe_other(prefix: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| prefix.starts_with(magic);
    if starts(b"GIF8") {
        "a GIF"
    } else if starts(b"RIFF") && prefix.get(8..12) == Some(b"WEBP") {
        "a WebP"
    } else if starts(b"%PDF") {
        "a PDF"
    } else if prefix.is_empty() {
        "empty"
    } else {
        "not an image format this server knows"
    }
}
