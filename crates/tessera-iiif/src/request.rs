//! A whole image request: parsing the four path segments, resolving them against an image, and
//! writing the canonical form.
//!
//! Parsing and resolving are two steps on purpose. Parsing needs only the URI, so a handler can
//! refuse a malformed request before it looks anything up; resolving needs the image's size and
//! limits. The [`Resolved`] request is what a renderer needs (a pixel rectangle and an output
//! size) and what a cache key should be built from ([`Resolved::canonical`]), since many
//! spellings of a request resolve to the same pixels.

use std::fmt;

use crate::error::{IiifError, Result};
use crate::format::Format;
use crate::limits::ImageLimits;
use crate::number::percent_decode;
use crate::quality::Quality;
use crate::region::{Rect, Region};
use crate::rotation::Rotation;
use crate::scale::{height_for_width, max_size};
use crate::size::SizeParam;
use crate::Version;

/// An image request as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageRequest {
    pub region: Region,
    pub size: SizeParam,
    pub rotation: Rotation,
    pub quality: Quality,
    pub format: Format,
}

/// An image request resolved against an image: everything in pixels and validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    /// The region of the full image to extract, cropped to the image, never empty.
    pub region: Rect,
    /// The size to scale the region to, before rotation. At least 1x1.
    pub width: u32,
    pub height: u32,
    /// Mirroring then rotation, applied after scaling.
    pub rotation: Rotation,
    pub quality: Quality,
    pub format: Format,
}

impl ImageRequest {
    /// Parse `"region/size/rotation/quality.format"`: the part of the path after the identifier,
    /// without a leading `/`. Each segment is percent-decoded after splitting on `/`.
    ///
    /// Errors name the first parameter at fault, in URI order.
    pub fn parse(version: Version, path: &str) -> Result<Self> {
        let segments: Vec<&str> = path.split('/').collect();
        let [region, size, rotation, last] = segments[..] else {
            return Err(IiifError::new(
                "request",
                format!(
                    "expected region/size/rotation/quality.format, got {} path segment(s)",
                    segments.len()
                ),
            ));
        };
        let region = Region::parse(&percent_decode("region", region)?)?;
        let size = SizeParam::parse(version, &percent_decode("size", size)?)?;
        let rotation = Rotation::parse(&percent_decode("rotation", rotation)?)?;
        let last = percent_decode("quality", last)?;
        let Some((quality, format)) = last.rsplit_once('.') else {
            return Err(IiifError::new(
                "format",
                format!("missing: expected quality.format, got {last:?}"),
            ));
        };
        Ok(ImageRequest {
            region,
            size,
            rotation,
            quality: quality.parse()?,
            format: format.parse()?,
        })
    }

    /// Resolve against the image: the region in pixels (cropped to the image; entirely outside
    /// is an error), the output size as the spec computes it (see [`crate::scale`] for the
    /// rounding rules and limits), and the rotation checked to be within 0 to 360.
    pub fn resolve(&self, version: Version, image: &ImageLimits) -> Result<Resolved> {
        let region = self.region.resolve(image.width, image.height)?;
        let (width, height) = self.size.resolve(version, region.w, region.h, image)?;
        self.rotation.validate()?;
        Ok(Resolved {
            region,
            width,
            height,
            rotation: self.rotation,
            quality: self.quality,
            format: self.format,
        })
    }
}

impl fmt::Display for ImageRequest {
    /// The request as parsed, in URI syntax (numbers normalised, otherwise not canonical).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}.{}",
            self.region, self.size, self.rotation, self.quality, self.format
        )
    }
}

impl Resolved {
    /// Whether the region is the whole image.
    pub fn is_full_region(&self, image: &ImageLimits) -> bool {
        self.region.is_whole(image.width, image.height)
    }

    /// Whether the output is larger than the region on either axis (2.1 `sizeAboveFull`, 3.0
    /// `sizeUpscaling`): a handler that does not upscale answers these with 501 (3.0 §4.2) or
    /// 400.
    pub fn is_upscaled(&self) -> bool {
        self.width > self.region.w || self.height > self.region.h
    }

    /// The pixel size of the image returned, after rotation (the bounding box of the rotated,
    /// unscaled content).
    pub fn output_size(&self) -> (u32, u32) {
        self.rotation.rotated_size(self.width, self.height)
    }

    /// The canonical `"region/size/rotation/quality.format"` for this request (2.1 §4.7,
    /// 3.0 §4.8); two requests for the same pixels get the same string, so it is the cache key.
    ///
    /// - region: `full` for the whole image (including `square` of a square image), else
    ///   `x,y,w,h`.
    /// - size, 2.1: `full` if the region is not scaled, `w,` if the aspect ratio is kept (i.e.
    ///   `w,` resolves to this very height), else `w,h`. So 2.1 `max` under a limit is `w,`, as
    ///   the 2.1 deprecation note says.
    /// - size, 3.0: `max` if this is what `max` gives, `^max` if it is what `^max` gives (and
    ///   `max` does not), else `w,h`, prefixed with `^` if it upscales.
    /// - rotation: `!` if mirrored, then an integer if possible, else a decimal with a leading
    ///   zero and no trailing zeros.
    /// - quality: as requested (`default` stays `default`, `color` stays `color`).
    /// - format: always explicit.
    pub fn canonical(&self, version: Version, image: &ImageLimits) -> String {
        let region = if self.is_full_region(image) {
            "full".to_string()
        } else {
            self.region.to_string()
        };
        let (rw, rh) = (self.region.w, self.region.h);
        let (w, h) = (self.width, self.height);
        let out = (u64::from(w), u64::from(h));
        let size = match version {
            Version::V2 => {
                if (w, h) == (rw, rh) {
                    "full".to_string()
                } else if height_for_width(rw, rh, w) == u64::from(h) {
                    format!("{w},")
                } else {
                    format!("{w},{h}")
                }
            }
            Version::V3 => {
                if out == max_size(rw, rh, image, false) {
                    "max".to_string()
                } else if out == max_size(rw, rh, image, true) {
                    "^max".to_string()
                } else if self.is_upscaled() {
                    format!("^{w},{h}")
                } else {
                    format!("{w},{h}")
                }
            }
        };
        format!(
            "{region}/{size}/{}/{}.{}",
            self.rotation, self.quality, self.format
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::Size;
    use Version::{V2, V3};

    const IMG: ImageLimits = ImageLimits {
        width: 300,
        height: 200,
        max_width: None,
        max_height: None,
        max_area: None,
    };

    fn resolve(v: Version, path: &str, image: &ImageLimits) -> Result<Resolved> {
        ImageRequest::parse(v, path)?.resolve(v, image)
    }

    fn canonical(v: Version, path: &str, image: &ImageLimits) -> String {
        resolve(v, path, image)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .canonical(v, image)
    }

    #[test]
    fn parses_a_whole_request() {
        let r = ImageRequest::parse(V3, "125,15,120,140/90,/!345/gray.jpg").unwrap();
        assert_eq!(
            r,
            ImageRequest {
                region: Region::Pixels {
                    x: 125,
                    y: 15,
                    w: 120,
                    h: 140
                },
                size: SizeParam::new(Size::Width(90)),
                rotation: Rotation {
                    degrees: 345.0,
                    mirror: true
                },
                quality: Quality::Gray,
                format: Format::Jpg,
            }
        );
        assert_eq!(r.to_string(), "125,15,120,140/90,/!345/gray.jpg");
        let r = ImageRequest::parse(V2, "full/full/0/default.png").unwrap();
        assert_eq!(r.size, SizeParam::new(Size::Full));
        assert_eq!(r.format, Format::Png);
    }

    #[test]
    fn percent_encoded_segments() {
        let r =
            ImageRequest::parse(V3, "pct%3A10,10,80,80/%5E%2120,20/%2190/default%2Ewebp").unwrap();
        assert_eq!(r.size, SizeParam::upscaled(Size::BestFit(20, 20)));
        assert!(r.rotation.mirror);
        assert_eq!(r.format, Format::Webp);
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            ("full/max/0/default", "format: missing"),
            ("full/max/0/default.jpeg", "format: "),
            ("full/max/0/native.jpg", "quality: "),
            ("full/max/0/.jpg", "quality: "),
            ("full/max/400/default.jpg", "rotation: "),
            ("full/max/-1/default.jpg", "rotation: "),
            (
                "full/full/0/default.jpg",
                "size: full is not valid in IIIF 3.0",
            ),
            ("fullx/max/0/default.jpg", "region: "),
            ("full/max/0", "request: "),
            ("full/max/0/default.jpg/", "request: "),
            ("/full/max/0/default.jpg", "request: "),
            ("", "request: "),
            ("full/ma%x/0/default.jpg", "size: bad percent-encoding"),
        ];
        for (path, want) in cases {
            let e = ImageRequest::parse(V3, path).unwrap_err();
            assert!(e.message.starts_with(want), "{path}: {e}");
        }
        // The first error in URI order wins.
        let e = ImageRequest::parse(V3, "bad/bad/bad/bad.bad").unwrap_err();
        assert!(e.message.starts_with("region: "), "{e}");
    }

    #[test]
    fn resolves_the_spec_transformation_example() {
        // 3.0 §4.6: .../125,15,120,140/90,/!345/gray.jpg
        let r = resolve(V3, "125,15,120,140/90,/!345/gray.jpg", &IMG).unwrap();
        assert_eq!(
            r.region,
            Rect {
                x: 125,
                y: 15,
                w: 120,
                h: 140
            }
        );
        assert_eq!((r.width, r.height), (90, 105));
        assert!(!r.is_upscaled());
        assert!(!r.is_full_region(&IMG));
        assert_eq!(r.canonical(V3, &IMG), "125,15,120,140/90,105/!345/gray.jpg");
        assert_eq!(r.canonical(V2, &IMG), "125,15,120,140/90,/!345/gray.jpg");
    }

    #[test]
    fn resolve_errors() {
        let e = resolve(V3, "300,0,10,10/max/0/default.jpg", &IMG).unwrap_err();
        assert!(e.message.starts_with("region: entirely outside"), "{e}");
        let e = resolve(V3, "full/301,/0/default.jpg", &IMG).unwrap_err();
        assert_eq!(
            e.message,
            "size: ^ is required to upscale in IIIF 3.0 (width 301 > region width 300)"
        );
        let mut bad = ImageRequest::parse(V3, "full/max/0/default.jpg").unwrap();
        bad.rotation.degrees = 720.0;
        assert!(bad
            .resolve(V3, &IMG)
            .unwrap_err()
            .message
            .starts_with("rotation: "));
        let empty = ImageLimits::new(0, 0);
        assert!(resolve(V3, "full/max/0/default.jpg", &empty).is_err());
    }

    #[test]
    fn canonical_region() {
        for v in [V2, V3] {
            assert!(canonical(v, "full/max/0/default.jpg", &IMG).starts_with("full/"));
            assert!(canonical(v, "0,0,300,200/max/0/default.jpg", &IMG).starts_with("full/"));
            assert!(canonical(v, "0,0,999,999/max/0/default.jpg", &IMG).starts_with("full/"));
            assert!(canonical(v, "pct:0,0,100,100/max/0/default.jpg", &IMG).starts_with("full/"));
            assert!(canonical(v, "square/max/0/default.jpg", &IMG).starts_with("50,0,200,200/"));
            let sq = ImageLimits::new(200, 200);
            assert!(canonical(v, "square/max/0/default.jpg", &sq).starts_with("full/"));
            assert!(canonical(v, "pct:41.6,7.5,40,70/max/0/default.jpg", &IMG)
                .starts_with("125,15,120,140/"));
        }
    }

    #[test]
    fn canonical_size_v2() {
        let c = |p: &str, l: &ImageLimits| canonical(V2, p, l);
        assert_eq!(
            c("full/full/0/default.jpg", &IMG),
            "full/full/0/default.jpg"
        );
        assert_eq!(c("full/max/0/default.jpg", &IMG), "full/full/0/default.jpg");
        assert_eq!(
            c("full/pct:100/0/default.jpg", &IMG),
            "full/full/0/default.jpg"
        );
        assert_eq!(
            c("full/300,200/0/default.jpg", &IMG),
            "full/full/0/default.jpg"
        );
        assert_eq!(
            c("full/150,/0/default.jpg", &IMG),
            "full/150,/0/default.jpg"
        );
        assert_eq!(
            c("full/,100/0/default.jpg", &IMG),
            "full/150,/0/default.jpg"
        );
        assert_eq!(
            c("full/pct:50/0/default.jpg", &IMG),
            "full/150,/0/default.jpg"
        );
        assert_eq!(
            c("full/!150,150/0/default.jpg", &IMG),
            "full/150,/0/default.jpg"
        );
        assert_eq!(
            c("full/150,100/0/default.jpg", &IMG),
            "full/150,/0/default.jpg"
        );
        assert_eq!(
            c("full/150,150/0/default.jpg", &IMG),
            "full/150,150/0/default.jpg"
        );
        assert_eq!(
            c("full/600,/0/default.jpg", &IMG),
            "full/600,/0/default.jpg"
        );
        // max under a limit: "the w, syntax should be considered the canonical form of max".
        let l = ImageLimits {
            max_width: Some(150),
            ..IMG
        };
        assert_eq!(c("full/max/0/default.jpg", &l), "full/150,/0/default.jpg");
    }

    #[test]
    fn canonical_size_v3() {
        let c = |p: &str, l: &ImageLimits| canonical(V3, p, l);
        assert_eq!(c("full/max/0/default.jpg", &IMG), "full/max/0/default.jpg");
        assert_eq!(c("full/^max/0/default.jpg", &IMG), "full/max/0/default.jpg");
        assert_eq!(c("full/300,/0/default.jpg", &IMG), "full/max/0/default.jpg");
        assert_eq!(
            c("full/pct:100/0/default.jpg", &IMG),
            "full/max/0/default.jpg"
        );
        assert_eq!(
            c("full/150,/0/default.jpg", &IMG),
            "full/150,100/0/default.jpg"
        );
        assert_eq!(
            c("full/pct:50/0/default.jpg", &IMG),
            "full/150,100/0/default.jpg"
        );
        assert_eq!(
            c("full/!150,150/0/default.jpg", &IMG),
            "full/150,100/0/default.jpg"
        );
        assert_eq!(
            c("full/150,150/0/default.jpg", &IMG),
            "full/150,150/0/default.jpg"
        );
        assert_eq!(
            c("full/^600,/0/default.jpg", &IMG),
            "full/^600,400/0/default.jpg"
        );
        assert_eq!(
            c("full/^300,300/0/default.jpg", &IMG),
            "full/^300,300/0/default.jpg"
        );
        // With a limit below the image, max is the limited size; ^max above it.
        let l = ImageLimits {
            max_width: Some(150),
            max_height: Some(1000),
            ..IMG
        };
        assert_eq!(c("full/max/0/default.jpg", &l), "full/max/0/default.jpg");
        assert_eq!(c("full/150,/0/default.jpg", &l), "full/max/0/default.jpg");
        let l = ImageLimits {
            max_area: Some(240_000),
            ..IMG
        };
        assert_eq!(c("full/max/0/default.jpg", &l), "full/max/0/default.jpg");
        assert_eq!(c("full/^max/0/default.jpg", &l), "full/^max/0/default.jpg");
        assert_eq!(c("full/^600,/0/default.jpg", &l), "full/^max/0/default.jpg");
        assert_eq!(
            c("full/^450,/0/default.jpg", &l),
            "full/^450,300/0/default.jpg"
        );
    }

    #[test]
    fn canonical_rotation_quality_format() {
        for v in [V2, V3] {
            let c = canonical(v, "full/max/90.0/color.png", &IMG);
            assert!(c.ends_with("/90/color.png"), "{c}");
            let c = canonical(v, "full/max/!0.50/gray.tif", &IMG);
            assert!(c.ends_with("/!0.5/gray.tif"), "{c}");
            let c = canonical(v, "full/max/360/default.jpg", &IMG);
            assert!(c.ends_with("/360/default.jpg"), "{c}");
        }
    }

    #[test]
    fn canonical_is_a_fixed_point() {
        let paths = [
            "full/max/0/default.jpg",
            "square/pct:33.3/!22.5/gray.png",
            "pct:10,20,30,40/!100,100/90/bitonal.webp",
            "10,10,100,50/,25/0/color.jpg",
            "0,0,1,1/max/0/default.jpg",
        ];
        for v in [V2, V3] {
            for p in paths {
                let first = resolve(v, p, &IMG).unwrap();
                let canon = first.canonical(v, &IMG);
                let again = resolve(v, &canon, &IMG).unwrap_or_else(|e| panic!("{canon}: {e}"));
                assert_eq!(again, first, "{p} -> {canon}");
                assert_eq!(again.canonical(v, &IMG), canon);
            }
        }
    }

    #[test]
    fn output_size_after_rotation() {
        let r = resolve(V3, "full/150,/90/default.jpg", &IMG).unwrap();
        assert_eq!((r.width, r.height), (150, 100));
        assert_eq!(r.output_size(), (100, 150));
    }
}
