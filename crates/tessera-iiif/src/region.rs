//! The region parameter: which rectangle of the full image to cut out.
//!
//! The grammar is the same in 2.1 and 3.0 (`full`, `square`, `x,y,w,h`, `pct:x,y,w,h`). Both
//! specs say a region reaching past the image is cropped at the edge, and a region of zero
//! width or height, or entirely outside the image, is a 400. What they leave to the server, and
//! this module decides:
//!
//! - **Where `square` sits:** centred on the longer side (the spec's "reasonable default"),
//!   offset rounded down.
//! - **How `pct:` becomes pixels:** by its *edges*, each rounded to the nearest pixel
//!   (`x0 = round(x% * W)`, `x1 = round((x + w)% * W)`, width `x1 - x0`). Rounding edges rather
//!   than the offset and the width separately means adjacent percentage regions share an edge
//!   and never overlap or leave a gap. A region that starts inside the image (`x < 100`) and has
//!   a non-zero width keeps at least one pixel, even where both edges round to the same one.

use std::fmt;

use crate::error::{IiifError, Result};
use crate::number::{format_decimal, parse_decimal, parse_u32};

const P: &str = "region";

/// The region parameter, as requested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Region {
    /// `full`: the whole image.
    Full,
    /// `square`: the largest centred square.
    Square,
    /// `x,y,w,h` in pixels. `w` and `h` are never zero once parsed.
    Pixels { x: u32, y: u32, w: u32, h: u32 },
    /// `pct:x,y,w,h` in percent of the full image. Finite, non-negative; `w`, `h` non-zero.
    Percent { x: f64, y: f64, w: f64, h: f64 },
}

/// A rectangle in pixels of the full image. Once resolved it is never empty and lies inside
/// the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// Whether this rectangle is the whole of a `width` x `height` image.
    pub fn is_whole(&self, width: u32, height: u32) -> bool {
        self.x == 0 && self.y == 0 && self.w == width && self.h == height
    }
}

impl fmt::Display for Rect {
    /// `x,y,w,h`: the region syntax, and the canonical form of any region that is not whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

impl Region {
    /// Parse the region parameter (already percent-decoded).
    pub fn parse(s: &str) -> Result<Region> {
        match s {
            "full" => return Ok(Region::Full),
            "square" => return Ok(Region::Square),
            "" => return Err(IiifError::new(P, "missing")),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("pct:") {
            let [x, y, w, h] = four(rest, s)?;
            let x = parse_decimal(P, "x", x)?;
            let y = parse_decimal(P, "y", y)?;
            let w = parse_decimal(P, "w", w)?;
            let h = parse_decimal(P, "h", h)?;
            if w == 0.0 || h == 0.0 {
                return Err(IiifError::new(
                    P,
                    "width and height must be greater than zero",
                ));
            }
            return Ok(Region::Percent { x, y, w, h });
        }
        let [x, y, w, h] = four(s, s)?;
        let x = parse_u32(P, "x", x)?;
        let y = parse_u32(P, "y", y)?;
        let w = parse_u32(P, "w", w)?;
        let h = parse_u32(P, "h", h)?;
        if w == 0 || h == 0 {
            return Err(IiifError::new(
                P,
                "width and height must be greater than zero",
            ));
        }
        Ok(Region::Pixels { x, y, w, h })
    }

    /// The region in pixels of a `width` x `height` image, cropped to the image.
    ///
    /// Errors if the image is empty, if the region has a zero side (possible only for a
    /// hand-built [`Region`]), or if it lies entirely outside the image.
    pub fn resolve(&self, width: u32, height: u32) -> Result<Rect> {
        if width == 0 || height == 0 {
            return Err(IiifError::new(P, "the image has no pixels"));
        }
        match *self {
            Region::Full => Ok(Rect {
                x: 0,
                y: 0,
                w: width,
                h: height,
            }),
            Region::Square => {
                let side = width.min(height);
                Ok(Rect {
                    x: (width - side) / 2,
                    y: (height - side) / 2,
                    w: side,
                    h: side,
                })
            }
            Region::Pixels { x, y, w, h } => {
                if w == 0 || h == 0 {
                    return Err(IiifError::new(
                        P,
                        "width and height must be greater than zero",
                    ));
                }
                if x >= width || y >= height {
                    return Err(outside(width, height));
                }
                Ok(Rect {
                    x,
                    y,
                    w: w.min(width - x),
                    h: h.min(height - y),
                })
            }
            Region::Percent { x, y, w, h } => {
                let (x, w) = percent_span(x, w, width)?;
                let (y, h) = percent_span(y, h, height)?;
                Ok(Rect { x, y, w, h })
            }
        }
    }
}

/// Resolve one axis of a `pct:` region against an image side of `len` pixels: edges rounded to
/// the nearest pixel, cropped to the image, at least one pixel.
fn percent_span(start: f64, extent: f64, len: u32) -> Result<(u32, u32)> {
    let valid = |v: f64| v.is_finite() && v >= 0.0;
    if !valid(start) || !valid(extent) || extent == 0.0 {
        return Err(IiifError::new(
            P,
            "percentages must be finite, non-negative, and the width and height greater than zero",
        ));
    }
    if start >= 100.0 {
        return Err(IiifError::new(
            P,
            "entirely outside the image (starts at or past 100%)",
        ));
    }
    let lenf = f64::from(len);
    let edge = |pct: f64| (pct.min(100.0) / 100.0 * lenf).round() as u32;
    let x0 = edge(start).min(len - 1);
    let x1 = edge(start + extent).clamp(x0 + 1, len);
    Ok((x0, x1 - x0))
}

fn four<'a>(s: &'a str, whole: &str) -> Result<[&'a str; 4]> {
    let parts: Vec<&str> = s.split(',').collect();
    match parts[..] {
        [x, y, w, h] => Ok([x, y, w, h]),
        _ => Err(IiifError::new(
            P,
            format!("expected full, square, x,y,w,h or pct:x,y,w,h, got {whole:?}"),
        )),
    }
}

fn outside(width: u32, height: u32) -> IiifError {
    IiifError::new(
        P,
        format!("entirely outside the image ({width}x{height} pixels)"),
    )
}

impl fmt::Display for Region {
    /// The request syntax of this region (not canonical: see [`crate::Resolved::canonical`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Region::Full => f.write_str("full"),
            Region::Square => f.write_str("square"),
            Region::Pixels { x, y, w, h } => write!(f, "{x},{y},{w},{h}"),
            Region::Percent { x, y, w, h } => write!(
                f,
                "pct:{},{},{},{}",
                format_decimal(x),
                format_decimal(y),
                format_decimal(w),
                format_decimal(h)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(Region::parse("full"), Ok(Region::Full));
        assert_eq!(Region::parse("square"), Ok(Region::Square));
        assert_eq!(
            Region::parse("125,15,120,140"),
            Ok(Region::Pixels {
                x: 125,
                y: 15,
                w: 120,
                h: 140
            })
        );
        assert_eq!(
            Region::parse("pct:41.6,7.5,40,70"),
            Ok(Region::Percent {
                x: 41.6,
                y: 7.5,
                w: 40.0,
                h: 70.0
            })
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "Full",
            "FULL",
            "1,2,3",
            "1,2,3,4,5",
            "-1,0,10,10",
            "0,0,10.5,10",
            "pct:1,2,3",
            "pct:-1,0,10,10",
            "pct:1e1,0,10,10",
            "pct:",
            "px:0,0,10,10",
            "0,0,,10",
            " 0,0,10,10",
        ] {
            let e = Region::parse(bad).unwrap_err();
            assert!(e.message.starts_with("region: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn rejects_zero_sizes() {
        for bad in ["0,0,0,10", "0,0,10,0", "pct:0,0,0,10", "pct:0,0,10,0.0"] {
            let e = Region::parse(bad).unwrap_err();
            assert!(e.message.contains("greater than zero"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn full_and_square() {
        assert_eq!(Region::Full.resolve(300, 200), Ok(rect(0, 0, 300, 200)));
        assert_eq!(Region::Square.resolve(300, 200), Ok(rect(50, 0, 200, 200)));
        assert_eq!(Region::Square.resolve(200, 301), Ok(rect(0, 50, 200, 200)));
        assert_eq!(Region::Square.resolve(7, 7), Ok(rect(0, 0, 7, 7)));
    }

    #[test]
    fn pixels_are_cropped_at_the_edge() {
        // The spec's example 5: a 300x200 image, 125,15,200,200 returns 175x185.
        let r = Region::parse("125,15,200,200").unwrap();
        assert_eq!(r.resolve(300, 200), Ok(rect(125, 15, 175, 185)));
        let r = Region::parse("0,0,4294967295,4294967295").unwrap();
        assert_eq!(r.resolve(300, 200), Ok(rect(0, 0, 300, 200)));
        let r = Region::parse("299,199,1,1").unwrap();
        assert_eq!(r.resolve(300, 200), Ok(rect(299, 199, 1, 1)));
    }

    #[test]
    fn entirely_outside_is_an_error() {
        for s in [
            "300,0,10,10",
            "0,200,10,10",
            "4294967295,0,1,1",
            "pct:100,0,10,10",
        ] {
            let e = Region::parse(s).unwrap().resolve(300, 200).unwrap_err();
            assert!(e.message.contains("outside"), "{s}: {e}");
        }
    }

    #[test]
    fn percent_regions() {
        // The spec's example 4 and 6 on its 300x200 image.
        let r = Region::parse("pct:41.6,7.5,40,70").unwrap();
        // x0 = round(124.8) = 125, x1 = round(244.8) = 245; y0 = 15, y1 = round(155) = 155.
        assert_eq!(r.resolve(300, 200), Ok(rect(125, 15, 120, 140)));
        let r = Region::parse("pct:41.6,7.5,66.6,100").unwrap();
        assert_eq!(r.resolve(300, 200), Ok(rect(125, 15, 175, 185)));
        let r = Region::parse("pct:0,0,100,100").unwrap();
        assert_eq!(r.resolve(300, 200), Ok(rect(0, 0, 300, 200)));
    }

    #[test]
    fn adjacent_percent_regions_share_edges() {
        let left = Region::parse("pct:0,0,33.3333,100").unwrap();
        let mid = Region::parse("pct:33.3333,0,33.3333,100").unwrap();
        let a = left.resolve(1001, 10).unwrap();
        let b = mid.resolve(1001, 10).unwrap();
        assert_eq!(a.x + a.w, b.x);
    }

    #[test]
    fn tiny_percent_regions_keep_one_pixel() {
        let r = Region::parse("pct:99.99,0,0.001,100").unwrap();
        assert_eq!(r.resolve(100, 10), Ok(rect(99, 0, 1, 10)));
        let r = Region::parse("pct:50,50,0.0001,0.0001").unwrap();
        assert_eq!(r.resolve(10, 10), Ok(rect(5, 5, 1, 1)));
    }

    #[test]
    fn hand_built_bad_regions_are_errors_not_panics() {
        let r = Region::Percent {
            x: f64::NAN,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        };
        assert!(r.resolve(10, 10).is_err());
        let r = Region::Pixels {
            x: 0,
            y: 0,
            w: 0,
            h: 1,
        };
        assert!(r.resolve(10, 10).is_err());
        assert!(Region::Full.resolve(0, 10).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["full", "square", "1,2,3,4", "pct:41.6,7.5,40,70"] {
            assert_eq!(Region::parse(s).unwrap().to_string(), s);
        }
    }
}
