//! The IIIF part of a request (`region/size/rotation/quality.format`), from the route's captures.

use http::StatusCode;
use tessera_iiif::{ImageRequest, Version};
use tessera_proxy::captures::Captures;
use tessera_proxy::plugin::{BuildContext, BuildError, HttpError};
use tessera_proxy::template::Template;

/// `2` or `3` in the config.
pub fn version(v: u8) -> Result<Version, BuildError> {
    match v {
        2 => Ok(Version::V2),
        3 => Ok(Version::V3),
        _ => Err(BuildError::new("version must be 2 or 3").at("version")),
    }
}

/// A template that renders to the IIIF request path, e.g. `{iiif}` or
/// `{region}/{size}/{rotation}/{quality}.{format}`.
pub struct RequestTemplate(Template);

impl RequestTemplate {
    pub fn build(text: &str, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        Ok(Self(ctx.template(text).map_err(|e| e.at("request"))?))
    }

    /// The rendered text, before parsing (`info.json` for a thumbs route's info request).
    pub fn text(&self, captures: &Captures) -> String {
        self.0.render(captures)
    }

    /// Parse the request, or 400 with the IIIF reason. What cannot be an image request of
    /// this identifier at all — more than four segments, an `info.json`, or one lone segment —
    /// means the identifier before it had an unescaped `/` (`/iiif/a/b/info.json`): no image
    /// has that name, so 404, as the IIIF spec and validator expect.
    pub fn parse(&self, version: Version, captures: &Captures) -> Result<ImageRequest, HttpError> {
        let text = self.0.render(captures);
        let segments = text.split('/').count();
        let info = text == "info.json" || text.ends_with("/info.json");
        if segments > 4 || segments == 1 || info {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "no such image (a '/' in an identifier must be written %2F)",
            ));
        }
        ImageRequest::parse(version, &text)
            .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))
    }
}
