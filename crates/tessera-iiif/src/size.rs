//! The size parameter's grammar: which forms exist in which version.
//!
//! This file only reads and writes the syntax; turning a size into pixels is [`crate::scale`].
//! The two versions differ here more than anywhere else:
//!
//! | form      | 2.1 | 3.0 |
//! |-----------|-----|-----|
//! | `full`    | yes (deprecated) | no: use `max` |
//! | `max`     | yes | yes |
//! | `w,` `,h` `pct:n` `w,h` `!w,h` | yes | yes |
//! | `^` prefix on any form | no | yes: allows upscaling |
//!
//! In 3.0 a size without `^` must not upscale; `pct:n` above 100 is refused at parse time
//! because that needs no knowledge of the image. The other forms are checked against the
//! region when resolving.
//!
//! Spec note: the 3.0 examples table once wrote the height form as `,^240`; the normative
//! table writes `^,h`, which is the only spelling accepted here.

use std::fmt;

use crate::error::{IiifError, Result};
use crate::number::{format_decimal, parse_decimal, parse_u32};
use crate::Version;

const P: &str = "size";

/// A size form, without the 3.0 `^` prefix (see [`SizeParam`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    /// `max`: as large as allowed; in 3.0 without `^` never larger than the region.
    Max,
    /// `full` (2.1 only): the region's own size.
    Full,
    /// `w,`: this width, height keeping the aspect ratio.
    Width(u32),
    /// `,h`: this height, width keeping the aspect ratio.
    Height(u32),
    /// `pct:n`: n percent of the region on both axes.
    Percent(f64),
    /// `w,h`: exactly this size, distorting if need be.
    Exact(u32, u32),
    /// `!w,h`: the largest size keeping the aspect ratio that fits in `w` x `h`.
    BestFit(u32, u32),
}

/// The size parameter: a form and whether it carried the 3.0 `^` (upscaling allowed).
/// `upscale` is always false in 2.1, where `^` does not exist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeParam {
    pub kind: Size,
    pub upscale: bool,
}

impl SizeParam {
    /// A size without `^`.
    pub fn new(kind: Size) -> Self {
        SizeParam {
            kind,
            upscale: false,
        }
    }

    /// A size with the 3.0 `^` prefix.
    pub fn upscaled(kind: Size) -> Self {
        SizeParam {
            kind,
            upscale: true,
        }
    }

    /// Parse the size parameter (already percent-decoded) for `version`.
    pub fn parse(version: Version, s: &str) -> Result<SizeParam> {
        let (upscale, rest) = match s.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let kind = if rest == "max" {
            Size::Max
        } else if rest == "full" {
            Size::Full
        } else if let Some(n) = rest.strip_prefix("pct:") {
            Size::Percent(parse_decimal(P, "pct:n", n)?)
        } else if let Some(wh) = rest.strip_prefix('!') {
            let (w, h) = pair(wh, s)?;
            Size::BestFit(parse_u32(P, "width", w)?, parse_u32(P, "height", h)?)
        } else {
            match pair(rest, s)? {
                ("", "") => return Err(bad_syntax(s)),
                (w, "") => Size::Width(parse_u32(P, "width", w)?),
                ("", h) => Size::Height(parse_u32(P, "height", h)?),
                (w, h) => Size::Exact(parse_u32(P, "width", w)?, parse_u32(P, "height", h)?),
            }
        };
        let param = SizeParam { kind, upscale };
        param.validate(version)?;
        Ok(param)
    }

    /// The checks that need only the version, not the image: the form exists in this version,
    /// no dimension is zero, a percentage is positive and finite, and in 3.0 `pct:` above 100
    /// carries `^`. [`SizeParam::parse`] runs this; resolving runs it again for sizes built by
    /// hand.
    pub fn validate(&self, version: Version) -> Result<()> {
        if self.upscale && version == Version::V2 {
            return Err(IiifError::new(
                P,
                "^ (upscaling) exists only in IIIF 3.0; IIIF 2.1 sizes may upscale without it",
            ));
        }
        match self.kind {
            Size::Full if version == Version::V3 => {
                return Err(IiifError::new(P, "full is not valid in IIIF 3.0; use max"));
            }
            Size::Width(0) | Size::Exact(0, _) | Size::BestFit(0, _) => {
                return Err(IiifError::new(P, "width must be greater than zero"));
            }
            Size::Height(0) | Size::Exact(_, 0) | Size::BestFit(_, 0) => {
                return Err(IiifError::new(P, "height must be greater than zero"));
            }
            Size::Percent(n) if !(n.is_finite() && n > 0.0) => {
                return Err(IiifError::new(
                    P,
                    format!("pct:n must be greater than zero, got {n}"),
                ));
            }
            Size::Percent(n) if version == Version::V3 && !self.upscale && n > 100.0 => {
                return Err(IiifError::new(
                    P,
                    format!(
                        "^ is required to upscale in IIIF 3.0 (pct:{} > 100)",
                        format_decimal(n)
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// `"a,b"` into `("a", "b")`; exactly one comma.
fn pair<'a>(s: &'a str, whole: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once(',') {
        Some((a, b)) if !b.contains(',') => Ok((a, b)),
        _ => Err(bad_syntax(whole)),
    }
}

fn bad_syntax(s: &str) -> IiifError {
    IiifError::new(
        P,
        format!("expected max, w,, ,h, pct:n, w,h or !w,h (3.0: optionally prefixed with ^; 2.1: or full), got {s:?}"),
    )
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Size::Max => f.write_str("max"),
            Size::Full => f.write_str("full"),
            Size::Width(w) => write!(f, "{w},"),
            Size::Height(h) => write!(f, ",{h}"),
            Size::Percent(n) => write!(f, "pct:{}", format_decimal(n)),
            Size::Exact(w, h) => write!(f, "{w},{h}"),
            Size::BestFit(w, h) => write!(f, "!{w},{h}"),
        }
    }
}

impl fmt::Display for SizeParam {
    /// The request syntax (not canonical: see [`crate::Resolved::canonical`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.upscale {
            f.write_str("^")?;
        }
        self.kind.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Version::{V2, V3};

    fn ok(v: Version, s: &str) -> SizeParam {
        SizeParam::parse(v, s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(v: Version, s: &str) -> String {
        let e = SizeParam::parse(v, s).unwrap_err();
        assert!(e.message.starts_with("size: "), "{s:?}: {e}");
        e.message
    }

    #[test]
    fn every_form_in_2_1() {
        assert_eq!(ok(V2, "full"), SizeParam::new(Size::Full));
        assert_eq!(ok(V2, "max"), SizeParam::new(Size::Max));
        assert_eq!(ok(V2, "150,"), SizeParam::new(Size::Width(150)));
        assert_eq!(ok(V2, ",150"), SizeParam::new(Size::Height(150)));
        assert_eq!(ok(V2, "pct:50"), SizeParam::new(Size::Percent(50.0)));
        assert_eq!(ok(V2, "pct:120"), SizeParam::new(Size::Percent(120.0)));
        assert_eq!(ok(V2, "225,100"), SizeParam::new(Size::Exact(225, 100)));
        assert_eq!(ok(V2, "!225,100"), SizeParam::new(Size::BestFit(225, 100)));
    }

    #[test]
    fn every_form_in_3_0() {
        assert_eq!(ok(V3, "max"), SizeParam::new(Size::Max));
        assert_eq!(ok(V3, "^max"), SizeParam::upscaled(Size::Max));
        assert_eq!(ok(V3, "150,"), SizeParam::new(Size::Width(150)));
        assert_eq!(ok(V3, "^360,"), SizeParam::upscaled(Size::Width(360)));
        assert_eq!(ok(V3, ",150"), SizeParam::new(Size::Height(150)));
        assert_eq!(ok(V3, "^,240"), SizeParam::upscaled(Size::Height(240)));
        assert_eq!(ok(V3, "pct:50"), SizeParam::new(Size::Percent(50.0)));
        assert_eq!(ok(V3, "pct:100"), SizeParam::new(Size::Percent(100.0)));
        assert_eq!(
            ok(V3, "^pct:120"),
            SizeParam::upscaled(Size::Percent(120.0))
        );
        assert_eq!(ok(V3, "225,100"), SizeParam::new(Size::Exact(225, 100)));
        assert_eq!(
            ok(V3, "^360,360"),
            SizeParam::upscaled(Size::Exact(360, 360))
        );
        assert_eq!(ok(V3, "!225,100"), SizeParam::new(Size::BestFit(225, 100)));
        assert_eq!(
            ok(V3, "^!360,360"),
            SizeParam::upscaled(Size::BestFit(360, 360))
        );
    }

    #[test]
    fn version_specific_forms() {
        assert!(err(V3, "full").contains("use max"));
        assert!(err(V3, "^full").contains("use max"));
        for s in ["^max", "^150,", "^pct:50", "^!10,10", "^10,10", "^,10"] {
            assert!(err(V2, s).contains("only in IIIF 3.0"), "{s}");
        }
        assert!(err(V3, "pct:120").contains("^ is required to upscale in IIIF 3.0"));
        assert!(err(V3, "pct:100.5").contains("pct:100.5 > 100"));
    }

    #[test]
    fn zero_sizes_are_errors() {
        for v in [V2, V3] {
            assert!(err(v, "0,").contains("width must be greater than zero"));
            assert!(err(v, ",0").contains("height must be greater than zero"));
            assert!(err(v, "0,10").contains("width"));
            assert!(err(v, "10,0").contains("height"));
            assert!(err(v, "!0,10").contains("width"));
            assert!(err(v, "!10,0").contains("height"));
            assert!(err(v, "pct:0").contains("greater than zero"));
            assert!(err(v, "pct:0.0").contains("greater than zero"));
        }
    }

    #[test]
    fn bad_syntax() {
        for v in [V2, V3] {
            for s in [
                "", ",", "!", "!,", "!10,", "!,10", "1,2,3", "Max", "MAX", "pct:", "pct:-5",
                "pct:1e2", "-10,", "10.5,", "^^max", "!^10,10", "max,", "pct:50,", "10, 10",
            ] {
                err(v, s);
            }
        }
        assert!(err(V3, "^").contains("expected"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "max", "full", "150,", ",150", "pct:50", "pct:12.5", "225,100", "!225,100",
        ] {
            assert_eq!(ok(V2, s).to_string(), s);
        }
        for s in [
            "^max",
            "^360,",
            "^,240",
            "^pct:120",
            "^360,360",
            "^!360,360",
        ] {
            assert_eq!(ok(V3, s).to_string(), s);
        }
    }
}
