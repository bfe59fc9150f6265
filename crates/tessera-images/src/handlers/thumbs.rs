//! `thumbs`: IIIF requests answered from pre-made thumbnails in the origin, never from a JP2.
//!
//! Thumbnails live under a key prefix, by default in DLCS's layout: `{prefix}/s.json` lists
//! the sizes, `{prefix}/open/{longest_edge}.jpg` (and `auth/…` for auth-only sizes) holds them.
//! A request for the full image, unrotated, in colour, as JPEG is answered with a listed
//! thumbnail when one has the size asked for, or by resizing the next larger one (see
//! [`crate::thumbs::choice`] for the rules). Any other request is handed to the `otherwise`
//! route, or answered 404, before the origin is asked anything. `{iiif}` = `info.json` answers
//! a level 0 info.json listing the sizes.

use crate::auth::Authorised;
use crate::imaging::failure::{Failure, ThumbnailError};
use crate::imaging::keys::KeyTemplate;
use crate::imaging::pipeline::{self, ViewError};
use crate::imaging::request::{self, RequestTemplate};
use crate::imaging::{answer, defaults};
use crate::names::{image_base, info_base};
use crate::resources::Origins;
use crate::thumbs::{choose, Choice, ListingError, Listings, Thumb, ThumbSizes};
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use prometheus::{register_int_counter_vec_with_registry, IntCounterVec};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::LazyLock;
use tessera_iiif::{Format, ImageInfo, ImageRequest, Quality, Region, Version};
use tessera_origin::{Origin, OriginError};
use tessera_proxy::config::{ByteSize, Dur};
use tessera_proxy::metrics::registry;
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheName, Handler, HandlerAction, HttpError, LocalResponse,
    RequestContext, RequestInfo, StreamedResponse,
};
use tessera_render::{decode_jpeg, render, Output};

/// Where an object name puts the thumbnail's longest side.
const EDGE: &str = "{longest_edge}";
/// The largest thumbnail decoded for a resize, in pixels.
const MAX_DECODE_PIXELS: u64 = 64_000_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThumbsConfig {
    /// The origin (under `origins:`) holding the thumbnails.
    pub origin: String,
    /// The key prefix of one image's thumbnails, e.g. `thumbs/{customer}/{space}/{image}`.
    pub key: String,
    /// What renders to `region/size/rotation/quality.format` (or `info.json`).
    #[serde(default = "defaults::request")]
    pub request: String,
    /// IIIF Image API version: 2 or 3.
    #[serde(default = "defaults::version")]
    pub version: u8,
    /// The size listing, under the prefix.
    #[serde(default = "default_sizes_object")]
    pub sizes_object: String,
    /// An open thumbnail, under the prefix; `{longest_edge}` is its longest side.
    #[serde(default = "default_open_object")]
    pub open_object: String,
    /// An auth-only thumbnail, under the prefix.
    #[serde(default = "default_auth_object")]
    pub auth_object: String,
    /// How much larger than the largest thumbnail an answer may be, made by upscaling it
    /// (1.0: never upscale).
    #[serde(default = "default_max_upscale")]
    pub max_upscale: f64,
    /// The route to hand requests to that no thumbnail answers; without it they get 404.
    #[serde(default)]
    pub otherwise: Option<String>,
    /// How long a size listing is kept before it is read again.
    #[serde(default = "default_sizes_ttl")]
    pub sizes_ttl: Dur,
    /// The most size listings kept.
    #[serde(default = "default_sizes_capacity")]
    pub sizes_capacity: u64,
    /// The largest thumbnail read into memory to be resized; larger sources answer 502.
    /// Thumbnails served as stored are streamed, whatever their size.
    #[serde(default = "default_max_thumbnail")]
    pub max_thumbnail_bytes: ByteSize,
    /// JPEG quality of resized answers, 1–100.
    #[serde(default = "defaults::jpeg_quality")]
    pub jpeg_quality: u8,
    /// For open sizes; auth-only sizes are sent with `private` instead of `public`.
    #[serde(default = "defaults::cache_control")]
    pub cache_control: String,
    /// Resizes running at once for this route; more wait.
    #[serde(default = "defaults::decodes")]
    pub max_concurrent_resizes: usize,
    /// How long one resize (decode, resize, encode) may take before the request answers 504.
    #[serde(default = "defaults::decode_timeout")]
    pub decode_timeout: Dur,
}

fn default_sizes_object() -> String {
    "s.json".into()
}
fn default_open_object() -> String {
    format!("open/{EDGE}.jpg")
}
fn default_auth_object() -> String {
    format!("auth/{EDGE}.jpg")
}
fn default_max_upscale() -> f64 {
    1.1
}
fn default_sizes_ttl() -> Dur {
    Dur::secs(300)
}
fn default_sizes_capacity() -> u64 {
    100_000
}
fn default_max_thumbnail() -> ByteSize {
    ByteSize(16 << 20)
}

pub struct Thumbs {
    origin: Arc<dyn Origin>,
    origin_name: String,
    key: KeyTemplate,
    request: RequestTemplate,
    version: Version,
    sizes_object: String,
    open_object: String,
    auth_object: String,
    max_upscale: f64,
    otherwise: Option<String>,
    max_bytes: u64,
    jpeg_quality: u8,
    public: HeaderValue,
    private: HeaderValue,
    resizes: pipeline::Decodes,
    listings: Listings,
}

/// `cache_control` for answers only authorised requests may see: never stored by shared
/// caches.
fn private_cache_control(cache_control: &str) -> String {
    if cache_control.contains("public") {
        cache_control.replace("public", "private")
    } else if cache_control.contains("private") || cache_control.contains("no-store") {
        cache_control.to_string()
    } else {
        format!("private, {cache_control}")
    }
}

fn object_name(text: &str, field: &str) -> Result<String, BuildError> {
    if !text.contains(EDGE) {
        return Err(BuildError::new(format!("must contain {EDGE}")).at(field));
    }
    tessera_origin::validate_key(&text.replace(EDGE, "1"))
        .map_err(|e| BuildError::new(e.0).at(field))?;
    Ok(text.to_string())
}

impl Thumbs {
    pub fn build(cfg: ThumbsConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let public = defaults::output(&cfg.cache_control, cfg.jpeg_quality)?;
        let private = HeaderValue::from_str(&private_cache_control(&cfg.cache_control))
            .map_err(|_| BuildError::new("not a valid header value").at("cache_control"))?;
        if !(1.0..=4.0).contains(&cfg.max_upscale) {
            return Err(BuildError::new("must be between 1.0 and 4.0").at("max_upscale"));
        }
        tessera_origin::validate_key(&cfg.sizes_object)
            .map_err(|e| BuildError::new(e.0).at("sizes_object"))?;
        let origin = ctx
            .resource::<Origins>()?
            .get(&cfg.origin)
            .map_err(|e| e.at("origin"))?;
        Ok(Self {
            origin_name: origin.describe(),
            origin,
            key: KeyTemplate::build(&cfg.key, ctx).map_err(|e| e.at("key"))?,
            request: RequestTemplate::build(&cfg.request, ctx)?,
            version: request::version(cfg.version)?,
            sizes_object: cfg.sizes_object,
            open_object: object_name(&cfg.open_object, "open_object")?,
            auth_object: object_name(&cfg.auth_object, "auth_object")?,
            max_upscale: cfg.max_upscale,
            otherwise: cfg
                .otherwise
                .as_deref()
                .map(|r| ctx.route(r).map_err(|e| e.at("otherwise")))
                .transpose()?,
            max_bytes: cfg.max_thumbnail_bytes.0,
            jpeg_quality: cfg.jpeg_quality,
            public,
            private,
            resizes: pipeline::Decodes::new(
                cfg.max_concurrent_resizes,
                cfg.decode_timeout.0,
                "thumbs",
            ),
            listings: Listings::new(cfg.sizes_ttl.0, cfg.sizes_capacity),
        })
    }

    fn count(&self, req: &RequestContext<'_>, outcome: &str) {
        THUMBS.with_label_values(&[req.route, outcome]).inc();
    }

    /// Hand the request on, or 404 saying why.
    fn elsewhere(&self, req: &RequestContext<'_>, why: &str) -> Result<HandlerAction, HttpError> {
        self.count(req, "otherwise");
        match &self.otherwise {
            Some(route) => Ok(HandlerAction::Route(route.clone())),
            None => Err(HttpError::new(StatusCode::NOT_FOUND, why)),
        }
    }

    fn thumb_key(&self, prefix: &str, t: &Thumb) -> String {
        let name = if t.auth {
            &self.auth_object
        } else {
            &self.open_object
        };
        format!(
            "{prefix}/{}",
            name.replace(EDGE, &t.longest_edge().to_string())
        )
    }

    /// Read a whole thumbnail to resize it, up to `max_thumbnail_bytes`.
    async fn read(&self, key: &str) -> Result<Bytes, ThumbnailError> {
        let body = self.origin.read_range(key, 0..self.max_bytes + 1).await?;
        if body.len() as u64 > self.max_bytes {
            return Err(ThumbnailError::TooLarge(self.max_bytes));
        }
        Ok(body)
    }

    fn failed(&self, e: Failure, key: &str) -> HttpError {
        e.answer(&self.origin_name, key)
    }

    async fn listing(&self, prefix: &str) -> Result<Option<Arc<ThumbSizes>>, HttpError> {
        let key = format!("{prefix}/{}", self.sizes_object);
        match self.listings.get(&self.origin, &key).await {
            Ok(sizes) => Ok(Some(sizes)),
            Err(ListingError::Missing) => Ok(None),
            Err(e) => Err(self.failed(Failure::Listing(e), &key)),
        }
    }

    async fn info(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let prefix = self.key.key(req.captures)?;
        let authorised = Authorised::is_on(req.extensions);
        let Some(sizes) = self.listing(&prefix).await? else {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "no thumbnails for this image",
            ));
        };
        let visible = sizes.visible(authorised);
        let Some(largest) = visible.last() else {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "no thumbnails for this image",
            ));
        };
        let mut info = ImageInfo::new(answer::image_id(req), largest.width, largest.height, 0);
        info.sizes = visible.iter().map(|t| (t.width, t.height)).collect();
        let cache_control = if visible.iter().any(|t| t.auth) {
            &self.private
        } else {
            &self.public
        };
        let resp = answer::info_json(&info, self.version, req, cache_control)?;
        self.count(req, "info");
        Ok(HandlerAction::Respond(resp))
    }
}

/// Why a request is not for a thumbnail, if it is not.
fn not_a_thumbnail(r: &ImageRequest) -> Option<&'static str> {
    if r.region != Region::Full {
        Some("thumbnails are of the full region only")
    } else if !r.rotation.is_identity() {
        Some("thumbnails are not rotated")
    } else if !matches!(r.quality, Quality::Default | Quality::Color) {
        Some("thumbnails are in colour only")
    } else if r.format != Format::Jpg {
        Some("thumbnails are JPEGs only")
    } else {
        None
    }
}

/// A strong ETag for an answer made from `source` (its bytes) at `width`×`height`.
fn etag_for(source: &[u8], width: u32, height: u32, quality: u8) -> String {
    let size = format!("{width}x{height}q{quality}");
    answer::etag_of(&[source, size.as_bytes()])
}

#[async_trait]
impl Handler for Thumbs {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        if self.request.text(req.captures) == "info.json" {
            return self.info(req).await;
        }
        let iiif = self.request.parse(self.version, req.captures)?;
        if let Some(why) = not_a_thumbnail(&iiif) {
            return self.elsewhere(req, why);
        }
        let prefix = self.key.key(req.captures)?;
        let Some(sizes) = self.listing(&prefix).await? else {
            return self.elsewhere(req, "no thumbnails for this image");
        };
        let choice = self
            .choice(&sizes, &iiif, req.extensions)
            .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let (from, target) = match choice {
            Choice::Exact(t) => (t, None),
            Choice::Resize {
                from,
                width,
                height,
            } => (from, Some((width, height))),
            Choice::Beyond => return self.elsewhere(req, "no thumbnail of this size"),
            Choice::NeedsAuth => {
                self.count(req, "unauthorised");
                return Ok(HandlerAction::Respond(
                    LocalResponse::text(StatusCode::UNAUTHORIZED, "this size needs authorisation")
                        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
                ));
            }
        };
        let key = self.thumb_key(&prefix, &from);
        let cache_control = if from.auth {
            &self.private
        } else {
            &self.public
        };
        let Some((width, height)) = target else {
            return self.exact(req, &key, cache_control).await;
        };
        let source = match self.read(&key).await {
            Ok(b) => b,
            Err(ThumbnailError::Origin(OriginError::NotFound)) => {
                tracing::warn!(origin = %self.origin_name, key, "a listed thumbnail is missing");
                return self.elsewhere(req, "no thumbnail of this size");
            }
            Err(e) => return Err(self.failed(Failure::Thumbnail(e), &key)),
        };
        let etag = etag_for(&source, width, height, self.jpeg_quality);
        if answer::matches_etag(req, &etag) {
            self.count(req, "not_modified");
            return Ok(HandlerAction::Respond(answer::not_modified(&etag)));
        }
        let body = self.resize(source, width, height, &key).await?;
        let upscaled = width > from.width || height > from.height;
        self.count(req, if upscaled { "upscaled" } else { "resized" });
        Ok(HandlerAction::Respond(answer::image_at_level(
            body,
            Format::Jpg,
            self.version,
            0,
            cache_control,
            &etag,
        )))
    }

    /// Thumbnail requests by what answers them: the thumbnail served as stored, or the
    /// thumbnail and the size it is resized to. Every spelling that picks the same gets the
    /// same bytes, so they share one answer. Anything else as sent.
    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        let path = req.header.uri.path();
        if self.request.text(req.captures) == "info.json" {
            return Some(CacheName::of_request_about(req, Some(info_base(path))));
        }
        let iiif = self.request.parse(self.version, req.captures).ok()?;
        let as_sent = || Some(CacheName::of_request_about(req, image_base(path)));
        if not_a_thumbnail(&iiif).is_some() {
            return as_sent();
        }
        let prefix = self.key.key(req.captures).ok()?;
        // Failures are logged when the handler meets them, not here too.
        let listing = format!("{prefix}/{}", self.sizes_object);
        let Ok(sizes) = self.listings.get(&self.origin, &listing).await else {
            return as_sent();
        };
        let choice = self.choice(&sizes, &iiif, req.extensions).ok()?;
        let base = image_base(path)?;
        let answer = match choice {
            Choice::Exact(t) => self.thumb_key(&prefix, &t),
            Choice::Resize {
                from,
                width,
                height,
            } => format!("{} at {width}x{height}", self.thumb_key(&prefix, &from)),
            Choice::Beyond | Choice::NeedsAuth => return as_sent(),
        };
        Some(CacheName::about(base, &format!("thumbnail {answer}")))
    }
}

impl Thumbs {
    /// What answers `iiif` among `sizes`, for a request authorised or not.
    fn choice(
        &self,
        sizes: &ThumbSizes,
        iiif: &ImageRequest,
        extensions: &http::Extensions,
    ) -> Result<Choice, tessera_iiif::IiifError> {
        let authorised = Authorised::is_on(extensions);
        choose(
            sizes,
            &iiif.size,
            self.version,
            authorised,
            self.max_upscale,
        )
    }

    /// A thumbnail of the asked size, streamed from the origin as stored, with its length and
    /// an ETag made from the object's: no byte is held in memory longer than it takes to send.
    async fn exact(
        &self,
        req: &mut RequestContext<'_>,
        key: &str,
        cache_control: &HeaderValue,
    ) -> Result<HandlerAction, HttpError> {
        let (meta, body) = match self.origin.open(key).await {
            Ok(opened) => opened,
            Err(OriginError::NotFound) => {
                tracing::warn!(origin = %self.origin_name, key, "a listed thumbnail is missing");
                return self.elsewhere(req, "no thumbnail of this size");
            }
            Err(e) => return Err(self.failed(Failure::Thumbnail(e.into()), key)),
        };
        let version = meta.etag.unwrap_or_else(|| meta.size.to_string());
        let etag = answer::etag(&[&self.origin_name, key, &version]);
        if answer::matches_etag(req, &etag) {
            self.count(req, "not_modified");
            return Ok(HandlerAction::Respond(answer::not_modified(&etag)));
        }
        self.count(req, "exact");
        let head = answer::image_at_level(
            Bytes::new(),
            Format::Jpg,
            self.version,
            0,
            cache_control,
            &etag,
        );
        Ok(HandlerAction::Stream(StreamedResponse {
            head,
            length: meta.size,
            body,
        }))
    }

    /// Decode `source` and resize it to `width`×`height` (Lanczos3), on the blocking pool.
    async fn resize(
        &self,
        source: Bytes,
        width: u32,
        height: u32,
        key: &str,
    ) -> Result<Bytes, HttpError> {
        let slot = self
            .resizes
            .slot()
            .await
            .map_err(|e| self.failed(Failure::Resize(e), key))?;
        let out = Output {
            width,
            height,
            rotate: 0,
            mirror: false,
            quality: tessera_render::Quality::Color,
            format: tessera_render::Format::Jpeg,
            jpeg_quality: self.jpeg_quality,
        };
        let unreadable = |e: tessera_render::RenderError| ViewError::Corrupt(e.to_string());
        let result = slot
            .run(move || {
                let bitmap = decode_jpeg(&source, MAX_DECODE_PIXELS).map_err(unreadable)?;
                render(&bitmap, None, &out).map_err(unreadable)
            })
            .await;
        result
            .map(Bytes::from)
            .map_err(|e| self.failed(Failure::Resize(e), key))
    }
}

/// The `thumbs` handler's requests by route and outcome.
static THUMBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_thumbs_requests_total",
        "thumbs requests by route and outcome: exact (a thumbnail served as it is), resized (made from a larger one), upscaled, info, not_modified, otherwise (handed on, or 404 without an otherwise route), unauthorised.",
        &["route", "outcome"],
        registry()
    )
    .expect("metric registers")
});

#[cfg(test)]
mod tests {
    use super::private_cache_control;

    #[test]
    fn auth_only_answers_are_never_public() {
        assert_eq!(
            private_cache_control("public, max-age=60"),
            "private, max-age=60"
        );
        assert_eq!(private_cache_control("max-age=60"), "private, max-age=60");
        assert_eq!(private_cache_control("no-store"), "no-store");
    }
}
