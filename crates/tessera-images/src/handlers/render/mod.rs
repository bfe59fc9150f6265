//! `render`: any IIIF request for an image, decoded in process from the hot cache — for
//! deployments without IIPImage.
//!
//! An image in a `dir` origin is read in place; one anywhere else is copied into the hot cache
//! once (as for `orchestrate`). Each request then decodes only its region, at the lowest
//! resolution that still covers the output size (OpenJPEG region decode), and resizes to the
//! exact IIIF size; the small levels of a large image are decoded whole once and cropped
//! instead (`level`, and `imaging::levels` for why). The file is read with positioned reads, so a tile of a large tiled image
//! reads only the tiles it needs, and a file truncated under it fails one request (a memory
//! map would fail the process). Work is bounded: a limit on output pixels and on decodes
//! running at once.

use crate::imaging::bands;
use crate::imaging::levels::DecodedLevels;
use crate::imaging::pipeline::{self, ViewError};
use crate::imaging::{answer, defaults, Failure, Found, IndexedImages, Lookup};
use crate::metrics;
use crate::resources::{HotCacheSection, HotCacheSlot, Indexed, LocalFile};
use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use tessera_iiif::{ImageLimits, ImageRequest, Resolved};
use tessera_proxy::config::{ByteSize, Dur};
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheName, Handler, HandlerAction, HttpError, RequestContext,
    RequestInfo,
};

mod level;
mod raster;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    /// The origin (under `origins:`) of the images: a `dir` origin's files are read in place,
    /// others' are copied into the hot cache.
    pub origin: String,
    /// The object key, from the route's captures.
    pub key: String,
    /// What renders to `region/size/rotation/quality.format`.
    #[serde(default = "defaults::request")]
    pub request: String,
    /// IIIF Image API version: 2 or 3.
    #[serde(default = "defaults::version")]
    pub version: u8,
    /// The largest output, in pixels: `max` and `!w,h` shrink to it, larger sizes are 400.
    /// The `info` route of these images advertises it as `maxArea` (its `max_area`, which
    /// defaults to the same value).
    #[serde(default = "defaults::max_pixels")]
    pub max_pixels: u64,
    /// The largest image decoded for one request, in pixels (the region at the chosen
    /// resolution); more answers 501. Bounds memory: OpenJPEG holds 4 bytes per sample.
    #[serde(default = "default_max_decode_pixels")]
    pub max_decode_pixels: u64,
    /// Decodes running at once for this route; more wait.
    #[serde(default = "defaults::decodes")]
    pub max_concurrent_decodes: usize,
    /// How long one decode (with resize and encode) may take before the request answers 504.
    #[serde(default = "defaults::decode_timeout")]
    pub decode_timeout: Dur,
    #[serde(default = "defaults::jpeg_quality")]
    pub jpeg_quality: u8,
    #[serde(default = "defaults::cache_control")]
    pub cache_control: String,
    /// The cached file's suffix (for images copied into the hot cache).
    #[serde(default = "default_suffix")]
    pub local_suffix: String,
    /// Memory for an image's small resolution levels (at most 4 MP each), decoded whole once
    /// and cropped by the requests of a view instead of each decoding its region; 0 turns it off.
    #[serde(default = "default_level_cache")]
    pub level_cache: ByteSize,
}

fn default_level_cache() -> ByteSize {
    ByteSize(128 << 20)
}

fn default_max_decode_pixels() -> u64 {
    64_000_000
}
fn default_suffix() -> String {
    ".jp2".into()
}

pub struct Render {
    images: IndexedImages,
    max_pixels: u64,
    max_decode_pixels: u64,
    jpeg_quality: u8,
    cache_control: HeaderValue,
    suffix: String,
    decodes: pipeline::Decodes,
    /// Where images not in a local folder are copied; none if they all are.
    cache: Option<Arc<HotCacheSlot>>,
    /// Small levels kept decoded (`level_cache`); none when off.
    levels: Option<DecodedLevels>,
}

impl Render {
    pub fn build(cfg: RenderConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let cache_control = defaults::output(&cfg.cache_control, cfg.jpeg_quality)?;
        let images = IndexedImages::build(&cfg.origin, &cfg.key, &cfg.request, cfg.version, ctx)?;
        let cache = match ctx.resource::<HotCacheSection>()?.slot() {
            Ok(slot) => Some(slot),
            Err(_) if images.origin.local_root().is_some() => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            images,
            max_pixels: cfg.max_pixels,
            max_decode_pixels: cfg.max_decode_pixels,
            jpeg_quality: cfg.jpeg_quality,
            cache_control,
            suffix: cfg.local_suffix,
            decodes: pipeline::Decodes::new(
                cfg.max_concurrent_decodes,
                cfg.decode_timeout.0,
                "render",
            ),
            cache,
            levels: DecodedLevels::new(cfg.level_cache.0),
        })
    }
}

impl Render {
    /// The image's file: in place, or the hot cache's copy.
    async fn local_file(&self, key: &str) -> Result<LocalFile, crate::resources::LeaseError> {
        let cache = self.cache.as_deref();
        LocalFile::of(cache, &self.images.origin, key, &self.suffix).await
    }

    /// The image's limits for this route: `max` (and `!w,h`) shrink to the largest output it
    /// serves, or to the largest of the image's `stored` reduced resolutions within that (see
    /// [`ImageLimits::within_stored`]), as its `info` route advertises.
    fn limits(
        &self,
        width: u32,
        height: u32,
        stored: impl IntoIterator<Item = (u32, u32)>,
    ) -> ImageLimits {
        ImageLimits {
            max_area: Some(self.max_pixels),
            max_width: Some(defaults::MAX_SIDE),
            ..ImageLimits::new(width, height)
        }
        .within_stored(stored)
    }

    /// The request against the image's `limits`: 400 with the reason when it does not fit.
    fn resolve(&self, iiif: &ImageRequest, limits: &ImageLimits) -> Result<Resolved, HttpError> {
        let resolved = iiif
            .resolve(self.images.version, limits)
            .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        if u64::from(resolved.width) * u64::from(resolved.height) > self.max_pixels {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "size: the output may have at most {} pixels",
                    self.max_pixels
                ),
            ));
        }
        Ok(resolved)
    }
}

impl Render {
    /// `area` (on the image's grid) decoded at `reduce` from the file, and rendered as `out`.
    /// A large area is decoded in bands (see `imaging::bands`).
    async fn decode_region(
        &self,
        local: LocalFile,
        indexed: &Indexed,
        reduce: u8,
        area: (u32, u32, u32, u32),
        out: tessera_render::Output,
    ) -> Result<Vec<u8>, ViewError> {
        let slot = self.decodes.slot().await?;
        let max_pixels = self.max_decode_pixels;
        let grid = bands::Grid::of(&indexed.index);
        slot.run(move || {
            let file = std::fs::File::open(local.path())
                .map_err(|e| ViewError::Corrupt(format!("cannot open the file: {e}")))?;
            let decoded = bands::decode_area(&file, reduce, area, grid, max_pixels);
            drop(local);
            tessera_render::render(&decoded?, None, &out)
                .map_err(|e| ViewError::Corrupt(e.to_string()))
        })
        .await
    }

    /// OpenJPEG builds a tile's structures whole, however small the region asked of it: a
    /// tile larger at `reduce` than `max_decode_pixels` is refused before anything is read.
    fn check_tiles(&self, indexed: &Indexed, reduce: u8) -> Result<(), ViewError> {
        let ix = &indexed.index;
        let shift = u32::from(reduce);
        let w = ceil_shift(ix.tile_width.min(ix.width), shift);
        let h = ceil_shift(ix.tile_height.min(ix.height), shift);
        if w * h > self.max_decode_pixels {
            return Err(ViewError::NotSupported(format!(
                "the image's tiles are {w}×{h} pixels at this resolution; this route decodes at most {} (max_decode_pixels): ask for a smaller size",
                self.max_decode_pixels
            )));
        }
        Ok(())
    }
}

/// `value / 2^shift`, rounded up, as JPEG 2000 maps coordinates to a reduced resolution.
fn ceil_shift(value: u32, shift: u32) -> u64 {
    // NL may be 32: a plain `1 << 32` would overflow.
    let div = 1u64 << shift.min(63);
    u64::from(value).div_ceil(div)
}

/// The largest reduction that still decodes `area` (x0, y0, x1, y1 on the image's grid) at
/// least as large as the output: its size on the reduced grid, as OpenJPEG counts it, is no
/// smaller than the output, and the output is at most 1 % larger than the region shrunk by
/// 2^reduce. The 1 % is the last pixel of an odd edge: the last tile of a 9601-pixel-wide image
/// at scale factor 2 is 705 pixels for 704.5, decoded at reduce 1 rather than from the full
/// resolution; a region of a few pixels is never stretched from a coarser level.
fn reduce_for(out: (u32, u32), area: (u32, u32, u32, u32), levels: u8) -> u8 {
    let (x0, y0, x1, y1) = area;
    let (want_w, want_h) = (u64::from(out.0), u64::from(out.1));
    // `want` is at most 1 % larger than `side / 2^shift`.
    let close = |want: u64, side: u32, shift: u32| {
        (u128::from(want) * 100) << shift <= u128::from(side) * 101
    };
    let mut reduce = 0u8;
    while reduce < levels {
        let next = u32::from(reduce) + 1;
        let w = ceil_shift(x1, next) - ceil_shift(x0, next);
        let h = ceil_shift(y1, next) - ceil_shift(y0, next);
        if w < want_w
            || h < want_h
            || !close(want_w, x1 - x0, next)
            || !close(want_h, y1 - y0, next)
        {
            break;
        }
        reduce += 1;
    }
    reduce
}

#[async_trait]
impl Handler for Render {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        metrics::count_failure("render", self.answer(req).await)
    }

    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        self.images
            .canonical_name(req, |i| {
                self.limits(i.index.width, i.index.height, i.index.reduced_sizes())
            })
            .await
    }
}

impl Render {
    async fn answer(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let Found { iiif, key, indexed } = match self.images.lookup(req.captures).await? {
            Lookup::Jp2(found) => found,
            Lookup::Raster { iiif, key, format } => {
                return self.raster(req, iiif, key, format).await
            }
        };
        let (origin_name, version) = (&self.images.origin_name, self.images.version);
        let ix = &indexed.index;
        let limits = self.limits(ix.width, ix.height, ix.reduced_sizes());
        let resolved = self.resolve(&iiif, &limits)?;
        let failed = |e: Failure| e.answer(origin_name, &key);
        let out =
            pipeline::output(&resolved, self.jpeg_quality).map_err(|e| failed(Failure::View(e)))?;
        let canonical = resolved.canonical(version, &limits);
        let tag = answer::etag(&[
            origin_name,
            &key,
            indexed.etag.as_deref().unwrap_or(""),
            &canonical,
            "render",
        ]);
        if answer::matches_etag(req, &tag) {
            metrics::answered("render", "not_modified");
            return Ok(HandlerAction::Respond(answer::not_modified(&tag)));
        }
        let region = resolved.region;
        let area = (
            indexed.index.x0 + region.x,
            indexed.index.y0 + region.y,
            indexed.index.x0 + region.x + region.w,
            indexed.index.y0 + region.y + region.h,
        );
        let out_size = (resolved.width, resolved.height);
        let reduce = reduce_for(out_size, area, indexed.index.levels);
        self.check_tiles(&indexed, reduce)
            .map_err(|e| failed(Failure::View(e)))?;
        let local = self
            .local_file(&key)
            .await
            .map_err(|e| failed(Failure::Copy(e)))?;
        let body = match self.kept_level(&key, &indexed, &local, reduce) {
            Some((levels, level)) => {
                let cropped = self
                    .crop_level(levels, level, &local, &indexed, reduce, area, out)
                    .await;
                match cropped {
                    // The file does not decode whole (cut short, damaged): its regions may.
                    Err(ViewError::Corrupt(_)) => {
                        self.decode_region(local, &indexed, reduce, area, out).await
                    }
                    other => other,
                }
            }
            None => self.decode_region(local, &indexed, reduce, area, out).await,
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                if matches!(e, ViewError::Corrupt(_)) {
                    // The file may have changed under its index: rebuild it next time.
                    self.images.index.forget(&self.images.origin, &key).await;
                }
                return Err(failed(Failure::View(e)));
            }
        };
        metrics::answered("render", "jp2");
        Ok(HandlerAction::Respond(answer::image(
            body,
            resolved.format,
            version,
            &self.cache_control,
            &tag,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::reduce_for;

    #[test]
    fn a_tile_decodes_at_the_level_of_its_scale_factor() {
        // An inner 1024² tile at scale factor 2, and the last, odd one of a 9601-wide image.
        assert_eq!(reduce_for((512, 512), (1024, 0, 2048, 1024), 5), 1);
        assert_eq!(reduce_for((705, 512), (8192, 0, 9601, 1024), 5), 1);
        // The whole 9600×6400 image as its first level, and one pixel more than that.
        assert_eq!(reduce_for((4800, 3200), (0, 0, 9600, 6400), 5), 1);
        assert_eq!(reduce_for((4801, 3200), (0, 0, 9600, 6400), 5), 0);
        assert_eq!(
            reduce_for((1, 1), (0, 0, 9600, 6400), 5),
            5,
            "clamped to the levels"
        );
    }
}
