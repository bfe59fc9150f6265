//! The rotation parameter: optional mirroring (`!`) then clockwise degrees.
//!
//! Same grammar in 2.1 and 3.0: `n` or `!n`, with `n` "any floating point number from 0 to 360".
//! The range is inclusive here: both specs say "from 0 up to 360", so `360` is valid and is
//! kept as written (its canonical form is `360`, not `0`; the spec's canonical rules only
//! reformat numbers, they do not reduce angles). Whether a server *supports* a given angle
//! (only multiples of 90, say) is the handler's call, not this crate's.

use std::fmt;

use crate::error::{IiifError, Result};
use crate::number::{format_decimal, parse_decimal};

const P: &str = "rotation";

/// Mirror (on the vertical axis, applied first) and clockwise rotation in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rotation {
    pub degrees: f64,
    pub mirror: bool,
}

impl Rotation {
    /// No mirroring, no rotation: `0`.
    pub const NONE: Rotation = Rotation {
        degrees: 0.0,
        mirror: false,
    };

    /// Parse the rotation parameter (already percent-decoded).
    pub fn parse(s: &str) -> Result<Rotation> {
        let (mirror, n) = match s.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let degrees = parse_decimal(P, "degrees", n)?;
        let r = Rotation { degrees, mirror };
        r.validate()?;
        Ok(r)
    }

    /// Check the angle is a finite number from 0 to 360 inclusive.
    pub fn validate(&self) -> Result<()> {
        if self.degrees.is_finite() && (0.0..=360.0).contains(&self.degrees) {
            Ok(())
        } else {
            Err(IiifError::new(
                P,
                format!("must be from 0 to 360 degrees, got {}", self.degrees),
            ))
        }
    }

    /// Whether the angle is a multiple of 90 degrees (what level 2 requires; anything else is
    /// the optional `rotationArbitrary` feature).
    pub fn is_multiple_of_90(&self) -> bool {
        self.degrees % 90.0 == 0.0
    }

    /// Whether this rotation changes nothing (`0` or `360`, not mirrored).
    pub fn is_identity(&self) -> bool {
        !self.mirror && (self.degrees == 0.0 || self.degrees == 360.0)
    }

    /// The pixel size of the returned image when a `width` x `height` image is rotated: the
    /// bounding box of the rotated content, which the spec says must hold all of it, unscaled
    /// (3.0 implementation notes §5). Exact for multiples of 90; otherwise
    /// `|w cos| + |h sin|` by `|h cos| + |w sin|`, rounded to the nearest pixel, at least 1.
    pub fn rotated_size(&self, width: u32, height: u32) -> (u32, u32) {
        if self.is_multiple_of_90() {
            return if (self.degrees / 90.0) as u32 % 2 == 1 {
                (height, width)
            } else {
                (width, height)
            };
        }
        let (sin, cos) = self.degrees.to_radians().sin_cos();
        let (w, h) = (f64::from(width), f64::from(height));
        let bw = (w * cos.abs() + h * sin.abs()).round();
        let bh = (h * cos.abs() + w * sin.abs()).round();
        // `as` saturates: a box wider than u32::MAX (impossible from u32 sides rotated by less
        // than sqrt(2)x, but cheap to guard) clamps rather than wraps.
        ((bw as u32).max(1), (bh as u32).max(1))
    }
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation::NONE
    }
}

impl fmt::Display for Rotation {
    /// The canonical form: `!` if mirrored, then an integer where possible, otherwise a decimal
    /// with a leading zero and no trailing zeros (2.1 §4.7, 3.0 §4.7 and §4.8).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mirror {
            f.write_str("!")?;
        }
        f.write_str(&format_decimal(self.degrees))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot(degrees: f64, mirror: bool) -> Rotation {
        Rotation { degrees, mirror }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(Rotation::parse("0"), Ok(rot(0.0, false)));
        assert_eq!(Rotation::parse("90"), Ok(rot(90.0, false)));
        assert_eq!(Rotation::parse("22.5"), Ok(rot(22.5, false)));
        assert_eq!(Rotation::parse("!0"), Ok(rot(0.0, true)));
        assert_eq!(Rotation::parse("!345"), Ok(rot(345.0, true)));
        assert_eq!(Rotation::parse("360"), Ok(rot(360.0, false)));
        assert_eq!(Rotation::parse("0.5"), Ok(rot(0.5, false)));
    }

    #[test]
    fn rejects_bad_rotations() {
        for bad in [
            "", "!", "!!90", "-90", "360.1", "361", "90!", "1e2", "ninety", "+90", " 90",
        ] {
            let e = Rotation::parse(bad).unwrap_err();
            assert!(e.message.starts_with("rotation: "), "{bad:?}: {e}");
        }
        assert!(rot(f64::NAN, false).validate().is_err());
        assert!(rot(-0.5, false).validate().is_err());
        assert!(rot(f64::INFINITY, false).validate().is_err());
    }

    #[test]
    fn canonical_form() {
        assert_eq!(Rotation::parse("90.0").unwrap().to_string(), "90");
        assert_eq!(Rotation::parse("!90.00").unwrap().to_string(), "!90");
        assert_eq!(Rotation::parse(".5").unwrap().to_string(), "0.5");
        assert_eq!(Rotation::parse("22.50").unwrap().to_string(), "22.5");
        assert_eq!(Rotation::parse("!0").unwrap().to_string(), "!0");
        assert_eq!(Rotation::parse("360").unwrap().to_string(), "360");
    }

    #[test]
    fn rotated_sizes() {
        assert_eq!(rot(0.0, false).rotated_size(300, 200), (300, 200));
        assert_eq!(rot(90.0, true).rotated_size(300, 200), (200, 300));
        assert_eq!(rot(180.0, false).rotated_size(300, 200), (300, 200));
        assert_eq!(rot(270.0, false).rotated_size(300, 200), (200, 300));
        assert_eq!(rot(360.0, false).rotated_size(300, 200), (300, 200));
        // 45 degrees: both sides (300 + 200) / sqrt(2) = 353.55.
        assert_eq!(rot(45.0, false).rotated_size(300, 200), (354, 354));
    }

    #[test]
    fn predicates() {
        assert!(rot(0.0, false).is_identity());
        assert!(rot(360.0, false).is_identity());
        assert!(!rot(0.0, true).is_identity());
        assert!(rot(270.0, true).is_multiple_of_90());
        assert!(!rot(22.5, false).is_multiple_of_90());
    }
}
