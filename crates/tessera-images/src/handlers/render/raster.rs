//! `render` for masters that are not JPEG 2000 (JPEG, PNG, TIFF): the local file is probed for
//! its size and pages, the request resolved against it as for a JP2, and only the page and
//! region the output needs are decoded (see [`crate::imaging::raster`]).

use super::Render;
use crate::imaging::pipeline::{self, ViewError};
use crate::imaging::raster::{self, Format};
use crate::imaging::{answer, Failure};
use crate::metrics;
use tessera_iiif::ImageRequest;
use tessera_proxy::plugin::{HandlerAction, HttpError, RequestContext};

impl Render {
    pub(super) async fn raster(
        &self,
        req: &RequestContext<'_>,
        iiif: ImageRequest,
        key: String,
        format: Format,
    ) -> Result<HandlerAction, HttpError> {
        let (origin_name, version) = (&self.images.origin_name, self.images.version);
        let failed = |e: Failure| e.answer(origin_name, &key);
        let local = self
            .local_file(&key)
            .await
            .map_err(|e| failed(Failure::Copy(e)))?;
        let path = local.path().to_path_buf();
        let probed = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || raster::probe(&path, format))
                .await
                .map_err(|_| failed(Failure::View(ViewError::DecoderFailed)))?
                .map_err(|e| failed(Failure::View(e)))?
        };
        let limits = self.limits(probed.width, probed.height, probed.reduced_sizes());
        let resolved = self.resolve(&iiif, &limits)?;
        let out =
            pipeline::output(&resolved, self.jpeg_quality).map_err(|e| failed(Failure::View(e)))?;
        // The file's size and time stand for the object's version.
        let tag = answer::etag(&[
            origin_name,
            &key,
            &probed.version,
            &resolved.canonical(version, &limits),
            "render",
        ]);
        if answer::matches_etag(req, &tag) {
            metrics::answered("render", "not_modified");
            return Ok(HandlerAction::Respond(answer::not_modified(&tag)));
        }
        let region = resolved.region;
        let page = raster::page_for(&probed, region, resolved.width, resolved.height);
        let on_page = raster::region_on(&probed, &page, region);
        let max_pixels = self.max_decode_pixels;
        let slot = self
            .decodes
            .slot()
            .await
            .map_err(|e| failed(Failure::View(e)))?;
        let body = slot
            .run(move || {
                let decoded = raster::decode_region(&path, &probed, &page, on_page, max_pixels)?;
                drop(local);
                tessera_render::render(&decoded.bitmap, decoded.crop, &out)
                    .map_err(|e| ViewError::Corrupt(e.to_string()))
            })
            .await
            .map_err(|e| failed(Failure::View(e)))?;
        metrics::answered("render", "other");
        Ok(HandlerAction::Respond(answer::image(
            body,
            resolved.format,
            version,
            &self.cache_control,
            &tag,
        )))
    }
}
