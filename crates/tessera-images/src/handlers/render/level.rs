//! `render` answering from a decoded level kept in memory (see [`crate::imaging::levels`]):
//! the level is decoded whole once, with OpenJPEG's threads, and each request crops it.

use super::{ceil_shift, Render};
use crate::imaging::bands;
use crate::imaging::levels::{DecodedLevels, LevelKey};
use crate::imaging::pipeline::ViewError;
use crate::resources::{Indexed, LocalFile};
use tessera_render::{Output, Rect};

impl Render {
    /// The kept-levels cache and the key of level `reduce` of this image, if that level is
    /// small enough to be kept.
    pub(super) fn kept_level(
        &self,
        key: &str,
        indexed: &Indexed,
        local: &LocalFile,
        reduce: u8,
    ) -> Option<(&DecodedLevels, LevelKey)> {
        let levels = self.levels.as_ref()?;
        let ix = &indexed.index;
        let shift = u32::from(reduce);
        let w = ceil_shift(ix.x0 + ix.width, shift) - ceil_shift(ix.x0, shift);
        let h = ceil_shift(ix.y0 + ix.height, shift) - ceil_shift(ix.y0, shift);
        let image = u64::from(ix.width) * u64::from(ix.height);
        if !DecodedLevels::keeps(w * h, image) {
            return None;
        }
        let version = local.version().or(indexed.etag.as_deref()).unwrap_or("");
        let level = LevelKey {
            key: key.to_string(),
            version: format!("{version}/{}", indexed.size),
            reduce,
        };
        Some((levels, level))
    }

    /// `area` (on the image's grid) of level `reduce`, rendered as `out`: cropped from the
    /// level, which is decoded first unless kept.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn crop_level(
        &self,
        levels: &DecodedLevels,
        level: LevelKey,
        local: &LocalFile,
        indexed: &Indexed,
        reduce: u8,
        area: (u32, u32, u32, u32),
        out: Output,
    ) -> Result<Vec<u8>, ViewError> {
        let max_pixels = self.max_decode_pixels;
        let path = local.path().to_path_buf();
        let ix = &indexed.index;
        let image = (ix.x0, ix.y0, ix.x0 + ix.width, ix.y0 + ix.height);
        let grid = bands::Grid::of(ix);
        let whole = levels
            .get(level, async {
                let slot = self.decodes.slot().await?;
                slot.run(move || {
                    let file = std::fs::File::open(path)
                        .map_err(|e| ViewError::Corrupt(format!("cannot open the file: {e}")))?;
                    bands::decode_level(&file, reduce, image, grid, max_pixels)
                })
                .await
            })
            .await?;
        let shift = u32::from(reduce);
        let (x0, y0) = (indexed.index.x0, indexed.index.y0);
        let at = |v: u32, origin: u32| ceil_shift(v, shift) - ceil_shift(origin, shift);
        let side = |from: u32, to: u32| ceil_shift(to, shift) - ceil_shift(from, shift);
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let crop = Rect {
            x: narrow(at(area.0, x0)),
            y: narrow(at(area.1, y0)),
            w: narrow(side(area.0, area.2)),
            h: narrow(side(area.1, area.3)),
        };
        let slot = self.decodes.slot().await?;
        slot.run(move || {
            tessera_render::render(&whole, Some(crop), &out)
                .map_err(|e| ViewError::Corrupt(e.to_string()))
        })
        .await
    }
}
