//! Size arithmetic: from a size parameter and a region to output pixels.
//!
//! The specs fix the *meaning* of each size form and leave the rounding to the server ("the
//! rounding method is implementation specific", 3.0 §4.7). The rules chosen here:
//!
//! - **Round to nearest, halves up**, computed exactly in integers where the inputs are
//!   integers: `w,` gives `h = round(region_h * w / region_w)`, `,h` the mirror image, and
//!   `pct:n` gives `round(region * n / 100)` on each axis (the one float computation, since `n`
//!   is a decimal).
//! - **Never below one pixel.** A derived side that rounds to 0 (a 100-pixel-wide thumbnail of a
//!   10000x5 strip) becomes 1. Explicit zeros (`0,`, `pct:0`) are refused at parse time instead.
//!   3.0 says sizes "MUST NOT be less than 1 pixel" and that requests generating them SHOULD get
//!   a 400; clamping derived sides keeps the first rule and serves such requests rather than
//!   failing them.
//! - **Fitting** (`!w,h`, `max`, and `^max`) keeps the aspect ratio: the binding constraint's side
//!   is exact and the other side is rounded, then trimmed if the rounding would break a limit.
//!   Which constraint binds is decided exactly, by integer cross-multiplication, not floats.
//! - **Limits.** `max`, `^max` and `!w,h` shrink to fit `maxWidth` / `maxHeight` / `maxArea`
//!   (the spec defines them that way). Every other form is *refused* if its result exceeds a
//!   limit: 3.0 §4.2 says results "greater than the server-imposed limits" SHOULD get a 400.
//!   (The 3.0 implementation notes suggest shrinking instead; the normative text wins here.)
//! - **Upscaling.** 3.0 without `^`: `w,`, `,h`, `w,h` larger than the region are refused
//!   ("^ is required"); `max` and `!w,h` are capped at the region instead, as their definitions
//!   say. With `^`, and always in 2.1 (where the server "MAY support scaling above the full
//!   size"), upscaling is allowed; `^max` without any limit is the region's size, since there is
//!   nothing to scale up to. Whether to *serve* an upscale is the handler's choice:
//!   [`crate::Resolved::is_upscaled`] tells it.

use crate::error::{IiifError, Result};
use crate::limits::ImageLimits;
use crate::size::{Size, SizeParam};
use crate::Version;

const P: &str = "size";

impl SizeParam {
    /// The output size in pixels for a region of `region_w` x `region_h` (both non-zero) of an
    /// image with these limits, under the rules of the module documentation.
    pub fn resolve(
        &self,
        version: Version,
        region_w: u32,
        region_h: u32,
        limits: &ImageLimits,
    ) -> Result<(u32, u32)> {
        self.validate(version)?;
        if region_w == 0 || region_h == 0 {
            return Err(IiifError::new(P, "the region has no pixels"));
        }
        let (rw, rh) = (u64::from(region_w), u64::from(region_h));
        // In 3.0 a size without ^ may not exceed the region.
        let capped = version == Version::V3 && !self.upscale;
        let need_caret = |what: &str, asked: u32, region: u32| {
            IiifError::new(
                P,
                format!("^ is required to upscale in IIIF 3.0 ({what} {asked} > region {what} {region})"),
            )
        };
        let mw = limits.effective_max_width();
        let mh = limits.effective_max_height();
        let (w, h) = match self.kind {
            Size::Max => {
                if capped || version == Version::V2 {
                    // 2.1 `max` is "the same as full if none of these properties are provided".
                    fit(
                        rw,
                        rh,
                        min_opt(Some(region_w), mw),
                        min_opt(Some(region_h), mh),
                        limits.max_area,
                    )
                } else {
                    fit(rw, rh, mw, mh, limits.max_area)
                }
            }
            Size::Full => (rw, rh),
            Size::Width(w) => {
                if capped && w > region_w {
                    return Err(need_caret("width", w, region_w));
                }
                (u64::from(w), height_for_width(region_w, region_h, w))
            }
            Size::Height(h) => {
                if capped && h > region_h {
                    return Err(need_caret("height", h, region_h));
                }
                (height_for_width(region_h, region_w, h), u64::from(h))
            }
            Size::Percent(n) => (percent_of(region_w, n), percent_of(region_h, n)),
            Size::Exact(w, h) => {
                if capped && w > region_w {
                    return Err(need_caret("width", w, region_w));
                }
                if capped && h > region_h {
                    return Err(need_caret("height", h, region_h));
                }
                (u64::from(w), u64::from(h))
            }
            Size::BestFit(bw, bh) => {
                let (mut cw, mut ch) = (min_opt(Some(bw), mw), min_opt(Some(bh), mh));
                if capped {
                    cw = min_opt(cw, Some(region_w));
                    ch = min_opt(ch, Some(region_h));
                }
                fit(rw, rh, cw, ch, limits.max_area)
            }
        };
        let (w, h) = to_pixels(w, h)?;
        if capped && (w > region_w || h > region_h) {
            // Unreachable by construction; kept so the 3.0 promise never depends on it.
            return Err(IiifError::new(P, "^ is required to upscale in IIIF 3.0"));
        }
        if !limits.allows(w, h) {
            return Err(over_limits(w, h, limits));
        }
        Ok((w, h))
    }
}

/// The largest size (aspect ratio kept) that `max` gives for this region: with `upscale`, the
/// 3.0 `^max`; without, 3.0 `max` and 2.1 `max`. Used for the canonical form.
pub(crate) fn max_size(
    region_w: u32,
    region_h: u32,
    limits: &ImageLimits,
    upscale: bool,
) -> (u64, u64) {
    let param = if upscale {
        SizeParam::upscaled(Size::Max)
    } else {
        SizeParam::new(Size::Max)
    };
    match param.resolve(Version::V3, region_w, region_h, limits) {
        Ok((w, h)) => (u64::from(w), u64::from(h)),
        Err(_) => (0, 0),
    }
}

/// The `w,` rule: the other side for side `a` of a region `ra` x `rb`, i.e.
/// `round(rb * a / ra)`, at least 1. Also the `,h` rule with the axes swapped.
pub(crate) fn height_for_width(ra: u32, rb: u32, a: u32) -> u64 {
    round_div(u128::from(rb) * u128::from(a), u128::from(ra)).max(1)
}

/// The `pct:n` rule for one side: `round(side * n / 100)`, at least 1. Saturates (and is then
/// refused as too large) rather than overflowing.
fn percent_of(side: u32, n: f64) -> u64 {
    let v = (f64::from(side) * n / 100.0).round();
    (v as u64).max(1)
}

/// `a / b` rounded to nearest, halves up; `b > 0`. Saturates at `u64::MAX`.
fn round_div(a: u128, b: u128) -> u64 {
    let q = (2 * a + b) / (2 * b);
    u64::try_from(q).unwrap_or(u64::MAX)
}

fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One constraint on a fitted size: a width, a height, or an area.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bound {
    W(u64),
    H(u64),
    Area(u64),
}

/// The largest `w` x `h` with the aspect ratio of `rw` x `rh` inside every given constraint;
/// the region's own size if there are none. The binding constraint's side is exact, the other
/// is rounded to nearest (at least 1), then trimmed if that rounding broke the area limit. The
/// result can still break a limit only when a limit leaves less than one pixel on a side
/// (`maxWidth: 0`, or `maxArea` smaller than the thin side); the caller refuses those.
fn fit(
    rw: u64,
    rh: u64,
    cap_w: Option<u32>,
    cap_h: Option<u32>,
    cap_area: Option<u64>,
) -> (u64, u64) {
    let bounds = [
        cap_w.map(|w| Bound::W(u64::from(w))),
        cap_h.map(|h| Bound::H(u64::from(h))),
        cap_area.map(Bound::Area),
    ];
    let Some(bound) =
        bounds
            .into_iter()
            .flatten()
            .reduce(|a, b| if scale_le(a, b, rw, rh) { a } else { b })
    else {
        return (rw, rh);
    };
    let (rw128, rh128) = (u128::from(rw), u128::from(rh));
    // `w_primary`: whether the width is the exact side and the height the derived one.
    let (w, h, w_primary) = match bound {
        Bound::W(w) => (w, round_div(rh128 * u128::from(w), rw128).max(1), true),
        Bound::H(h) => (round_div(rw128 * u128::from(h), rh128).max(1), h, false),
        Bound::Area(a) if rw >= rh => {
            // The largest w with w^2 * rh <= a * rw, i.e. w <= rw * sqrt(a / (rw * rh)).
            let w = isqrt(u128::from(a) * rw128 / rh128).max(1);
            (w, round_div(rh128 * u128::from(w), rw128).max(1), true)
        }
        Bound::Area(a) => {
            let h = isqrt(u128::from(a) * rh128 / rw128).max(1);
            (round_div(rw128 * u128::from(h), rh128).max(1), h, false)
        }
    };
    match cap_area {
        Some(a) if u128::from(w) * u128::from(h) > u128::from(a) => {
            if w_primary {
                (w, (a / w).max(1))
            } else {
                ((a / h).max(1), h)
            }
        }
        _ => (w, h),
    }
}

/// Whether bound `a` scales the region by no more than bound `b` does, compared exactly:
/// the scale of `W(x)` is `x / rw`, of `H(y)` is `y / rh`, of `Area(n)` is `sqrt(n / (rw rh))`.
fn scale_le(a: Bound, b: Bound, rw: u64, rh: u64) -> bool {
    use Bound::{Area, H, W};
    let (rw, rh) = (u128::from(rw), u128::from(rh));
    // Every side is below 2^33 and every area below 2^64, so each product fits in 2^97.
    let sq = |v: u64| u128::from(v) * u128::from(v);
    match (a, b) {
        (W(x), W(y)) | (H(x), H(y)) | (Area(x), Area(y)) => x <= y,
        (W(x), H(y)) => u128::from(x) * rh <= u128::from(y) * rw,
        (H(y), W(x)) => u128::from(y) * rw <= u128::from(x) * rh,
        (W(x), Area(n)) => sq(x) * rh <= u128::from(n) * rw,
        (Area(n), W(x)) => u128::from(n) * rw <= sq(x) * rh,
        (H(y), Area(n)) => sq(y) * rw <= u128::from(n) * rh,
        (Area(n), H(y)) => u128::from(n) * rh <= sq(y) * rw,
    }
}

/// Integer square root, rounded down.
fn isqrt(n: u128) -> u64 {
    let mut x = (n as f64).sqrt() as u128;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    u64::try_from(x).unwrap_or(u64::MAX)
}

fn to_pixels(w: u64, h: u64) -> Result<(u32, u32)> {
    if w == 0 || h == 0 {
        return Err(IiifError::new(
            P,
            "the server's size limits leave no pixels for this region",
        ));
    }
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(IiifError::new(
            P,
            format!("{w}x{h} is too large (at most {} on a side)", u32::MAX),
        )),
    }
}

fn over_limits(w: u32, h: u32, limits: &ImageLimits) -> IiifError {
    let mut parts = Vec::new();
    if let Some(m) = limits.effective_max_width() {
        parts.push(format!("maxWidth {m}"));
    }
    if let Some(m) = limits.effective_max_height() {
        parts.push(format!("maxHeight {m}"));
    }
    if let Some(m) = limits.max_area {
        parts.push(format!("maxArea {m}"));
    }
    IiifError::new(
        P,
        format!(
            "{w}x{h} exceeds the server's limits ({}); request max or a smaller size",
            parts.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Version::{V2, V3};

    fn limits(
        max_width: Option<u32>,
        max_height: Option<u32>,
        max_area: Option<u64>,
    ) -> ImageLimits {
        ImageLimits {
            width: 6000,
            height: 4000,
            max_width,
            max_height,
            max_area,
        }
    }

    const NONE: ImageLimits = ImageLimits {
        width: 6000,
        height: 4000,
        max_width: None,
        max_height: None,
        max_area: None,
    };

    fn size(v: Version, s: &str, rw: u32, rh: u32, l: &ImageLimits) -> Result<(u32, u32)> {
        SizeParam::parse(v, s)?.resolve(v, rw, rh, l)
    }

    fn ok(v: Version, s: &str, rw: u32, rh: u32, l: &ImageLimits) -> (u32, u32) {
        size(v, s, rw, rh, l).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(v: Version, s: &str, rw: u32, rh: u32, l: &ImageLimits) -> String {
        let e = size(v, s, rw, rh, l).unwrap_err();
        assert!(e.message.starts_with("size: "), "{e}");
        e.message
    }

    #[test]
    fn spec_examples_on_a_300x200_image() {
        for v in [V2, V3] {
            assert_eq!(ok(v, "max", 300, 200, &NONE), (300, 200));
            assert_eq!(ok(v, "150,", 300, 200, &NONE), (150, 100));
            assert_eq!(ok(v, ",150", 300, 200, &NONE), (225, 150));
            assert_eq!(ok(v, "pct:50", 300, 200, &NONE), (150, 100));
            assert_eq!(ok(v, "225,100", 300, 200, &NONE), (225, 100));
            assert_eq!(ok(v, "!225,100", 300, 200, &NONE), (150, 100));
        }
        assert_eq!(ok(V2, "full", 300, 200, &NONE), (300, 200));
        // 3.0: max with maxWidth 200 (maxHeight inferred 200).
        let l = limits(Some(200), None, None);
        assert_eq!(ok(V3, "max", 300, 200, &l), (200, 133));
        let l = limits(Some(360), None, None);
        assert_eq!(ok(V3, "^max", 300, 200, &l), (360, 240));
        assert_eq!(ok(V3, "^360,", 300, 200, &NONE), (360, 240));
        assert_eq!(ok(V3, "^,240", 300, 200, &NONE), (360, 240));
        assert_eq!(ok(V3, "^pct:120", 300, 200, &NONE), (360, 240));
        assert_eq!(ok(V3, "^360,360", 300, 200, &NONE), (360, 360));
        assert_eq!(ok(V3, "^!360,360", 300, 200, &NONE), (360, 240));
    }

    #[test]
    fn v3_refuses_upscaling_without_caret() {
        let m = err(V3, "301,", 300, 200, &NONE);
        assert!(m.contains("^ is required to upscale in IIIF 3.0"), "{m}");
        assert!(m.contains("width 301 > region width 300"), "{m}");
        assert!(err(V3, ",201", 300, 200, &NONE).contains("height 201 > region height 200"));
        assert!(err(V3, "301,10", 300, 200, &NONE).contains("^ is required"));
        assert!(err(V3, "10,201", 300, 200, &NONE).contains("^ is required"));
        // The exact region size is not an upscale.
        assert_eq!(ok(V3, "300,", 300, 200, &NONE), (300, 200));
        assert_eq!(ok(V3, "300,200", 300, 200, &NONE), (300, 200));
        // !w,h and max cap at the region instead of failing.
        assert_eq!(ok(V3, "!1000,1000", 300, 200, &NONE), (300, 200));
        assert_eq!(
            ok(V3, "max", 300, 200, &limits(Some(1000), None, None)),
            (300, 200)
        );
        // ^ that does not need to upscale is fine.
        assert_eq!(ok(V3, "^150,", 300, 200, &NONE), (150, 100));
        assert_eq!(ok(V3, "^max", 300, 200, &NONE), (300, 200));
    }

    #[test]
    fn v2_may_upscale() {
        assert_eq!(ok(V2, "600,", 300, 200, &NONE), (600, 400));
        assert_eq!(ok(V2, "pct:200", 300, 200, &NONE), (600, 400));
        assert_eq!(ok(V2, "!1000,1000", 300, 200, &NONE), (1000, 667));
        assert_eq!(ok(V2, "900,900", 300, 200, &NONE), (900, 900));
        // max never upscales, even in 2.1.
        assert_eq!(
            ok(V2, "max", 300, 200, &limits(Some(1000), None, None)),
            (300, 200)
        );
    }

    #[test]
    fn rounding_is_to_nearest_and_at_least_one_pixel() {
        // 100 * 333 / 1000 = 33.3 -> 33; 100 * 335 / 1000 = 33.5 -> 34 (halves up).
        assert_eq!(ok(V3, "100,", 1000, 333, &NONE), (100, 33));
        assert_eq!(ok(V3, "100,", 1000, 335, &NONE), (100, 34));
        assert_eq!(ok(V3, ",100", 335, 1000, &NONE), (34, 100));
        // pct:33.3 of 1000x7: 333 x 2.331 -> 333 x 2.
        assert_eq!(ok(V3, "pct:33.3", 1000, 7, &NONE), (333, 2));
        // Derived sides never drop to zero.
        assert_eq!(ok(V3, "100,", 10000, 5, &NONE), (100, 1));
        assert_eq!(ok(V3, "pct:1", 10, 10, &NONE), (1, 1));
        assert_eq!(ok(V3, "!100,100", 10000, 5, &NONE), (100, 1));
    }

    #[test]
    fn best_fit_touches_the_binding_side() {
        assert_eq!(ok(V2, "!200,200", 300, 200, &NONE), (200, 133));
        assert_eq!(ok(V2, "!200,100", 300, 200, &NONE), (150, 100));
        assert_eq!(ok(V2, "!150,100", 300, 200, &NONE), (150, 100));
        assert_eq!(ok(V3, "!1,1", 300, 200, &NONE), (1, 1));
    }

    #[test]
    fn max_respects_every_limit() {
        // The 3.0 example info.json: 6000x4000, maxWidth 3000, maxHeight 2000, maxArea 4000000.
        let l = limits(Some(3000), Some(2000), Some(4_000_000));
        let (w, h) = ok(V3, "max", 6000, 4000, &l);
        assert!(w <= 3000 && h <= 2000 && u64::from(w) * u64::from(h) <= 4_000_000);
        // The area binds: sqrt(4e6 * 1.5) = 2449.49 -> 2449 x round(1632.67) = 1633.
        assert_eq!((w, h), (2449, 1633));
        assert_eq!(
            ok(V3, "max", 6000, 4000, &limits(Some(3000), Some(2000), None)),
            (3000, 2000)
        );
        assert_eq!(
            ok(V3, "max", 6000, 4000, &limits(None, None, Some(6))),
            (3, 2)
        );
        assert_eq!(
            ok(V2, "max", 6000, 4000, &limits(Some(600), None, None)),
            (600, 400)
        );
        // A tall region with an area limit: the height is the exact side.
        let (w, h) = ok(V3, "max", 100, 10000, &limits(None, None, Some(10000)));
        assert_eq!((w, h), (10, 1000));
        // ^max scales up to the limits.
        assert_eq!(
            ok(V3, "^max", 300, 200, &limits(None, None, Some(240_000))),
            (600, 400)
        );
        assert_eq!(
            ok(V3, "^max", 300, 200, &limits(Some(900), Some(400), None)),
            (600, 400)
        );
    }

    #[test]
    fn area_rounding_never_exceeds_the_area() {
        for area in [1u64, 2, 3, 5, 7, 99, 1000, 12345] {
            for (rw, rh) in [(3u32, 2u32), (1, 1), (7, 3), (2, 9), (1000, 1)] {
                let l = limits(None, None, Some(area));
                if let Ok((w, h)) = size(V3, "max", rw, rh, &l) {
                    assert!(
                        u64::from(w) * u64::from(h) <= area,
                        "{rw}x{rh} area {area}: {w}x{h}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_forms_are_refused_beyond_the_limits() {
        let l = limits(Some(1000), None, None);
        let m = err(V2, "1001,", 6000, 4000, &l);
        assert!(
            m.contains("1001x667 exceeds the server's limits (maxWidth 1000, maxHeight 1000)"),
            "{m}"
        );
        assert!(err(V2, "full", 6000, 4000, &l).contains("exceeds"));
        assert!(err(V3, ",1001", 6000, 4000, &l).contains("exceeds"));
        assert!(err(V3, "pct:50", 6000, 4000, &l).contains("exceeds"));
        assert!(err(V3, "1000,1001", 6000, 4000, &l).contains("exceeds"));
        let l = limits(None, None, Some(100));
        assert!(err(V3, "11,10", 6000, 4000, &l).contains("maxArea 100"));
        assert_eq!(ok(V3, "10,10", 6000, 4000, &l), (10, 10));
        // !w,h shrinks instead.
        assert_eq!(
            ok(
                V3,
                "!5000,5000",
                6000,
                4000,
                &limits(Some(1000), None, None)
            ),
            (1000, 667)
        );
    }

    #[test]
    fn degenerate_limits_are_errors_not_panics() {
        for l in [
            limits(Some(0), None, None),
            limits(None, Some(0), None),
            limits(None, None, Some(0)),
            limits(None, None, Some(5)),
        ] {
            for s in ["max", "^max", "!10,10", "10,", "pct:50"] {
                let _ = size(V3, s, 10000, 1, &l);
            }
        }
        assert!(err(V3, "max", 10, 10, &limits(Some(0), None, None)).contains("no pixels"));
    }

    #[test]
    fn huge_results_are_refused() {
        let m = err(V2, "4294967295,", 1, 4294967295, &NONE);
        assert!(m.contains("too large"), "{m}");
        assert!(err(V3, "^pct:1000000000000", 10, 10, &NONE).contains("too large"));
    }

    #[test]
    fn hand_built_params_are_validated() {
        let full = SizeParam::new(Size::Full);
        assert!(full.resolve(V3, 10, 10, &NONE).is_err());
        let caret = SizeParam::upscaled(Size::Max);
        assert!(caret.resolve(V2, 10, 10, &NONE).is_err());
        let zero = SizeParam::new(Size::Width(0));
        assert!(zero.resolve(V2, 10, 10, &NONE).is_err());
        let nan = SizeParam::new(Size::Percent(f64::NAN));
        assert!(nan.resolve(V2, 10, 10, &NONE).is_err());
        assert!(SizeParam::new(Size::Max).resolve(V2, 0, 10, &NONE).is_err());
    }

    #[test]
    fn integer_square_root() {
        for n in [
            0u128,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 96,
            (1 << 96) - 1,
            u128::from(u64::MAX),
        ] {
            let r = u128::from(isqrt(n));
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }
}
