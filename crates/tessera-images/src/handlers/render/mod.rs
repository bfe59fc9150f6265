//! `render`: any IIIF request for an image, decoded in process from the hot cache — for
//! deployments without IIPImage.
//!
//! The image is copied into the hot cache once (as for `orchestrate`), then each request
//! decodes only its region, at the lowest resolution that still covers the output size
//! (OpenJPEG region decode), and resizes to the exact IIIF size. The file is memory-mapped, so
//! a tile of a large tiled image reads only the pages of the tiles it needs. Work is bounded: a
//! limit on output pixels and on decodes running at once.

use crate::imaging::pipeline::{self, ViewError};
use crate::imaging::{answer, defaults, Failure, Found, IndexedImages, Lookup};
use crate::resources::{HotCacheSection, HotCacheSlot, Indexed};
use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use tessera_iiif::{ImageLimits, ImageRequest, Resolved};
use tessera_proxy::config::Dur;
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheName, Handler, HandlerAction, HttpError, RequestContext,
    RequestInfo,
};

mod raster;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    /// The origin (under `origins:`) the images are copied from.
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
    /// The cached file's suffix.
    #[serde(default = "default_suffix")]
    pub local_suffix: String,
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
    cache: Arc<HotCacheSlot>,
}

impl Render {
    pub fn build(cfg: RenderConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let cache_control = defaults::output(&cfg.cache_control, cfg.jpeg_quality)?;
        Ok(Self {
            images: IndexedImages::build(&cfg.origin, &cfg.key, &cfg.request, cfg.version, ctx)?,
            max_pixels: cfg.max_pixels,
            max_decode_pixels: cfg.max_decode_pixels,
            jpeg_quality: cfg.jpeg_quality,
            cache_control,
            suffix: cfg.local_suffix,
            decodes: pipeline::Decodes::new(cfg.max_concurrent_decodes, cfg.decode_timeout.0),
            cache: ctx.resource::<HotCacheSection>()?.slot()?,
        })
    }
}

impl Render {
    /// The image's limits for this route: `max` (and `!w,h`) shrink to the largest output it
    /// serves.
    fn limits(&self, width: u32, height: u32) -> ImageLimits {
        ImageLimits {
            max_area: Some(self.max_pixels),
            max_width: Some(defaults::MAX_SIDE),
            ..ImageLimits::new(width, height)
        }
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
/// least as large as the output: the region shrunk by 2^reduce is no smaller than the output,
/// and so is its size on the reduced grid as OpenJPEG counts it (where a region of a few
/// pixels may round away to nothing).
fn reduce_for(r: &Resolved, area: (u32, u32, u32, u32), levels: u8) -> u8 {
    let (x0, y0, x1, y1) = area;
    let (want_w, want_h) = (u64::from(r.width), u64::from(r.height));
    let mut reduce = 0u8;
    while reduce < levels {
        let next = u32::from(reduce) + 1;
        let shrunk_enough = (want_w << next.min(63)) <= u64::from(x1 - x0)
            && (want_h << next.min(63)) <= u64::from(y1 - y0);
        let w = ceil_shift(x1, next) - ceil_shift(x0, next);
        let h = ceil_shift(y1, next) - ceil_shift(y0, next);
        if !shrunk_enough || w < want_w || h < want_h {
            break;
        }
        reduce += 1;
    }
    reduce
}

#[async_trait]
impl Handler for Render {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let Found { iiif, key, indexed } = match self.images.lookup(req.captures).await? {
            Lookup::Jp2(found) => found,
            Lookup::Raster { iiif, key, format } => {
                return self.raster(req, iiif, key, format).await
            }
        };
        let (origin_name, version) = (&self.images.origin_name, self.images.version);
        let limits = self.limits(indexed.index.width, indexed.index.height);
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
            return Ok(HandlerAction::Respond(answer::not_modified(&tag)));
        }
        let region = resolved.region;
        let area = (
            indexed.index.x0 + region.x,
            indexed.index.y0 + region.y,
            indexed.index.x0 + region.x + region.w,
            indexed.index.y0 + region.y + region.h,
        );
        let reduce = reduce_for(&resolved, area, indexed.index.levels);
        self.check_tiles(&indexed, reduce)
            .map_err(|e| failed(Failure::View(e)))?;
        let lease = self
            .cache
            .lease(&self.images.origin, &key, &self.suffix)
            .await
            .map_err(|e| failed(Failure::Copy(e)))?;
        let slot = self
            .decodes
            .slot()
            .await
            .map_err(|e| failed(Failure::View(e)))?;
        let max_pixels = self.max_decode_pixels;
        let body = slot
            .run(move || {
                let file = std::fs::File::open(lease.path())
                    .map_err(|e| ViewError::Corrupt(format!("cannot open the cached file: {e}")))?;
                // SAFETY: the lease pins the file, so the cache neither deletes nor replaces it
                // while it is mapped, and cached files are never written in place (a copy is
                // written to a temporary file and renamed).
                #[allow(unsafe_code)]
                let map = unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|e| ViewError::Corrupt(format!("cannot map the cached file: {e}")))?;
                let result =
                    pipeline::decode_and_render(&map, reduce, Some(area), &out, max_pixels);
                drop(lease);
                result
            })
            .await;
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
        Ok(HandlerAction::Respond(answer::image(
            body,
            resolved.format,
            version,
            &self.cache_control,
            &tag,
        )))
    }

    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        self.images
            .canonical_name(req, |i| self.limits(i.index.width, i.index.height))
            .await
    }
}
