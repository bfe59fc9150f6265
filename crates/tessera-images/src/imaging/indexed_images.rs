//! How `byte_range` and `render` find a request's image: the IIIF parameters and the object key
//! from the route's captures, then the image's header index (read once, kept by the store).
//! The response cache names a request from the same three, so they are found in one place.

use super::failure::Failure;
use super::keys::KeyTemplate;
use super::raster::Format as RasterFormat;
use super::request::{self, RequestTemplate};
use crate::names::image_base;
use crate::resources::{ImageIndex, IndexError, IndexStore, Indexed, Origins};
use std::sync::Arc;
use tessera_iiif::{ImageLimits, ImageRequest, Version};
use tessera_origin::Origin;
use tessera_proxy::captures::Captures;
use tessera_proxy::plugin::{BuildContext, BuildError, CacheName, HttpError, RequestInfo};

/// A route's images: in `origin` under `key`, asked for by `request` in IIIF `version`.
pub struct IndexedImages {
    pub origin: Arc<dyn Origin>,
    /// `origin.describe()`, for logs and ETags.
    pub origin_name: String,
    pub key: KeyTemplate,
    pub request: RequestTemplate,
    pub version: Version,
    pub index: Arc<IndexStore>,
}

/// One request's image.
pub struct Found {
    pub iiif: ImageRequest,
    pub key: String,
    pub indexed: Indexed,
}

/// One request's image, whatever its format.
pub enum Lookup {
    /// A JPEG 2000 master, with its header index.
    Jp2(Found),
    /// A JPEG, PNG or TIFF master: read from its local copy (see [`super::raster`]).
    Raster {
        iiif: ImageRequest,
        key: String,
        format: RasterFormat,
    },
}

/// Why a request's image was not found, before any log line is written.
enum Missed {
    Request(HttpError),
    Index { error: IndexError, key: String },
}

impl IndexedImages {
    /// From a handler's `origin`, `key`, `request` and `version` settings.
    pub fn build(
        origin: &str,
        key: &str,
        request: &str,
        version: u8,
        ctx: &BuildContext<'_>,
    ) -> Result<Self, BuildError> {
        let origin = ctx
            .resource::<Origins>()?
            .get(origin)
            .map_err(|e| e.at("origin"))?;
        Ok(Self {
            origin_name: origin.describe(),
            origin,
            key: KeyTemplate::build(key, ctx).map_err(|e| e.at("key"))?,
            request: RequestTemplate::build(request, ctx)?,
            version: request::version(version)?,
            index: ctx.resource::<ImageIndex>()?.store.clone(),
        })
    }

    /// The request's image, or the error its client gets: 400 for malformed IIIF, 404 for an
    /// unknown image, 415 for a file that is no image it reads, 502/504 (with a log line) when
    /// its header cannot be read. JPEG, PNG and TIFF masters are told apart, not refused.
    pub async fn lookup(&self, captures: &Captures) -> Result<Lookup, HttpError> {
        self.look(captures).await.map_err(|missed| match missed {
            Missed::Request(e) => e,
            Missed::Index { error, key } => Failure::Header(error).answer(&self.origin_name, &key),
        })
    }

    /// The response cache's name for the request: its canonical form for an image of
    /// `limits` (from its index), or for a JPEG, PNG or TIFF master (which has no index to say
    /// its size) the request as sent. `None` when it cannot be found or does not resolve: the
    /// handler then answers with the error, and logs it.
    pub async fn canonical_name(
        &self,
        req: &RequestInfo<'_>,
        limits: impl FnOnce(&Indexed) -> ImageLimits,
    ) -> Option<CacheName> {
        let base = image_base(req.header.uri.path())?;
        let found = match self.look(req.captures).await.ok()? {
            Lookup::Jp2(found) => found,
            Lookup::Raster { .. } => return Some(CacheName::of_request_about(req, Some(base))),
        };
        let limits = limits(&found.indexed);
        let resolved = found.iiif.resolve(self.version, &limits).ok()?;
        Some(CacheName::about(
            base,
            &resolved.canonical(self.version, &limits),
        ))
    }

    async fn look(&self, captures: &Captures) -> Result<Lookup, Missed> {
        let iiif = self
            .request
            .parse(self.version, captures)
            .map_err(Missed::Request)?;
        let key = self.key.key(captures).map_err(Missed::Request)?;
        match self.index.get(&self.origin, &key).await {
            Ok(indexed) => Ok(Lookup::Jp2(Found { iiif, key, indexed })),
            Err(IndexError::Raster(format)) => Ok(Lookup::Raster { iiif, key, format }),
            Err(error) => Err(Missed::Index { error, key }),
        }
    }
}
