//! `render` answering from a decoded level kept in memory (see [`crate::imaging::levels`]):
//! the level is decoded whole once, with OpenJPEG's threads, and each request crops it.

use super::Render;
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
        let (w, h) = bands::size_at(image_area(indexed), reduce);
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
        let image = image_area(indexed);
        let grid = bands::Grid::of(&indexed.index);
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
        // Where `area` lies in the level: the level's pixels before it, and its own.
        let (x, y) = bands::size_at((image.0, image.1, area.0, area.1), reduce);
        let (w, h) = bands::size_at(area, reduce);
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let crop = Rect {
            x: narrow(x),
            y: narrow(y),
            w: narrow(w),
            h: narrow(h),
        };
        let slot = self.decodes.slot().await?;
        slot.run(move || {
            tessera_render::render(&whole, Some(crop), &out)
                .map_err(|e| ViewError::Corrupt(e.to_string()))
        })
        .await
    }
}

/// The whole image on its grid: x0, y0, x1, y1.
fn image_area(indexed: &Indexed) -> (u32, u32, u32, u32) {
    let ix = &indexed.index;
    (ix.x0, ix.y0, ix.x0 + ix.width, ix.y0 + ix.height)
}
