//! Object keys from a route's captures: each capture is percent-decoded and checked before any
//! I/O (see `tessera_origin::key`), then the key template is filled in.

use http::StatusCode;
use tessera_origin::{decode_key_part, validate_key, KeyError};
use tessera_proxy::captures::Captures;
use tessera_proxy::plugin::{BuildContext, BuildError, HttpError};
use tessera_proxy::template::Template;

/// A checked key template, e.g. `{customer}/{space}/{image}`.
pub struct KeyTemplate(Template);

impl KeyTemplate {
    pub fn build(text: &str, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        Ok(Self(ctx.template(text)?))
    }

    /// The object key for this request, or 400 with the reason.
    pub fn key(&self, captures: &Captures) -> Result<String, HttpError> {
        let bad = |e: KeyError| HttpError::new(StatusCode::BAD_REQUEST, e.0);
        let mut decoded = Captures::default();
        for name in self.0.captures() {
            let raw = captures.get(name).unwrap_or_default();
            decoded.push(name, &decode_key_part(raw).map_err(bad)?);
        }
        let key = self.0.render(&decoded);
        validate_key(&key).map_err(bad)?;
        Ok(key)
    }
}
