//! Defaults and checks the image handlers' configs share.

use http::HeaderValue;
use tessera_proxy::config::Dur;
use tessera_proxy::plugin::BuildError;

pub fn request() -> String {
    "{iiif}".into()
}

pub fn version() -> u8 {
    3
}

pub fn jpeg_quality() -> u8 {
    85
}

pub fn cache_control() -> String {
    "public, max-age=86400".into()
}

pub fn decode_timeout() -> Dur {
    Dur::secs(30)
}

/// The largest output `render` makes, in pixels, and what `info` advertises as `maxArea`
/// unless told otherwise: both default to it so that what info.json promises is what is served.
pub const MAX_PIXELS: u64 = 16_000_000;

/// The widest and tallest output: JPEG, the default format, stores sides in 16 bits. `render`
/// serves no more, and `info` advertises it as `maxWidth`.
pub const MAX_SIDE: u32 = 65_535;

pub fn max_pixels() -> u64 {
    MAX_PIXELS
}

pub fn max_side() -> u32 {
    MAX_SIDE
}

pub fn decodes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Check `cache_control` and `jpeg_quality`.
pub fn output(cache_control: &str, jpeg_quality: u8) -> Result<HeaderValue, BuildError> {
    if !(1..=100).contains(&jpeg_quality) {
        return Err(BuildError::new("must be between 1 and 100").at("jpeg_quality"));
    }
    HeaderValue::from_str(cache_control)
        .map_err(|_| BuildError::new("not a valid header value").at("cache_control"))
}
