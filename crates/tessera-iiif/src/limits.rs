//! What a request is resolved against: the image's size and the server's size limits.
//!
//! Kept apart from [`crate::ImageInfo`] because resolving a request needs only these five
//! numbers, and a handler often has them (from a tile header or a cache) before it has, or
//! without ever building, a whole info.json.

/// The full image's pixel size and the server-imposed limits on output sizes.
///
/// The limits mean what `maxWidth`, `maxHeight` and `maxArea` mean in info.json, and they should
/// be the very values published there. As both specs say, a `max_height` that is not given is
/// taken to equal `max_width` (see [`ImageLimits::effective_max_height`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageLimits {
    pub width: u32,
    pub height: u32,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    pub max_area: Option<u64>,
}

impl ImageLimits {
    /// An image of this size with no limits.
    pub fn new(width: u32, height: u32) -> Self {
        ImageLimits {
            width,
            height,
            max_width: None,
            max_height: None,
            max_area: None,
        }
    }

    /// The width limit, if any.
    pub fn effective_max_width(&self) -> Option<u32> {
        self.max_width
    }

    /// The height limit: `max_height`, or else `max_width` ("If maxWidth is specified and
    /// maxHeight is not, then clients should infer that maxHeight = maxWidth", 2.1 §5.3 and
    /// 3.0 §5.2). The server enforces what clients are told to infer.
    pub fn effective_max_height(&self) -> Option<u32> {
        self.max_height.or(self.max_width)
    }

    /// Whether an output of `width` x `height` is within every limit.
    pub fn allows(&self, width: u32, height: u32) -> bool {
        self.effective_max_width().is_none_or(|m| width <= m)
            && self.effective_max_height().is_none_or(|m| height <= m)
            && self
                .max_area
                .is_none_or(|a| u64::from(width) * u64::from(height) <= a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_height_defaults_to_max_width() {
        let mut l = ImageLimits::new(1000, 800);
        assert_eq!(l.effective_max_height(), None);
        assert!(l.allows(u32::MAX, u32::MAX));
        l.max_width = Some(500);
        assert_eq!(l.effective_max_height(), Some(500));
        assert!(l.allows(500, 500));
        assert!(!l.allows(500, 501));
        l.max_height = Some(600);
        assert!(l.allows(500, 600));
        l.max_area = Some(250_000);
        assert!(l.allows(500, 500));
        assert!(!l.allows(500, 501));
    }
}
