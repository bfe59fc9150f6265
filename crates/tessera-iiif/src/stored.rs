//! Limits for an image stored at reduced resolutions too (a JPEG 2000's levels, a pyramidal
//! TIFF's pages), where `max` of a large image costs far less at a stored resolution than just
//! under the limits: see [`ImageLimits::within_stored`].

use crate::scale::max_size;
use crate::ImageLimits;

impl ImageLimits {
    /// These limits for an image that is also stored at reduced resolutions (a JPEG 2000's
    /// levels, a pyramidal TIFF's pages), `stored` being their sizes in any order.
    ///
    /// When the full size is over the limits, `max` shrinks the full image to just within them,
    /// and that is decoded from the full resolution however little over them the image is: a
    /// 61 MP image shrunk to 16 MP decodes all 61 MP, while its first level (15.4 MP) would
    /// decode a quarter of that. So when the largest stored resolution within the limits has at
    /// least half the pixels `max` would have, `max_area` becomes that resolution's area, and
    /// `max` (and what info.json advertises) is that resolution: at most half the pixels lost,
    /// at least three quarters of the decoding saved. Smaller levels, images within the limits
    /// and images without levels keep the limits as they are.
    pub fn within_stored(self, stored: impl IntoIterator<Item = (u32, u32)>) -> Self {
        if self.allows(self.width, self.height) {
            return self;
        }
        let (max_w, max_h) = max_size(self.width, self.height, &self, false);
        let worth_it = |w: u32, h: u32| 2 * u64::from(w) * u64::from(h) >= max_w * max_h;
        let mut levels: Vec<(u32, u32)> = stored
            .into_iter()
            .filter(|&(w, h)| w > 0 && h > 0 && self.allows(w, h) && worth_it(w, h))
            .collect();
        levels.sort_by_key(|&(w, h)| std::cmp::Reverse(u64::from(w) * u64::from(h)));
        levels
            .into_iter()
            .map(|(w, h)| {
                let at_level = ImageLimits {
                    max_area: Some(u64::from(w) * u64::from(h)),
                    ..self
                };
                (at_level, (w, h))
            })
            // `max` of the full image must fit in the level's size, or it would decode from
            // the level above: the fitted size rounds, and an extreme aspect ratio may not.
            .find(|(at_level, (w, h))| {
                let (mw, mh) = max_size(self.width, self.height, at_level, false);
                mw > 0 && mh > 0 && mw <= u64::from(*w) && mh <= u64::from(*h)
            })
            .map_or(self, |(at_level, _)| at_level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The sizes of a JPEG 2000's levels: `ceil(side / 2^r)` for r in 1..=levels.
    fn levels(width: u32, height: u32, levels: u32) -> Vec<(u32, u32)> {
        (1..=levels)
            .map(|r| (width.div_ceil(1 << r), height.div_ceil(1 << r)))
            .collect()
    }

    #[test]
    fn a_61_mp_image_is_served_at_its_first_level() {
        let l = ImageLimits {
            max_area: Some(16_000_000),
            max_width: Some(65535),
            ..ImageLimits::new(9600, 6400)
        }
        .within_stored(levels(9600, 6400, 5));
        assert_eq!(l.max_area, Some(4800 * 3200));
        assert_eq!(max_size(9600, 6400, &l, false), (4800, 3200));
    }

    #[test]
    fn a_level_under_half_the_limit_is_not_worth_it() {
        // 2048×1536 within 500 000 pixels: its 512×384 level would lose 60 % of them.
        let l = ImageLimits {
            max_area: Some(500_000),
            ..ImageLimits::new(2048, 1536)
        };
        assert_eq!(l.within_stored(levels(2048, 1536, 5)), l);
    }

    #[test]
    fn an_image_within_the_limits_or_without_levels_keeps_them() {
        let small = ImageLimits {
            max_area: Some(16_000_000),
            ..ImageLimits::new(4000, 3000)
        };
        assert_eq!(small.within_stored(levels(4000, 3000, 5)), small);
        let flat = ImageLimits {
            max_area: Some(16_000_000),
            ..ImageLimits::new(9600, 6400)
        };
        assert_eq!(flat.within_stored([]), flat);
    }

    proptest! {
        /// Whatever the image and limits: the result is never looser than the limits, and when
        /// it changed them, `max` of the full image fits in a stored resolution within them.
        #[test]
        fn max_lands_on_a_stored_resolution(
            width in 1u32..200_000,
            height in 1u32..200_000,
            nl in 0u32..8,
            area in 1u64..100_000_000,
            side in proptest::option::of(1u32..70_000),
        ) {
            let route = ImageLimits {
                max_area: Some(area),
                max_width: side,
                ..ImageLimits::new(width, height)
            };
            let stored = levels(width, height, nl);
            let l = route.within_stored(stored.clone());
            prop_assert_eq!((l.width, l.height, l.max_width, l.max_height), (width, height, side, None));
            prop_assert!(l.max_area <= route.max_area);
            if l != route {
                let (mw, mh) = max_size(width, height, &l, false);
                let (rw, rh) = max_size(width, height, &route, false);
                prop_assert!(2 * l.max_area.unwrap() >= rw * rh, "more than half the pixels lost");
                prop_assert!(mw > 0 && mh > 0);
                prop_assert!(route.allows(mw as u32, mh as u32));
                prop_assert!(stored.iter().any(|&(w, h)| mw <= u64::from(w) && mh <= u64::from(h)
                    && l.max_area == Some(u64::from(w) * u64::from(h))));
            }
        }
    }
}
