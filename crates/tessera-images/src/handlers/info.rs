//! `info`: info.json for IIIF 2 and 3 from the stored JP2 header index; no image server is
//! asked. The image's base URI (the route's path without `/info.json`) answers 303 with the
//! absolute info.json URL, as the spec asks.

use crate::imaging::keys::KeyTemplate;
use crate::imaging::pipeline::ViewError;
use crate::imaging::raster::{self, Format as RasterFormat, RasterInfo};
use crate::imaging::request;
use crate::imaging::{answer, defaults, Failure};
use crate::metrics;
use crate::names::info_base;
use crate::resources::IndexError;
use crate::resources::{HotCacheSection, HotCacheSlot, ImageIndex, IndexStore, LocalFile, Origins};
use async_trait::async_trait;
use http::{header, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use tessera_iiif::{
    pyramid_levels, pyramid_sizes, scale_factors, Format, ImageInfo, ImageLimits, TileSpec, Version,
};
use tessera_jp2::Jp2Index;
use tessera_origin::Origin;
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheName, Handler, HandlerAction, HttpError, LocalResponse,
    RequestContext, RequestInfo,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InfoConfig {
    /// The origin (under `origins:`) holding the JP2s.
    pub origin: String,
    /// The object key, from the route's captures, e.g. `{customer}/{space}/{image}`.
    pub key: String,
    /// IIIF Image API version: 2 or 3.
    #[serde(default = "defaults::version")]
    pub version: u8,
    /// Compliance level claimed in `profile` (what the routes serving this image support).
    #[serde(default = "two")]
    pub level: u8,
    /// Tile size offered for images stored as one tile (tiled images offer their own tiles).
    #[serde(default = "default_tile")]
    pub tile_size: u32,
    /// Formats beyond `jpg` to list, e.g. `[png, webp]`.
    #[serde(default)]
    pub extra_formats: Vec<String>,
    /// Advertised as `maxArea`: the largest output, in pixels, of the routes that serve these
    /// images. Default: `render`'s default `max_pixels`; keep the two equal.
    #[serde(default = "defaults::max_pixels")]
    pub max_area: u64,
    /// Advertised as `maxWidth` (and, unless `max_height` is set, the height limit too).
    /// Default: 65535, the widest JPEG.
    #[serde(default = "defaults::max_side")]
    pub max_width: u32,
    /// Advertised as `maxHeight`; default: `max_width`.
    #[serde(default)]
    pub max_height: Option<u32>,
    /// Also start copying the image into the hot cache, in the background, for the tiles a
    /// viewer asks for next (`orchestrate` or `render` routes of the same images).
    #[serde(default)]
    pub prefetch: Option<PrefetchConfig>,
    #[serde(default = "defaults::cache_control")]
    pub cache_control: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefetchConfig {
    /// The local file's suffix: the `local_suffix` of the routes that serve the tiles.
    #[serde(default = "jp2")]
    pub suffix: String,
}

fn jp2() -> String {
    ".jp2".into()
}

fn two() -> u8 {
    2
}
fn default_tile() -> u32 {
    512
}

pub struct Info {
    origin: Arc<dyn Origin>,
    key: KeyTemplate,
    version: Version,
    level: u8,
    tile_size: u32,
    extra_formats: Vec<Format>,
    /// `maxWidth`, `maxHeight`, `maxArea` (the image's own size is filled in per request, and
    /// a large image's `maxArea` may be its largest stored resolution within them).
    limits: ImageLimits,
    cache_control: HeaderValue,
    index: Arc<IndexStore>,
    /// The hot cache, where JPEG, PNG and TIFF masters not in a local folder are read from
    /// (none: they are 415), and where `prefetch` copies images.
    cache: Option<Arc<HotCacheSlot>>,
    /// The local copies' suffix: the prefetch suffix, which is the tiles routes'.
    suffix: String,
    prefetch: bool,
}

impl Info {
    pub fn build(cfg: InfoConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let extra_formats = cfg
            .extra_formats
            .iter()
            .enumerate()
            .map(|(i, f)| {
                f.parse::<Format>().map_err(|e| {
                    BuildError::new(e.to_string())
                        .at(&i.to_string())
                        .at("extra_formats")
                })
            })
            .collect::<Result<_, _>>()?;
        if cfg.tile_size < 64 {
            return Err(BuildError::new("must be at least 64").at("tile_size"));
        }
        let positive = |v: u64, at: &str| {
            if v == 0 {
                Err(BuildError::new("must be at least 1").at(at))
            } else {
                Ok(())
            }
        };
        positive(cfg.max_area, "max_area")?;
        positive(cfg.max_width.into(), "max_width")?;
        positive(cfg.max_height.map_or(1, u64::from), "max_height")?;
        Ok(Self {
            origin: ctx
                .resource::<Origins>()?
                .get(&cfg.origin)
                .map_err(|e| e.at("origin"))?,
            key: KeyTemplate::build(&cfg.key, ctx).map_err(|e| e.at("key"))?,
            version: request::version(cfg.version)?,
            level: cfg.level.min(2),
            tile_size: cfg.tile_size,
            extra_formats,
            limits: ImageLimits {
                max_width: Some(cfg.max_width),
                max_height: cfg.max_height,
                max_area: Some(cfg.max_area),
                ..ImageLimits::new(0, 0)
            },
            cache_control: HeaderValue::from_str(&cfg.cache_control)
                .map_err(|_| BuildError::new("not a valid header value").at("cache_control"))?,
            index: ctx.resource::<ImageIndex>()?.store.clone(),
            cache: match &cfg.prefetch {
                // Prefetching needs the hot cache; reading other masters only uses it if there.
                Some(_) => Some(
                    ctx.resource::<HotCacheSection>()?
                        .slot()
                        .map_err(|e| e.at("prefetch"))?,
                ),
                None => ctx
                    .resource::<HotCacheSection>()
                    .ok()
                    .and_then(|section| section.slot().ok()),
            },
            suffix: cfg.prefetch.as_ref().map_or_else(jp2, |p| p.suffix.clone()),
            prefetch: cfg.prefetch.is_some(),
        })
    }
}

/// What info.json says of an image's size and structure, whatever its format.
struct Shape {
    width: u32,
    height: u32,
    /// The tiles it is stored in, if more than one.
    tile: Option<(u32, u32)>,
    /// Resolutions offered: scale factors 1 … 2^(resolutions − 1).
    resolutions: u32,
    /// The reduced sizes, smallest first (the full size is not listed).
    sizes: Vec<(u32, u32)>,
    /// Whether `sizes` are stored in the file (a JP2's levels, a TIFF's pages), so decoded
    /// from there rather than from the full size.
    stored: bool,
}

impl Shape {
    fn of_jp2(ix: &Jp2Index) -> Self {
        Self {
            width: ix.width,
            height: ix.height,
            tile: (ix.tiles_x * ix.tiles_y > 1).then_some((ix.tile_width, ix.tile_height)),
            // NL decomposition levels give NL + 1 resolutions.
            resolutions: u32::from(ix.levels) + 1,
            sizes: ix.reduced_sizes().rev().collect(),
            stored: true,
        }
    }

    /// A TIFF pyramid offers its pages; a single picture, halvings down to about a tile.
    fn of_raster(info: &RasterInfo, tile_size: u32) -> Self {
        let (width, height) = (info.width, info.height);
        let (resolutions, sizes) = if info.pages.len() > 1 {
            let sizes = info.pages[1..].iter().rev().map(|p| (p.width, p.height));
            (info.pages.len() as u32, sizes.collect())
        } else {
            let levels = pyramid_levels(width, height, tile_size / 2);
            let mut sizes = pyramid_sizes(width, height, levels);
            sizes.pop(); // the full size, which comes last
            (levels, sizes)
        };
        Self {
            width,
            height,
            tile: info.pages[0].tile,
            resolutions,
            sizes,
            stored: info.pages.len() > 1,
        }
    }
}

impl Info {
    /// A JPEG, PNG or TIFF master: its header, read from the local copy in the hot cache.
    async fn raster_shape(&self, key: &str, format: RasterFormat) -> Result<Shape, HttpError> {
        let origin = self.origin.describe();
        if self.cache.is_none() && self.origin.local_root().is_none() {
            // Neither in place nor copied: this route cannot read it.
            return Err(Failure::Header(IndexError::Raster(format)).answer(&origin, key));
        }
        let local = LocalFile::of(self.cache.as_deref(), &self.origin, key, &self.suffix)
            .await
            .map_err(|e| Failure::Copy(e).answer(&origin, key))?;
        let path = local.path().to_path_buf();
        let probed = tokio::task::spawn_blocking(move || raster::probe(&path, format))
            .await
            .map_err(|_| Failure::View(ViewError::DecoderFailed).answer(&origin, key))?
            .map_err(|e| Failure::View(e).answer(&origin, key))?;
        Ok(Shape::of_raster(&probed, self.tile_size))
    }
}

#[async_trait]
impl Handler for Info {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        metrics::count_failure("info", self.answer(req).await)
    }

    /// The request as sent (the `id` depends on the host), about its image.
    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        let base = info_base(req.header.uri.path());
        Some(CacheName::of_request_about(req, Some(base)))
    }
}

impl Info {
    async fn answer(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let path = req.header.uri.path().to_string();
        if !path.ends_with("/info.json") {
            // The image's base URI: send the client to its info.json.
            let location = format!(
                "{}{}/info.json",
                req.public_base,
                path.trim_end_matches('/')
            );
            let location = HeaderValue::from_str(&location)
                .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "bad path"))?;
            metrics::answered("info", "redirect");
            return Ok(HandlerAction::Respond(
                LocalResponse::new(StatusCode::SEE_OTHER)
                    .with_header(header::LOCATION, location)
                    .with_header(
                        header::ACCESS_CONTROL_ALLOW_ORIGIN,
                        HeaderValue::from_static("*"),
                    ),
            ));
        }
        let key = self.key.key(req.captures)?;
        let (shape, kind) = match self.index.get(&self.origin, &key).await {
            Ok(indexed) => (Shape::of_jp2(&indexed.index), "jp2"),
            Err(IndexError::Raster(format)) => (self.raster_shape(&key, format).await?, "other"),
            Err(e) => return Err(Failure::Header(e).answer(&self.origin.describe(), &key)),
        };
        let mut info = ImageInfo::new(answer::image_id(req), shape.width, shape.height, self.level);
        let factors = scale_factors(shape.resolutions);
        info.tiles = vec![match shape.tile {
            Some((width, height)) => TileSpec {
                width,
                height: (height != width).then_some(height),
                scale_factors: factors,
            },
            None => TileSpec {
                width: self.tile_size,
                height: None,
                scale_factors: factors,
            },
        }];
        // The route's limits, or a large image's largest stored resolution within them, as the
        // routes that serve it resolve `max` (see `ImageLimits::within_stored`).
        let stored = shape.sizes.iter().copied().filter(|_| shape.stored);
        let limits = &ImageLimits {
            width: shape.width,
            height: shape.height,
            ..self.limits
        }
        .within_stored(stored);
        info.max_width = limits.max_width;
        info.max_height = limits.max_height;
        info.max_area = limits.max_area;
        // "Servers MUST ensure that sizes … are within any size limits expressed."
        info.sizes = shape
            .sizes
            .into_iter()
            .filter(|&(w, h)| limits.allows(w, h))
            .collect();
        info.extra_formats = self.extra_formats.clone();
        if let Some(slot) = self.cache.as_ref().filter(|_| self.prefetch) {
            slot.prefetch(&self.origin, &key, &self.suffix);
        }
        metrics::answered("info", kind);
        Ok(HandlerAction::Respond(answer::info_json(
            &info,
            self.version,
            req,
            &self.cache_control,
        )?))
    }
}
