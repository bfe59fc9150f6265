//! Which thumbnail answers a request, and at what size.
//!
//! The thumbnails form an image service of their own, whose full size is the largest thumbnail
//! the request may see (that is what its info.json says). The output size is computed against
//! it with the IIIF size rules, then:
//!
//! 1. a listed thumbnail of exactly that size is served as it is; on a side the request left
//!    to the server (`w,`, `,h`, `!w,h`, `pct:`), one pixel either way still counts, since the
//!    listed sizes were rounded from the master's own aspect ratio;
//! 2. otherwise the smallest thumbnail at least as large on both sides is resized down;
//! 3. otherwise, when the output is at most `max_upscale` times the largest thumbnail, that one
//!    is resized up (in IIIF 3.0 only if the request said `^`);
//! 4. otherwise the request is beyond what the thumbnails can answer — unless an auth-only
//!    size could, in which case the request needs authorisation.

use super::{Thumb, ThumbSizes};
use tessera_iiif::{IiifError, ImageLimits, Size, SizeParam, Version};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Choice {
    /// Serve this thumbnail unchanged.
    Exact(Thumb),
    /// Resize this thumbnail to `width`×`height` (down, or up within the threshold).
    Resize {
        from: Thumb,
        width: u32,
        height: u32,
    },
    /// No thumbnail answers this size.
    Beyond,
    /// Only an auth-only size answers it, and the request is not authorised.
    NeedsAuth,
}

/// Choose for `size`. An error is a size the IIIF rules refuse (400).
pub fn choose(
    sizes: &ThumbSizes,
    size: &SizeParam,
    version: Version,
    authorised: bool,
    max_upscale: f64,
) -> Result<Choice, IiifError> {
    let choice = choose_among(&sizes.visible(authorised), size, version, max_upscale)?;
    if choice == Choice::Beyond && !authorised && sizes.has_auth_sizes() {
        let with_auth = choose_among(&sizes.visible(true), size, version, max_upscale)?;
        if with_auth != Choice::Beyond {
            return Ok(Choice::NeedsAuth);
        }
    }
    Ok(choice)
}

/// [`choose`] among `thumbs` (smallest first).
fn choose_among(
    thumbs: &[Thumb],
    size: &SizeParam,
    version: Version,
    max_upscale: f64,
) -> Result<Choice, IiifError> {
    let Some(&largest) = thumbs.last() else {
        return Ok(Choice::Beyond);
    };
    let limits = ImageLimits::new(largest.width, largest.height);
    let (lw, lh) = (largest.width, largest.height);
    // In 3.0, sizes larger than the "image" need `^`; such a request is beyond the thumbnails
    // (a route with the master may serve it), not malformed.
    let (width, height, caret_missing) = match size.resolve(version, lw, lh, &limits) {
        Ok((w, h)) => (w, h, false),
        Err(e) => {
            let upscaled = SizeParam {
                upscale: true,
                ..*size
            };
            match upscaled.resolve(version, lw, lh, &limits) {
                Ok((w, h)) => (w, h, true),
                Err(_) => return Err(e),
            }
        }
    };
    let (slack_w, slack_h) = match size.kind {
        Size::Width(_) => (0, 1),
        Size::Height(_) => (1, 0),
        Size::BestFit(..) | Size::Percent(_) | Size::Max | Size::Full => (1, 1),
        Size::Exact(..) => (0, 0),
    };
    let near =
        |t: &Thumb| t.width.abs_diff(width) <= slack_w && t.height.abs_diff(height) <= slack_h;
    if let Some(&t) = thumbs
        .iter()
        .find(|t| (t.width, t.height) == (width, height))
        .or_else(|| thumbs.iter().find(|t| near(t)))
    {
        return Ok(Choice::Exact(t));
    }
    let resize = |from: Thumb| Choice::Resize {
        from,
        width,
        height,
    };
    if let Some(&t) = thumbs
        .iter()
        .find(|t| t.width >= width && t.height >= height)
    {
        return Ok(resize(t));
    }
    let within = f64::from(width) <= f64::from(lw) * max_upscale
        && f64::from(height) <= f64::from(lh) * max_upscale;
    if within && !caret_missing {
        return Ok(resize(largest));
    }
    Ok(Choice::Beyond)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> ThumbSizes {
        ThumbSizes::parse(br#"{"o":[[1000,750],[400,300],[200,150],[100,75]],"a":[[2000,1500]]}"#)
            .unwrap()
    }

    fn pick(size: &str, version: Version, authorised: bool) -> Choice {
        let size = SizeParam::parse(version, size).unwrap();
        choose(&sizes(), &size, version, authorised, 1.1).unwrap()
    }

    fn thumb(width: u32, height: u32) -> Thumb {
        Thumb {
            width,
            height,
            auth: width == 2000,
        }
    }

    #[test]
    fn exact_sizes_in_every_form() {
        for (size, w, h) in [
            ("200,", 200, 150),
            (",150", 200, 150),
            ("200,150", 200, 150),
            ("!200,200", 200, 150),
            ("!400,400", 400, 300),
            ("max", 1000, 750),
            ("pct:10", 100, 75),
        ] {
            assert_eq!(
                pick(size, Version::V3, false),
                Choice::Exact(thumb(w, h)),
                "{size}"
            );
        }
        assert_eq!(
            pick("full", Version::V2, false),
            Choice::Exact(thumb(1000, 750))
        );
    }

    #[test]
    fn a_pixel_of_rounding_still_matches() {
        let s = ThumbSizes::parse(br#"{"o":[[400,299],[1000,749]]}"#).unwrap();
        let size = SizeParam::parse(Version::V3, "400,").unwrap();
        // 749 * 400 / 1000 = 299.6 → 300, but 400×299 is the listed size.
        assert_eq!(
            choose(&s, &size, Version::V3, false, 1.0).unwrap(),
            Choice::Exact(Thumb {
                width: 400,
                height: 299,
                auth: false
            })
        );
        // w,h is exact: no slack.
        let size = SizeParam::parse(Version::V3, "400,300").unwrap();
        assert!(matches!(
            choose(&s, &size, Version::V3, false, 1.0).unwrap(),
            Choice::Resize { .. }
        ));
    }

    #[test]
    fn between_sizes_resize_the_next_larger() {
        assert_eq!(
            pick("300,", Version::V3, false),
            Choice::Resize {
                from: thumb(400, 300),
                width: 300,
                height: 225
            }
        );
        assert_eq!(
            pick("!150,150", Version::V3, false),
            Choice::Resize {
                from: thumb(200, 150),
                width: 150,
                height: 113
            }
        );
        // Distorting w,h: large enough on both sides.
        assert_eq!(
            pick("390,310", Version::V3, false),
            Choice::Resize {
                from: thumb(1000, 750),
                width: 390,
                height: 310
            }
        );
    }

    #[test]
    fn upscaling_only_within_the_threshold_and_with_caret_in_v3() {
        assert_eq!(
            pick("^1050,", Version::V3, false),
            Choice::Resize {
                from: thumb(1000, 750),
                width: 1050,
                height: 788
            }
        );
        assert_eq!(
            pick("1050,", Version::V2, false),
            Choice::Resize {
                from: thumb(1000, 750),
                width: 1050,
                height: 788
            }
        );
        // v3 without ^: beyond this image service, but auth-only 2000×1500 could answer.
        assert_eq!(pick("1050,", Version::V3, false), Choice::NeedsAuth);
        assert_eq!(pick("^1200,", Version::V3, false), Choice::NeedsAuth);
        assert_eq!(pick("^5000,", Version::V3, false), Choice::Beyond);
        // !w,h in 3.0 without ^ stops at the largest: exact.
        assert_eq!(
            pick("!1024,1024", Version::V3, false),
            Choice::Exact(thumb(1000, 750))
        );
    }

    #[test]
    fn auth_only_sizes_need_authorisation() {
        assert_eq!(pick("2000,", Version::V3, false), Choice::NeedsAuth);
        assert_eq!(
            pick("2000,", Version::V3, true),
            Choice::Exact(thumb(2000, 1500))
        );
        assert_eq!(
            pick("max", Version::V3, true),
            Choice::Exact(thumb(2000, 1500))
        );
        assert_eq!(
            pick("1500,", Version::V3, true),
            Choice::Resize {
                from: thumb(2000, 1500),
                width: 1500,
                height: 1125
            }
        );
    }

    #[test]
    fn no_sizes_means_beyond() {
        let empty = ThumbSizes::parse(b"{}").unwrap();
        let size = SizeParam::parse(Version::V3, "max").unwrap();
        assert_eq!(
            choose(&empty, &size, Version::V3, true, 1.1).unwrap(),
            Choice::Beyond
        );
    }
}
