//! `byte_range`: small views of a whole image, from a few byte ranges of the JP2 in the origin.
//!
//! A JP2 written resolution-first (RPCL, tile-parts by resolution) keeps its low resolutions in
//! its first bytes. For a full-region request whose output is small, this handler reads only
//! the tile-parts that hold the resolutions needed (planned from the stored header index),
//! decodes that reduced image in process, and resizes it to the exact IIIF size. Anything else —
//! a region, a large output, a file laid out another way — goes to the route named in
//! `otherwise:` (typically the orchestrate route), or, for small files, is read whole.

use crate::config::ByteSize;
use crate::imaging::index_store::Indexed;
use crate::imaging::keys::KeyTemplate;
use crate::imaging::pipeline::{self, ViewError};
use crate::imaging::request::{self, RequestTemplate};
use crate::imaging::{IndexError, IndexStore};
use crate::metrics::BYTE_RANGE;
use crate::plugin::{
    BuildContext, BuildError, Handler, HandlerAction, HttpError, LocalResponse, RequestContext,
};
use async_trait::async_trait;
use http::{header, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tessera_iiif::{ImageLimits, Version};
use tessera_origin::{Origin, OriginError};
use tokio::sync::Semaphore;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByteRangeConfig {
    /// The origin (under `origins:`) holding the JP2s.
    pub origin: String,
    /// The object key, from the route's captures, e.g. `{customer}/{space}/{image}`.
    pub key: String,
    /// What renders to `region/size/rotation/quality.format`.
    #[serde(default = "default_request")]
    pub request: String,
    /// IIIF Image API version of the route: 2 or 3.
    #[serde(default = "three")]
    pub version: u8,
    /// The largest output, in pixels, served here; larger requests go `otherwise`.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// The route to hand requests to that this handler does not serve.
    #[serde(default)]
    pub otherwise: Option<String>,
    /// Files that cannot be read partially but are smaller than this are read whole.
    #[serde(default)]
    pub whole_object_below: Option<ByteSize>,
    /// JPEG quality, 1–100.
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
    #[serde(default = "default_cache_control_fn")]
    pub cache_control: String,
    /// The most bytes one request may fetch; a plan needing more goes `otherwise`.
    #[serde(default = "default_max_fetch")]
    pub max_fetch_bytes: ByteSize,
    /// Decodes (with their fetches) running at once for this route; more wait.
    #[serde(default = "default_decodes")]
    pub max_concurrent_decodes: usize,
}

fn default_max_fetch() -> ByteSize {
    ByteSize(32 << 20)
}

fn default_request() -> String {
    "{iiif}".into()
}
fn three() -> u8 {
    3
}
fn default_max_pixels() -> u64 {
    1_000_000
}
fn default_jpeg_quality() -> u8 {
    85
}
pub(crate) fn default_cache_control_fn() -> String {
    "public, max-age=86400".into()
}
fn default_decodes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub struct ByteRange {
    origin: Arc<dyn Origin>,
    key: KeyTemplate,
    request: RequestTemplate,
    version: Version,
    max_pixels: u64,
    otherwise: Option<String>,
    whole_below: Option<u64>,
    max_fetch: u64,
    jpeg_quality: u8,
    cache_control: HeaderValue,
    decodes: Arc<Semaphore>,
    index: Arc<IndexStore>,
}

impl ByteRange {
    pub fn build(cfg: ByteRangeConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let cache_control = HeaderValue::from_str(&cfg.cache_control)
            .map_err(|_| BuildError::new("not a valid header value").at("cache_control"))?;
        if !(1..=100).contains(&cfg.jpeg_quality) {
            return Err(BuildError::new("must be between 1 and 100").at("jpeg_quality"));
        }
        Ok(Self {
            origin: ctx.origin(&cfg.origin).map_err(|e| e.at("origin"))?,
            key: KeyTemplate::build(&cfg.key, ctx).map_err(|e| e.at("key"))?,
            request: RequestTemplate::build(&cfg.request, ctx)?,
            version: request::version(cfg.version)?,
            max_pixels: cfg.max_pixels,
            otherwise: cfg
                .otherwise
                .as_deref()
                .map(|r| ctx.route(r).map_err(|e| e.at("otherwise")))
                .transpose()?,
            whole_below: cfg.whole_object_below.map(|b| b.0),
            max_fetch: cfg.max_fetch_bytes.0,
            jpeg_quality: cfg.jpeg_quality,
            cache_control,
            decodes: Arc::new(Semaphore::new(cfg.max_concurrent_decodes.max(1))),
            index: ctx.image_index(),
        })
    }

    /// Hand the request on, or explain why it is not served here.
    fn elsewhere(&self, why: &str) -> Result<HandlerAction, HttpError> {
        BYTE_RANGE.requests.with_label_values(&["otherwise"]).inc();
        match &self.otherwise {
            Some(route) => Ok(HandlerAction::Route(route.clone())),
            None => Err(HttpError::new(StatusCode::NOT_IMPLEMENTED, why)),
        }
    }

    fn etag(&self, key: &str, indexed: &Indexed, canonical: &str) -> String {
        let mut h = Sha256::new();
        for part in [
            self.origin.describe().as_str(),
            key,
            indexed.etag.as_deref().unwrap_or(""),
            canonical,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }
}

pub(crate) fn index_error(e: IndexError, key: &str, origin: &str) -> HttpError {
    match e {
        IndexError::NotFound => HttpError::new(StatusCode::NOT_FOUND, "no such image"),
        IndexError::Origin(OriginError::Timeout(_)) => {
            tracing::error!(origin, key, error = %e, "byte_range: origin timed out reading the header");
            HttpError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the image store did not answer in time",
            )
        }
        e => {
            tracing::error!(origin, key, error = %e, "byte_range: cannot read the image header");
            HttpError::new(StatusCode::BAD_GATEWAY, "the image cannot be read")
        }
    }
}

pub(crate) fn matches_etag(req: &RequestContext<'_>, etag: &str) -> bool {
    req.header_str("if-none-match").is_some_and(|v| {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    })
}

#[async_trait]
impl Handler for ByteRange {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let iiif = self.request.parse(self.version, req.captures)?;
        let key = self.key.key(req.captures)?;
        let origin_name = self.origin.describe();
        let indexed = self
            .index
            .get(&self.origin, &key)
            .await
            .map_err(|e| index_error(e, &key, &origin_name))?;
        let limits = ImageLimits::new(indexed.index.width, indexed.index.height);
        let resolved = iiif
            .resolve(self.version, &limits)
            .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        if !resolved.is_full_region(&limits) {
            return self.elsewhere("this route serves only the full region");
        }
        if u64::from(resolved.width) * u64::from(resolved.height) > self.max_pixels {
            return self.elsewhere("this route serves only small views");
        }
        let out = match pipeline::output(&resolved, self.jpeg_quality) {
            Ok(out) => out,
            Err(e) => return self.elsewhere(&e.to_string()),
        };
        let canonical = resolved.canonical(self.version, &limits);
        let etag = self.etag(&key, &indexed, &canonical);
        if matches_etag(req, &etag) {
            BYTE_RANGE
                .requests
                .with_label_values(&["not_modified"])
                .inc();
            return Ok(HandlerAction::Respond(
                LocalResponse::new(StatusCode::NOT_MODIFIED).with_header(
                    header::ETAG,
                    HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
                ),
            ));
        }

        // The decoded image is at most about 4× the output (the next resolution up); a file
        // with too few resolution levels would decode far more, and goes elsewhere.
        let max_pixels = self.max_pixels.saturating_mul(16).max(1 << 22);
        let reduce = indexed.index.reduce_for(resolved.width, resolved.height);
        let (dw, dh) = indexed.index.size_at(reduce);
        if u64::from(dw) * u64::from(dh) > max_pixels {
            return self.elsewhere("the image has too few resolution levels for a small view");
        }
        // Fetch and decode under one permit, so memory is bounded by the decode limit.
        let permit = self
            .decodes
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        let codestream = match pipeline::plan(&indexed, resolved.width, resolved.height) {
            Ok((_, plan)) if plan.bytes() > self.max_fetch => {
                return self.elsewhere("a partial read of this image would fetch too much");
            }
            Ok((_, plan)) => {
                let fetched = pipeline::fetch(self.origin.as_ref(), &key, &indexed, &plan).await;
                match fetched {
                    Ok(c) => {
                        BYTE_RANGE.fetched_bytes.inc_by(plan.bytes());
                        c
                    }
                    Err(e) => return Err(self.view_failed(e, &key).await),
                }
            }
            Err(unsupported) => match self.whole_below {
                Some(limit) if indexed.size < limit => {
                    let whole = self
                        .origin
                        .read_range(&key, 0..indexed.size)
                        .await
                        .map_err(|e| view_error(ViewError::Origin(e), &key, &origin_name))?;
                    BYTE_RANGE.fetched_bytes.inc_by(indexed.size);
                    whole.to_vec()
                }
                _ => {
                    return self.elsewhere(&format!(
                        "the image cannot be read partially: {unsupported}"
                    ))
                }
            },
        };

        let body = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pipeline::decode_and_render(&codestream, reduce, None, &out, max_pixels)
        })
        .await
        .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "the decoder failed"))?;
        let body = match body {
            Ok(b) => b,
            Err(e) => return Err(self.view_failed(e, &key).await),
        };
        BYTE_RANGE.requests.with_label_values(&["served"]).inc();
        let profile = match self.version {
            Version::V2 => "<http://iiif.io/api/image/2/level2.json>;rel=\"profile\"",
            Version::V3 => "<http://iiif.io/api/image/3/level2.json>;rel=\"profile\"",
        };
        let mut resp = LocalResponse::new(StatusCode::OK)
            .with_body(resolved.format.mime_type(), body.into())
            .with_header(header::CACHE_CONTROL, self.cache_control.clone())
            .with_header(header::LINK, HeaderValue::from_static(profile));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp = resp.with_header(header::ETAG, v);
        }
        Ok(HandlerAction::Respond(resp))
    }
}

pub(crate) fn view_error(e: ViewError, key: &str, origin: &str) -> HttpError {
    match &e {
        ViewError::Origin(OriginError::Timeout(_)) => {
            tracing::error!(origin, key, error = %e, "byte_range: origin timed out");
            HttpError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the image store did not answer in time",
            )
        }
        ViewError::Origin(OriginError::NotFound) => {
            HttpError::new(StatusCode::NOT_FOUND, "no such image")
        }
        ViewError::NotSupported(m) => HttpError::new(StatusCode::NOT_IMPLEMENTED, m.clone()),
        _ => {
            tracing::error!(origin, key, error = %e, "byte_range: cannot serve the image");
            HttpError::new(StatusCode::BAD_GATEWAY, "the image cannot be read")
        }
    }
}

impl ByteRange {
    /// A failure after the index was used: if the bytes did not fit it, the object may have
    /// changed, so the index is dropped and the next request rebuilds it.
    async fn view_failed(&self, e: ViewError, key: &str) -> HttpError {
        if matches!(e, ViewError::Corrupt(_)) {
            self.index.forget(&self.origin, key).await;
        }
        view_error(e, key, &self.origin.describe())
    }
}
