//! `byte_range`: small views of a whole image, from a few byte ranges of the JP2 in the origin.
//!
//! A JP2 written resolution-first (RPCL, tile-parts by resolution) keeps its low resolutions in
//! its first bytes. For a full-region request whose output is small, this handler reads only
//! the tile-parts that hold the resolutions needed (planned from the stored header index),
//! decodes that reduced image in process, and resizes it to the exact IIIF size. Anything else —
//! a region, a large output, a file laid out another way — goes to the route named in
//! `otherwise:` (typically the orchestrate route), or, for small files, is read whole.
//!
//! The index may be older than the object: a master replaced in place (rewritten by `tessera
//! interleave`, say) no longer has its tile-parts where the index says. The bytes read then do
//! not fit it; the index is dropped and built again, and the view is served once more from the
//! fresh one. Only if the fresh index is the same, or the second try fails too, is the answer
//! 502: the file itself is broken.

use crate::format::Format as RasterFormat;
use crate::imaging::pipeline::{self, ViewError};
use crate::imaging::{answer, defaults, Failure, Found, IndexedImages, Lookup};
use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use prometheus::{
    register_int_counter_vec_with_registry, register_int_counter_with_registry, IntCounter,
    IntCounterVec,
};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::{Arc, LazyLock};
use tessera_iiif::ImageLimits;
use tessera_jp2::Jp2Index;
use tessera_origin::OriginError;
use tessera_proxy::config::{ByteSize, Dur};
use tessera_proxy::metrics::registry;
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheName, Handler, HandlerAction, HttpError, RequestContext,
    RequestInfo,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByteRangeConfig {
    /// The origin (under `origins:`) holding the JP2s.
    pub origin: String,
    /// The object key, from the route's captures, e.g. `{customer}/{space}/{image}`.
    pub key: String,
    /// What renders to `region/size/rotation/quality.format`.
    #[serde(default = "defaults::request")]
    pub request: String,
    /// IIIF Image API version of the route: 2 or 3.
    #[serde(default = "defaults::version")]
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
    #[serde(default = "defaults::jpeg_quality")]
    pub jpeg_quality: u8,
    #[serde(default = "defaults::cache_control")]
    pub cache_control: String,
    /// The most bytes one request may fetch; a plan needing more goes `otherwise`.
    #[serde(default = "default_max_fetch")]
    pub max_fetch_bytes: ByteSize,
    /// Decodes (with their fetches) running at once for this route; more wait.
    #[serde(default = "defaults::decodes")]
    pub max_concurrent_decodes: usize,
    /// How long one decode (with resize and encode) may take before the request answers 504.
    #[serde(default = "defaults::decode_timeout")]
    pub decode_timeout: Dur,
    /// Leave this many of each code-block's last bit-planes undecoded (0–3; 0, the default,
    /// decodes every bit the file holds). A small view of a classic JP2 spends some 40 % of its
    /// decode on the last plane; with 1 it decodes in two-thirds of the time, within 46–48 dB
    /// PSNR of the exact answer (docs/benchmarks.md). Applies where
    /// [`tessera_jp2::without_last_planes`] can rewrite the codestream read (one quality
    /// layer, default precincts, …; one tile or several); others are decoded exactly.
    #[serde(default)]
    pub skip_last_bit_planes: u8,
}

/// The most bit-planes `skip_last_bit_planes` may leave out (3: 41 dB at the decoded size).
const MAX_SKIPPED_PLANES: u8 = 3;

fn default_max_fetch() -> ByteSize {
    ByteSize(32 << 20)
}

fn default_max_pixels() -> u64 {
    1_000_000
}

pub struct ByteRange {
    images: IndexedImages,
    max_pixels: u64,
    otherwise: Option<String>,
    whole_below: Option<u64>,
    max_fetch: u64,
    jpeg_quality: u8,
    cache_control: HeaderValue,
    decodes: pipeline::Decodes,
    skip_planes: u8,
    /// What sets this route's answers apart in their ETag: empty when exact, else how many
    /// bit-planes they lack (other pixels, another tag).
    planes_tag: String,
}

impl ByteRange {
    pub fn build(cfg: ByteRangeConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let cache_control = defaults::output(&cfg.cache_control, cfg.jpeg_quality)?;
        if cfg.skip_last_bit_planes > MAX_SKIPPED_PLANES {
            return Err(
                BuildError::new(format!("must be at most {MAX_SKIPPED_PLANES}"))
                    .at("skip_last_bit_planes"),
            );
        }
        Ok(Self {
            images: IndexedImages::build(&cfg.origin, &cfg.key, &cfg.request, cfg.version, ctx)?,
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
            decodes: pipeline::Decodes::new(
                cfg.max_concurrent_decodes,
                cfg.decode_timeout.0,
                "byte_range",
            ),
            skip_planes: cfg.skip_last_bit_planes,
            planes_tag: match cfg.skip_last_bit_planes {
                0 => String::new(),
                n => format!("without {n} bit-planes"),
            },
        })
    }

    /// Hand the request on, or explain why it is not served here.
    fn elsewhere<E: From<HttpError>>(&self, why: &str) -> Result<HandlerAction, E> {
        BYTE_RANGE.requests.with_label_values(&["otherwise"]).inc();
        match &self.otherwise {
            Some(route) => Ok(HandlerAction::Route(route.clone())),
            None => Err(HttpError::new(StatusCode::NOT_IMPLEMENTED, why).into()),
        }
    }
}

#[async_trait]
impl Handler for ByteRange {
    /// Look the image up and serve the view. If the bytes read do not fit the image's index (the
    /// object was replaced since it was indexed, e.g. by `tessera interleave`), the index is
    /// built again and, if it changed, the view served from it: a replaced master costs its
    /// first viewer a header read, not an error. If it did not change, the file is broken: 502.
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        // The index a first try found the bytes did not fit, and why; one more try follows.
        let mut first_try: Option<(Arc<Jp2Index>, ViewError)> = None;
        loop {
            let found = match self.images.lookup(req.captures).await? {
                Lookup::Jp2(found) => found,
                Lookup::Raster { format, .. } => return self.raster(format),
            };
            let (key, index) = (found.key.clone(), found.indexed.index.clone());
            if let Some((old, e)) = &first_try {
                if *old == index {
                    // Indexed again as it was: the bytes are bad, not the index.
                    return Err(self.view_error(e.clone(), &key));
                }
            }
            match self.view(req, found).await {
                Ok(action) => return Ok(action),
                Err(Failed::Answer(e)) => return Err(e),
                Err(Failed::Broken(e)) => {
                    // Perhaps broken by a change: the next request reads the header again.
                    self.images.index.forget(&self.images.origin, &key).await;
                    return Err(self.view_error(e, &key));
                }
                Err(Failed::NotAsIndexed(e)) => {
                    self.forget_index(&key, &e).await;
                    if first_try.is_some() {
                        return Err(self.view_error(e, &key));
                    }
                    first_try = Some((index, e));
                }
            }
        }
    }

    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        self.images
            .canonical_name(req, |i| ImageLimits::new(i.index.width, i.index.height))
            .await
    }
}

/// Why a view was not served.
enum Failed {
    /// An answer for the client.
    Answer(HttpError),
    /// The bytes read do not fit the index: worth one more try with a fresh index.
    NotAsIndexed(ViewError),
    /// The bytes do not decode: answered, and the index dropped.
    Broken(ViewError),
}

impl From<HttpError> for Failed {
    fn from(e: HttpError) -> Self {
        Failed::Answer(e)
    }
}

impl ByteRange {
    /// Serve the view of `found`: plan, fetch, decode, answer.
    async fn view(
        &self,
        req: &mut RequestContext<'_>,
        found: Found,
    ) -> Result<HandlerAction, Failed> {
        let Found { iiif, key, indexed } = found;
        let (origin_name, version) = (&self.images.origin_name, self.images.version);
        let limits = ImageLimits::new(indexed.index.width, indexed.index.height);
        let resolved = iiif
            .resolve(version, &limits)
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
        let canonical = resolved.canonical(version, &limits);
        let etag = answer::etag(&[
            origin_name,
            &key,
            indexed.etag.as_deref().unwrap_or(""),
            &canonical,
            &self.planes_tag,
        ]);
        if answer::matches_etag(req, &etag) {
            BYTE_RANGE
                .requests
                .with_label_values(&["not_modified"])
                .inc();
            return Ok(HandlerAction::Respond(answer::not_modified(&etag)));
        }

        // The decoded image is at most about 4× the output (the next resolution up); a file
        // with too few resolution levels would decode far more, and goes elsewhere.
        let max_pixels = self.max_pixels.saturating_mul(16).max(1 << 22);
        let reduce = indexed.index.reduce_for(resolved.width, resolved.height);
        let (dw, dh) = indexed.index.size_at(reduce);
        if u64::from(dw) * u64::from(dh) > max_pixels {
            return self.elsewhere("the image has too few resolution levels for a small view");
        }
        // Fetch and decode in one decode slot, so memory is bounded by the decode limit.
        let slot = match self.decodes.slot().await {
            Ok(slot) => slot,
            Err(e) => return Err(self.view_failed(e, &key)),
        };
        let (codestream, reduce) = match pipeline::plan(&indexed, resolved.width, resolved.height) {
            Ok((_, plan)) if plan.bytes() > self.max_fetch => {
                return self.elsewhere("a partial read of this image would fetch too much");
            }
            Ok((_, plan)) => {
                let origin = self.images.origin.as_ref();
                let fetched = pipeline::fetch(origin, &key, &indexed, &plan).await;
                match fetched {
                    Ok(c) => {
                        BYTE_RANGE.fetched_bytes.inc_by(plan.bytes());
                        pipeline::smaller_image(c, plan.reduce)
                    }
                    Err(e) => return Err(self.view_failed(e, &key)),
                }
            }
            Err(unsupported) => match self.whole_below {
                Some(limit) if indexed.size < limit => {
                    let whole = self
                        .images
                        .origin
                        .read_range(&key, 0..indexed.size)
                        .await
                        .map_err(|e| {
                            Failure::View(ViewError::Origin(e)).answer(origin_name, &key)
                        })?;
                    BYTE_RANGE.fetched_bytes.inc_by(indexed.size);
                    (whole.to_vec(), reduce)
                }
                _ => {
                    return self.elsewhere(&format!(
                        "the image cannot be read partially: {unsupported}"
                    ))
                }
            },
        };

        let skip_planes = self.skip_planes;
        let body = slot
            .run(move || {
                let codestream = without_last_planes(codestream, skip_planes);
                let input = pipeline::Jp2Input::Bytes(&codestream);
                pipeline::decode_and_render(input, reduce, None, &out, max_pixels)
            })
            .await;
        let body = match body {
            Ok(b) => b,
            Err(e) => return Err(self.view_failed(e, &key)),
        };
        BYTE_RANGE.requests.with_label_values(&["served"]).inc();
        Ok(HandlerAction::Respond(answer::image(
            body,
            resolved.format,
            version,
            &self.cache_control,
            &etag,
        )))
    }

    /// A JPEG, PNG or TIFF has no JPEG 2000 byte ranges to read.
    fn raster(&self, format: RasterFormat) -> Result<HandlerAction, HttpError> {
        let why = format!(
            "the image is a {format} master: info and render routes serve it, not byte ranges"
        );
        self.elsewhere::<HttpError>(&why)
            .map_err(|_| HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, why.clone()))
    }

    /// The bytes read did not fit `key`'s index: drop it, so that it is built again.
    async fn forget_index(&self, key: &str, e: &ViewError) {
        self.images.index.forget(&self.images.origin, key).await;
        let origin = &self.images.origin_name;
        tracing::info!(%origin, key, "the bytes read do not fit the image's index ({e}): indexing it again");
    }

    /// A failure after the index was used: bytes that do not fit it (or a range past the end
    /// of the object) mean the object changed ([`Failed::NotAsIndexed`]).
    fn view_failed(&self, e: ViewError, key: &str) -> Failed {
        match e {
            ViewError::NotAsIndexed(_) | ViewError::Origin(OriginError::Changed) => {
                Failed::NotAsIndexed(e)
            }
            ViewError::Corrupt(_) => Failed::Broken(e),
            e => Failed::Answer(self.view_error(e, key)),
        }
    }

    /// The answer to a failed view of `key`, after its log line.
    fn view_error(&self, e: ViewError, key: &str) -> HttpError {
        Failure::View(e).answer(&self.images.origin_name, key)
    }
}

/// `codestream` with its last `planes` bit-planes left undecoded where it can be rewritten
/// ([`tessera_jp2::without_last_planes`]), else as it is.
fn without_last_planes(codestream: Vec<u8>, planes: u8) -> Vec<u8> {
    if planes == 0 {
        return codestream;
    }
    match tessera_jp2::without_last_planes(&codestream, u32::from(planes)) {
        Some(lighter) => {
            BYTE_RANGE.planes_skipped.inc();
            lighter
        }
        None => codestream,
    }
}

/// The `byte_range` handler's metrics.
struct ByteRangeMetrics {
    pub requests: IntCounterVec,
    pub fetched_bytes: IntCounter,
    pub planes_skipped: IntCounter,
}

static BYTE_RANGE: LazyLock<ByteRangeMetrics> = LazyLock::new(|| {
    let r = registry();
    ByteRangeMetrics {
        requests: register_int_counter_vec_with_registry!(
            "tessera_byte_range_requests_total",
            "byte_range requests by outcome: served (decoded from ranges), otherwise (handed on or refused), not_modified.",
            &["outcome"],
            r
        )
        .expect("metric registers"),
        fetched_bytes: register_int_counter_with_registry!(
            "tessera_byte_range_fetched_bytes_total",
            "Image bytes read from origins by byte_range (headers excluded).",
            r
        )
        .expect("metric registers"),
        planes_skipped: register_int_counter_with_registry!(
            "tessera_byte_range_planes_skipped_total",
            "byte_range views decoded without their last bit-planes (skip_last_bit_planes).",
            r
        )
        .expect("metric registers"),
    }
});
